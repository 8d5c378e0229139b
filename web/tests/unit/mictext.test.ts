import { describe, expect, it } from 'vitest';
import { INSECURE_TEXT, micButtonLabel, micOpenErrorText, micServerErrorText, micStateText, noSttText } from '../../src/mictext';

const domError = (name: string, message = '') => Object.assign(new Error(message), { name });

describe('micOpenErrorText', () => {
  it('explains each getUserMedia failure in plain words', () => {
    expect(micOpenErrorText(domError('NotAllowedError'))).toMatch(/blocked/);
    expect(micOpenErrorText(domError('NotFoundError'))).toMatch(/No microphone/);
    expect(micOpenErrorText(domError('OverconstrainedError'))).toMatch(/No microphone/);
    expect(micOpenErrorText(domError('NotReadableError'))).toMatch(/in use by another app/);
    expect(micOpenErrorText(domError('InsecureContext'))).toBe(INSECURE_TEXT);
    expect(micOpenErrorText(domError('AbortError', 'boom'))).toBe('The microphone could not be opened: boom.');
    expect(micOpenErrorText('weird')).toBe('The microphone could not be opened: weird.');
  });
  it('names the README section for https', () => {
    expect(INSECURE_TEXT).toContain("'Talking to the avatar over https'");
    expect(INSECURE_TEXT).toContain('http://localhost');
  });
});

describe('micServerErrorText', () => {
  it('words the microphone errors and leaves others alone', () => {
    expect(micServerErrorText('stt_not_configured', 'no STT', 'Set STT_BASE_URL.')).toBe(
      'This server cannot listen: it has no speech recognizer. Set STT_BASE_URL.',
    );
    expect(micServerErrorText('stt_not_configured', 'no STT')).toContain('no STT');
    expect(micServerErrorText('stt_failed', 'HTTP 429')).toContain('HTTP 429');
    expect(micServerErrorText('nothing_heard', 'x')).toMatch(/No words/);
    expect(micServerErrorText('bad_audio', 'odd number of bytes')).toContain('odd number of bytes');
    expect(micServerErrorText('prompt_too_long', 'x')).toBeNull();
  });
  it('explains a server without speech recognition', () => {
    expect(noSttText('none', 'Set STT_BASE_URL and STT_API_KEY.')).toContain('Set STT_BASE_URL and STT_API_KEY.');
    expect(noSttText(undefined, undefined)).toMatch(/older/);
  });
});

describe('micStateText', () => {
  it('says what the microphone is doing', () => {
    expect(micStateText('listening', 'hands_free', true, 'webrtc')).toBe('listening…');
    expect(micStateText('listening', 'hands_free', true, 'hls')).toMatch(/^listening… \(over HLS/);
    expect(micStateText('listening', 'push_to_talk', true, 'hls')).toBe('listening…');
    expect(micStateText('hearing', 'hands_free', true, 'webrtc')).toBe('hearing you…');
    expect(micStateText('heard', 'push_to_talk', true, 'webrtc')).toBe('heard you — thinking…');
    expect(micStateText('off', 'push_to_talk', true, 'webrtc')).toMatch(/hold/);
    expect(micStateText('off', 'hands_free', false, null)).toBe('');
  });
  it('labels the button for its mode', () => {
    expect(micButtonLabel('hands_free', 'off', false)).toBe('Turn the microphone on');
    expect(micButtonLabel('hands_free', 'hearing', true)).toBe('Turn the microphone off');
    expect(micButtonLabel('push_to_talk', 'off', true)).toMatch(/^Hold to talk/);
  });
});
