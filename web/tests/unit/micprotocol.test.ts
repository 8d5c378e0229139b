import { describe, expect, it } from 'vitest';
import { micStartMessage, micStopMessage } from '../../src/micprotocol';
import { encode, parseServerMessage } from '../../src/protocol';

const ok = (raw: string) => {
  const r = parseServerMessage(raw);
  if (!r.ok) throw new Error(`expected ok, got ${r.error}`);
  return r.message;
};

describe('microphone messages', () => {
  it('reads stt, stt_note and vad from hello', () => {
    const m = ok(
      '{"type":"hello","session_id":"s1","playlist":"/hls/s1/index.m3u8","stt":"none","stt_note":"set STT_BASE_URL",' +
        '"vad":{"silence_ms":600,"min_speech_ms":160,"barge_in_ms":400,"max_utterance_ms":30000,"extra":1}}',
    );
    expect(m).toEqual({
      type: 'hello',
      session_id: 's1',
      playlist: '/hls/s1/index.m3u8',
      stt: 'none',
      stt_note: 'set STT_BASE_URL',
      vad: { silence_ms: 600, min_speech_ms: 160, barge_in_ms: 400, max_utterance_ms: 30000 },
    });
    // an older server: no microphone fields at all
    expect(ok('{"type":"hello","session_id":"s1","playlist":"/p"}')).not.toHaveProperty('stt');
  });

  it('parses user_speech as in the spec', () => {
    expect(ok('{"type":"user_speech","state":"started"}')).toEqual({ type: 'user_speech', state: 'started' });
    expect(ok('{"type":"user_speech","state":"stopped","duration_ms":1840}')).toEqual({
      type: 'user_speech',
      state: 'stopped',
      duration_ms: 1840,
    });
    expect(ok('{"type":"user_speech","state":"stopped","duration_ms":900,"dropped":"no speech"}')).toEqual({
      type: 'user_speech',
      state: 'stopped',
      duration_ms: 900,
      dropped: 'no speech',
    });
    const r = parseServerMessage('{"type":"user_speech","state":"maybe"}');
    expect(r.ok).toBe(false);
  });

  it('parses user_transcript as in the spec', () => {
    expect(ok('{"type":"user_transcript","text":"What\'s the weather like on Mars?","turn":4}')).toEqual({
      type: 'user_transcript',
      text: "What's the weather like on Mars?",
      turn: 4,
    });
    expect(parseServerMessage('{"type":"user_transcript","turn":4}').ok).toBe(false);
  });

  it('keeps the recognizer time of a spoken turn in metrics', () => {
    const m = ok('{"type":"metrics","turn":4,"stt_ms":412.5,"first_audio_ms":30}');
    expect(m).toMatchObject({ type: 'metrics', turn: 4, stt_ms: 412.5, values: { turn: 4, stt_ms: 412.5, first_audio_ms: 30 } });
  });

  it('builds mic start and stop exactly as documented', () => {
    expect(encode(micStartMessage('hands_free', 'webrtc'))).toBe(
      '{"type":"mic","action":"start","mode":"hands_free","playback":"webrtc"}',
    );
    expect(encode(micStartMessage('push_to_talk', 'hls'))).toBe(
      '{"type":"mic","action":"start","mode":"push_to_talk","playback":"hls"}',
    );
    expect(encode(micStopMessage())).toBe('{"type":"mic","action":"stop"}');
  });
});
