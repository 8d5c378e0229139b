// The microphone's state, pure: which `mic` messages to send when the user or the session does
// something, when frames may be sent, and what the page shows (off / listening / hearing /
// heard). Also the remembered mode and which key presses are push-to-talk. voice.ts drives it.

import { micStartMessage, micStopMessage, type MicClientMessage, type MicMode } from './micprotocol';
import type { Transport } from './transport';

/** off: not sending; listening: sending, nothing heard yet; hearing: between user_speech started
 * and stopped; heard: stopped, waiting for user_transcript (or an error). */
export type MicState = 'off' | 'listening' | 'hearing' | 'heard';

export class MicMachine {
  mode: MicMode;
  /** the capture is open (frames are coming from the worklet) */
  open = false;
  /** push-to-talk is held */
  held = false;
  /** a `mic start` was sent and no `mic stop` since: the server takes frames */
  started = false;
  /** the playback value of the last `mic start` */
  playback: Transport = 'hls';
  private phase: 'idle' | 'hearing' | 'heard' = 'idle';

  constructor(mode: MicMode = 'hands_free') {
    this.mode = mode;
  }

  get state(): MicState {
    if (this.phase !== 'idle') return this.phase;
    return this.started ? 'listening' : 'off';
  }

  /** Frames go to the server only between `mic start` and `mic stop`. */
  get sending(): boolean {
    return this.started && this.open;
  }

  /** The capture is ready. Hands-free starts at once; push-to-talk waits for a press. */
  opened(playback: Transport): MicClientMessage[] {
    this.open = true;
    return this.mode === 'hands_free' || this.held ? this.start(playback) : [];
  }

  /** The capture closed (turned off, failed, or the stream stopped). */
  closed(): MicClientMessage[] {
    this.open = false;
    this.held = false;
    return this.stop();
  }

  /** Push-to-talk pressed. Before the capture is open, it starts when it opens (if still held). */
  press(playback: Transport): MicClientMessage[] {
    if (this.mode !== 'push_to_talk' || this.held) return [];
    this.held = true;
    return this.open ? this.start(playback) : [];
  }

  release(): MicClientMessage[] {
    if (!this.held) return [];
    this.held = false;
    return this.stop();
  }

  setMode(mode: MicMode, playback: Transport): MicClientMessage[] {
    if (mode === this.mode) return [];
    const out = this.stop();
    this.held = false;
    this.mode = mode;
    if (this.open && mode === 'hands_free') out.push(...this.start(playback));
    return out;
  }

  /** The player switched transport: the server must know (barge-in and echo depend on it). */
  transport(t: Transport | null): MicClientMessage[] {
    if (!this.started || t === null || t === this.playback) return [];
    this.playback = t;
    return [micStartMessage(this.mode, t)];
  }

  /** A (new) hello: the server's microphone is closed; open it again if ours is on. */
  hello(playback: Transport): MicClientMessage[] {
    this.phase = 'idle';
    this.started = false;
    if (this.open && (this.mode === 'hands_free' || this.held)) return this.start(playback);
    return [];
  }

  /** The socket closed: nothing was started on the next session. */
  socketClosed(): void {
    this.started = false;
    this.phase = 'idle';
  }

  speech(state: 'started' | 'stopped', dropped?: string): void {
    if (state === 'started') this.phase = 'hearing';
    else this.phase = dropped ? 'idle' : 'heard';
  }

  /** user_transcript, an stt error, or waiting for one timed out: the utterance is done. */
  settled(): void {
    this.phase = 'idle';
  }

  private start(playback: Transport): MicClientMessage[] {
    this.started = true;
    this.playback = playback;
    return [micStartMessage(this.mode, playback)];
  }

  private stop(): MicClientMessage[] {
    if (!this.started) return [];
    this.started = false;
    return [micStopMessage()];
  }
}

const MODE_KEY = 'talkstream.micMode';

/** The mode the user chose last, in localStorage (any storage failure: hands-free). */
export class ModeStore {
  constructor(private readonly storage: Pick<Storage, 'getItem' | 'setItem'> | null) {}

  get(): MicMode {
    try {
      return this.storage?.getItem(MODE_KEY) === 'push_to_talk' ? 'push_to_talk' : 'hands_free';
    } catch {
      return 'hands_free';
    }
  }

  set(mode: MicMode): void {
    try {
      this.storage?.setItem(MODE_KEY, mode);
    } catch {
      /* storage disabled: the mode lasts for this page */
    }
  }
}

/** Where a key press happened, as far as push-to-talk cares. */
export interface KeyTarget {
  tagName: string;
  isContentEditable: boolean;
  /** the target is the mic button itself */
  isMicButton: boolean;
}

/**
 * Space is push-to-talk unless it would type or press something: in a text box, input, select
 * or on another button or link it keeps its usual meaning. Auto-repeat is not a new press.
 */
export function spaceIsPushToTalk(key: string, repeat: boolean, target: KeyTarget | null): boolean {
  if (key !== ' ' || repeat) return false;
  if (!target) return true;
  if (target.isMicButton) return true;
  if (target.isContentEditable) return false;
  return !['INPUT', 'TEXTAREA', 'SELECT', 'BUTTON', 'A', 'SUMMARY', 'OPTION'].includes(target.tagName.toUpperCase());
}
