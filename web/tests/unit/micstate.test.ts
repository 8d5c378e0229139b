import { describe, expect, it } from 'vitest';
import { MicMachine, ModeStore, spaceIsPushToTalk, type KeyTarget } from '../../src/micstate';

const START_HF_RTC = { type: 'mic', action: 'start', mode: 'hands_free', playback: 'webrtc' };
const START_PTT_RTC = { type: 'mic', action: 'start', mode: 'push_to_talk', playback: 'webrtc' };
const STOP = { type: 'mic', action: 'stop' };

describe('MicMachine, hands-free', () => {
  it('starts when the capture opens and stops when it closes', () => {
    const m = new MicMachine('hands_free');
    expect(m.state).toBe('off');
    expect(m.sending).toBe(false);
    expect(m.opened('webrtc')).toEqual([START_HF_RTC]);
    expect(m.state).toBe('listening');
    expect(m.sending).toBe(true);
    expect(m.closed()).toEqual([STOP]);
    expect(m.state).toBe('off');
    expect(m.sending).toBe(false);
    expect(m.closed()).toEqual([]);
  });

  it('goes listening → hearing → heard → listening with the server', () => {
    const m = new MicMachine('hands_free');
    m.opened('webrtc');
    m.speech('started');
    expect(m.state).toBe('hearing');
    m.speech('stopped');
    expect(m.state).toBe('heard');
    m.settled();
    expect(m.state).toBe('listening');
  });

  it('returns to listening when an utterance without speech is dropped', () => {
    const m = new MicMachine('hands_free');
    m.opened('hls');
    m.speech('started');
    m.speech('stopped', 'no speech');
    expect(m.state).toBe('listening');
  });

  it('keeps "heard" after the mic is turned off until the transcript comes', () => {
    const m = new MicMachine('hands_free');
    m.opened('webrtc');
    m.speech('started');
    m.closed();
    m.speech('stopped');
    expect(m.state).toBe('heard');
    m.settled();
    expect(m.state).toBe('off');
  });

  it('sends start again when the transport changes, with the new playback', () => {
    const m = new MicMachine('hands_free');
    m.opened('webrtc');
    expect(m.transport('webrtc')).toEqual([]);
    expect(m.transport(null)).toEqual([]);
    expect(m.transport('hls')).toEqual([{ ...START_HF_RTC, playback: 'hls' }]);
    expect(m.playback).toBe('hls');
    m.closed();
    expect(m.transport('webrtc')).toEqual([]);
  });

  it('resends start after a new hello if it is on, and forgets the server side on close', () => {
    const m = new MicMachine('hands_free');
    expect(m.hello('webrtc')).toEqual([]);
    m.opened('webrtc');
    m.speech('started');
    expect(m.hello('hls')).toEqual([{ ...START_HF_RTC, playback: 'hls' }]);
    expect(m.state).toBe('listening');
    m.socketClosed();
    expect(m.started).toBe(false);
    expect(m.closed()).toEqual([]); // nothing to stop on a closed socket
  });
});

describe('MicMachine, push-to-talk', () => {
  it('sends only while held; the capture stays open between presses', () => {
    const m = new MicMachine('push_to_talk');
    expect(m.opened('webrtc')).toEqual([]);
    expect(m.state).toBe('off');
    expect(m.sending).toBe(false);
    expect(m.press('webrtc')).toEqual([START_PTT_RTC]);
    expect(m.press('webrtc')).toEqual([]); // key repeat, second pointer
    expect(m.sending).toBe(true);
    expect(m.state).toBe('listening');
    expect(m.release()).toEqual([STOP]);
    expect(m.release()).toEqual([]);
    expect(m.open).toBe(true);
    expect(m.sending).toBe(false);
    expect(m.press('hls')).toEqual([{ ...START_PTT_RTC, playback: 'hls' }]);
  });

  it('a press before the capture is open starts when it opens, if still held', () => {
    const m = new MicMachine('push_to_talk');
    expect(m.press('webrtc')).toEqual([]);
    expect(m.opened('webrtc')).toEqual([START_PTT_RTC]);
    const n = new MicMachine('push_to_talk');
    n.press('webrtc');
    expect(n.release()).toEqual([]);
    expect(n.opened('webrtc')).toEqual([]);
  });

  it('ignores presses in hands-free mode', () => {
    const m = new MicMachine('hands_free');
    expect(m.press('webrtc')).toEqual([]);
    expect(m.held).toBe(false);
  });
});

describe('MicMachine, switching modes', () => {
  it('hands-free → push-to-talk stops; push-to-talk → hands-free starts if open', () => {
    const m = new MicMachine('hands_free');
    m.opened('webrtc');
    expect(m.setMode('push_to_talk', 'webrtc')).toEqual([STOP]);
    expect(m.state).toBe('off');
    m.press('webrtc');
    expect(m.setMode('hands_free', 'webrtc')).toEqual([STOP, START_HF_RTC]);
    expect(m.held).toBe(false);
    expect(m.setMode('hands_free', 'webrtc')).toEqual([]);
    m.closed();
    expect(m.setMode('push_to_talk', 'webrtc')).toEqual([]);
    expect(m.setMode('hands_free', 'webrtc')).toEqual([]);
  });
});

describe('ModeStore', () => {
  it('remembers the mode and defaults to hands-free', () => {
    const map = new Map<string, string>();
    const store = new ModeStore({ getItem: (k) => map.get(k) ?? null, setItem: (k, v) => void map.set(k, v) });
    expect(store.get()).toBe('hands_free');
    store.set('push_to_talk');
    expect(store.get()).toBe('push_to_talk');
    expect(new ModeStore({ getItem: (k) => map.get(k) ?? null, setItem: () => {} }).get()).toBe('push_to_talk');
    map.set('talkstream.micMode', 'garbage');
    expect(store.get()).toBe('hands_free');
    const broken = new ModeStore({
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('denied');
      },
    });
    broken.set('push_to_talk');
    expect(broken.get()).toBe('hands_free');
    expect(new ModeStore(null).get()).toBe('hands_free');
  });
});

describe('spaceIsPushToTalk', () => {
  const t = (tagName: string, over: Partial<KeyTarget> = {}): KeyTarget => ({
    tagName,
    isContentEditable: false,
    isMicButton: false,
    ...over,
  });
  it('takes Space on the page, the video and the mic button', () => {
    expect(spaceIsPushToTalk(' ', false, t('BODY'))).toBe(true);
    expect(spaceIsPushToTalk(' ', false, t('VIDEO'))).toBe(true);
    expect(spaceIsPushToTalk(' ', false, t('BUTTON', { isMicButton: true }))).toBe(true);
    expect(spaceIsPushToTalk(' ', false, null)).toBe(true);
  });
  it('leaves Space alone where it types or presses something, and ignores auto-repeat', () => {
    expect(spaceIsPushToTalk(' ', false, t('TEXTAREA'))).toBe(false);
    expect(spaceIsPushToTalk(' ', false, t('input'))).toBe(false);
    expect(spaceIsPushToTalk(' ', false, t('BUTTON'))).toBe(false);
    expect(spaceIsPushToTalk(' ', false, t('DIV', { isContentEditable: true }))).toBe(false);
    expect(spaceIsPushToTalk(' ', true, t('BODY'))).toBe(false);
    expect(spaceIsPushToTalk('Enter', false, t('BODY'))).toBe(false);
  });
});
