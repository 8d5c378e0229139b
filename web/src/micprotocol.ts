// The microphone part of the /session protocol (docs/protocol.md): hello's `stt`, `stt_note` and
// `vad`, the `user_speech` and `user_transcript` messages, and the client's `mic` messages.
// protocol.ts includes these in its unions and parser table.

import type { Transport } from './transport';

export type MicMode = 'hands_free' | 'push_to_talk';

/** hello.vad: the voice activity settings in use (ms). */
export interface VadSettings {
  silence_ms?: number;
  min_speech_ms?: number;
  barge_in_ms?: number;
  max_utterance_ms?: number;
}

/** The microphone fields of hello. */
export interface HelloMic {
  /** `openai` or `none` (absent from servers without a microphone) */
  stt?: string;
  /** with `stt` `none`: what to set */
  stt_note?: string;
  vad?: VadSettings;
}

/** The server hears the user (`started`) or stopped hearing them. */
export interface UserSpeechMessage {
  type: 'user_speech';
  state: 'started' | 'stopped';
  duration_ms?: number;
  /** `stopped` only: why the utterance was not transcribed (`no speech`) */
  dropped?: string;
}

/** What the recognizer heard; it starts turn `turn`. */
export interface UserTranscriptMessage {
  type: 'user_transcript';
  text: string;
  turn?: number;
}

export type MicClientMessage =
  | { type: 'mic'; action: 'start'; mode: MicMode; playback: Transport }
  | { type: 'mic'; action: 'stop' };

/** The error codes about the microphone. */
export const MIC_ERROR_CODES = ['bad_audio', 'stt_not_configured', 'stt_failed', 'nothing_heard'] as const;

type Obj = Record<string, unknown>;
type Parsed<T> = { ok: true; message: T } | { ok: false; error: string };

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (o: Obj, k: string): number | undefined =>
  typeof o[k] === 'number' && Number.isFinite(o[k]) ? (o[k] as number) : undefined;
const str = (o: Obj, k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);

/** Copy hello's microphone fields from `o` onto `msg`. */
export function parseHelloMic(o: Obj, msg: HelloMic): void {
  const stt = str(o, 'stt');
  if (stt !== undefined) msg.stt = stt;
  const note = str(o, 'stt_note');
  if (note !== undefined) msg.stt_note = note;
  if (isObj(o.vad)) {
    const vad: VadSettings = {};
    for (const k of ['silence_ms', 'min_speech_ms', 'barge_in_ms', 'max_utterance_ms'] as const) {
      const n = num(o.vad, k);
      if (n !== undefined) vad[k] = n;
    }
    msg.vad = vad;
  }
}

export function parseUserSpeech(o: Obj): Parsed<UserSpeechMessage> {
  const state = o.state;
  if (state !== 'started' && state !== 'stopped') {
    return { ok: false, error: `user_speech: unknown state ${JSON.stringify(state)}` };
  }
  const msg: UserSpeechMessage = { type: 'user_speech', state };
  const d = num(o, 'duration_ms');
  if (d !== undefined) msg.duration_ms = d;
  const dropped = str(o, 'dropped');
  if (dropped !== undefined) msg.dropped = dropped;
  return { ok: true, message: msg };
}

export function parseUserTranscript(o: Obj): Parsed<UserTranscriptMessage> {
  const text = str(o, 'text');
  if (text === undefined) return { ok: false, error: 'user_transcript: missing text' };
  const msg: UserTranscriptMessage = { type: 'user_transcript', text };
  const turn = num(o, 'turn');
  if (turn !== undefined) msg.turn = turn;
  return { ok: true, message: msg };
}

export function micStartMessage(mode: MicMode, playback: Transport): MicClientMessage {
  return { type: 'mic', action: 'start', mode, playback };
}

export function micStopMessage(): MicClientMessage {
  return { type: 'mic', action: 'stop' };
}
