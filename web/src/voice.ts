// Talking to the avatar: connects the mic button and Space (micui.ts), the capture
// (miccapture.ts), the state machine (micstate.ts) and the session. Sends `mic` start/stop and
// the binary frames, follows user_speech / user_transcript and the microphone errors, and keeps
// the conversation history. main.ts forwards the session's events to it.

import { History } from './history';
import { MicCapture } from './miccapture';
import { LEVEL_FLOOR_DB, levelDb } from './micaudio';
import type { MicClientMessage, MicMode, UserSpeechMessage, UserTranscriptMessage } from './micprotocol';
import { MicMachine, ModeStore, type MicState } from './micstate';
import { micButtonLabel, micOpenErrorText, micServerErrorText, micStateText, noSttText } from './mictext';
import { MicUi, type Holder } from './micui';
import type { ClientMessage, ErrorMessage, HelloMessage, LogLevel, TranscriptMessage } from './protocol';
import type { Transport } from './transport';

export interface VoiceDeps {
  send(msg: ClientMessage): boolean;
  /** a binary message; false if it was not sent (no socket, or too much queued) */
  sendBinary(data: ArrayBuffer): boolean;
  /** what plays the stream now */
  transport(): Transport | null;
  error(text: string): void;
  log(level: LogLevel, message: string): void;
}

/** Give up waiting for the transcript of a heard utterance after this long, ms. */
const HEARD_TIMEOUT_MS = 20000;

export class Voice {
  readonly history = new History();
  framesSent = 0;
  /** frames captured while sending but not sent (socket gone or backed up) */
  framesDropped = 0;
  levelDb = LEVEL_FLOOR_DB;
  /** every mic message sent, in order (capped) */
  readonly sent: MicClientMessage[] = [];
  private readonly modes = new ModeStore(typeof localStorage === 'undefined' ? null : localStorage);
  private readonly machine = new MicMachine(this.modes.get());
  private readonly ui: MicUi;
  private capture: MicCapture | null = null;
  /** bumped to abandon a capture that is still opening */
  private openSeq = 0;
  private opening = false;
  private usable = false;
  private helloSeen = false;
  private stt: string | undefined;
  private sttNote: string | undefined;
  private heardTimer: ReturnType<typeof setTimeout> | undefined;
  /** what holds push-to-talk down: the pointer, Space, or both */
  private readonly holders = new Set<Holder>();

  constructor(private readonly deps: VoiceDeps) {
    this.ui = new MicUi({
      toggle: () => this.toggle(),
      press: (by) => this.press(by),
      release: (by) => this.release(by),
      mode: (m) => this.setMode(m),
      close: () => this.turnOff(),
    });
    this.update();
  }

  get state(): MicState {
    return this.machine.state;
  }

  get mode(): MicMode {
    return this.machine.mode;
  }

  // ---- from main.ts ----

  /** Connected with a stream (hello seen, not stopped): the button works. */
  setUsable(usable: boolean): void {
    if (usable === this.usable) return;
    this.usable = usable;
    this.update();
  }

  hello(m: HelloMessage): void {
    this.helloSeen = true;
    this.stt = m.stt;
    this.sttNote = m.stt_note;
    this.history.newSession();
    this.renderHistory();
    clearTimeout(this.heardTimer);
    if (this.hasStt()) {
      this.send(this.machine.hello(this.playback()));
    } else {
      this.machine.socketClosed(); // a new server session: nothing of ours is started there
      this.turnOff();
    }
    this.update();
  }

  /** The socket closed: the mic turns off (the user turns it on again after the reconnect). */
  socketClosed(): void {
    this.machine.socketClosed();
    this.turnOff();
  }

  /** Stop stream: the mic turns off. */
  streamStopped(): void {
    this.turnOff();
  }

  transportChanged(t: Transport | null): void {
    this.send(this.machine.transport(t));
    this.update();
  }

  userSpeech(m: UserSpeechMessage): void {
    this.machine.speech(m.state, m.dropped);
    clearTimeout(this.heardTimer);
    if (this.machine.state === 'heard') {
      this.heardTimer = setTimeout(() => {
        this.machine.settled();
        this.update();
      }, HEARD_TIMEOUT_MS);
    }
    this.update();
  }

  userTranscript(m: UserTranscriptMessage): void {
    this.history.user(m.text, 'voice');
    this.renderHistory();
    this.settle();
  }

  /** A server error: the plain-words text for a microphone error (null: not one). */
  serverError(m: ErrorMessage): string | null {
    const text = micServerErrorText(m.code, m.message, this.sttNote);
    if (text === null) return null;
    if (m.code === 'stt_not_configured') {
      this.stt = 'none';
      this.machine.socketClosed(); // the server never started it: nothing to stop
      this.turnOff();
    } else if (m.code === 'stt_failed' || m.code === 'nothing_heard') {
      this.settle();
    }
    return text;
  }

  typed(text: string): void {
    this.history.user(text, 'typed');
    this.renderHistory();
  }

  caption(m: TranscriptMessage): void {
    this.history.caption(m.turn, m.text, m.start_pdt_ms);
    this.renderHistory();
  }

  /** `turn` was interrupted at about `pdt` (server program date time). */
  interrupted(turn: number, pdt: number): void {
    this.history.interrupted(turn, pdt);
    this.renderHistory();
  }

  // ---- user actions ----

  private toggle(): void {
    if (!this.explainNoStt()) return;
    if (this.capture || this.opening) this.turnOff();
    else this.turnOn();
  }

  private press(by: Holder): void {
    if (!this.explainNoStt() || !this.usable) return;
    this.holders.add(by);
    this.send(this.machine.press(this.playback()));
    if (!this.capture && !this.opening) this.turnOn();
    this.update();
  }

  private release(by: Holder): void {
    if (!this.holders.delete(by) || this.holders.size > 0) return;
    this.send(this.machine.release());
    this.update();
  }

  private setMode(mode: MicMode): void {
    if (mode === this.machine.mode) return;
    this.modes.set(mode);
    // A new mode starts with the mic off: switching never opens it by itself.
    this.turnOff();
    this.holders.clear();
    this.send(this.machine.setMode(mode, this.playback()));
    this.update();
  }

  /** True when the server can listen; else says why not. */
  private explainNoStt(): boolean {
    if (this.hasStt()) return true;
    this.deps.error(noSttText(this.stt, this.sttNote));
    return false;
  }

  private hasStt(): boolean {
    return !this.helloSeen || (this.stt !== undefined && this.stt !== 'none');
  }

  // ---- the capture ----

  private turnOn(): void {
    const seq = ++this.openSeq;
    this.opening = true;
    this.update();
    MicCapture.open({ frame: (f) => this.frame(f), ended: () => this.ended(seq) }).then(
      (cap) => {
        if (seq !== this.openSeq) {
          cap.close();
          return;
        }
        this.capture = cap;
        this.opening = false;
        this.deps.log('info', `mic: on (${this.machine.mode}, ${cap.sampleRate} Hz, ${cap.channels} ch${cap.label ? `, ${cap.label}` : ''})`);
        this.send(this.machine.opened(this.playback()));
        this.update();
      },
      (e: unknown) => {
        if (seq !== this.openSeq) return;
        this.opening = false;
        this.holders.clear();
        this.machine.closed();
        const text = micOpenErrorText(e);
        this.deps.log('warn', `mic: could not open: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        this.deps.error(text);
        this.update();
      },
    );
  }

  private turnOff(): void {
    this.openSeq += 1;
    this.opening = false;
    this.holders.clear();
    if (this.capture) {
      this.capture.close();
      this.capture = null;
      this.deps.log('info', 'mic: off');
    }
    this.send(this.machine.closed());
    this.levelDb = LEVEL_FLOOR_DB;
    this.update();
  }

  private ended(seq: number): void {
    if (seq !== this.openSeq) return;
    this.deps.error('The microphone stopped (was it unplugged?). Click the microphone to try again.');
    this.turnOff();
  }

  private frame(data: ArrayBuffer): void {
    this.levelDb = levelDb(data);
    this.ui.setLevel(this.levelDb);
    if (!this.machine.sending) return;
    if (this.deps.sendBinary(data)) this.framesSent += 1;
    else this.framesDropped += 1;
  }

  // ---- helpers ----

  private settle(): void {
    clearTimeout(this.heardTimer);
    this.machine.settled();
    this.update();
  }

  private playback(): Transport {
    return this.deps.transport() ?? this.machine.playback;
  }

  private send(msgs: MicClientMessage[]): void {
    for (const m of msgs) {
      this.deps.send(m);
      this.sent.push(m);
    }
    if (this.sent.length > 200) this.sent.splice(0, this.sent.length - 200);
  }

  private renderHistory(): void {
    this.ui.renderHistory(this.history.entries);
  }

  private update(): void {
    const open = this.capture !== null || this.opening;
    const m = this.machine;
    this.ui.show({
      mode: m.mode,
      state: m.state,
      open,
      held: m.held,
      usable: this.usable,
      stt: this.hasStt(),
      label: micButtonLabel(m.mode, m.state, open),
      stateText: this.opening && !this.capture ? 'opening the microphone…' : micStateText(m.state, m.mode, open, this.deps.transport()),
    });
  }
}
