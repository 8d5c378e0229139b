// Wire protocol between the page and the talkstream server (WebSocket /session).
// Incoming JSON is validated here; everything else in the app works with typed messages.
// The types mirror `crates/server/src/protocol.rs` field for field: change both together.
// The microphone messages live in micprotocol.ts.

import {
  parseHelloMic,
  parseUserSpeech,
  parseUserTranscript,
  type HelloMic,
  type MicClientMessage,
  type UserSpeechMessage,
  type UserTranscriptMessage,
} from './micprotocol';
import { landmarksProblem, type Point } from './portrait';
import { parsePublish, type PublishMessage } from './publish';

export interface StreamInfo {
  width?: number;
  height?: number;
  fps?: number;
  segment_ms?: number;
  audio_sample_rate?: number;
}

/** One `RTCIceServer` as the server sends it. */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

export interface HelloMessage extends HelloMic {
  type: 'hello';
  session_id: string;
  playlist: string;
  /** The stream's WHEP endpoint (WebRTC playback), when the server has WebRTC on. */
  whep?: string;
  /** STUN/TURN servers for the WebRTC connection (the server's ICE_SERVERS). */
  ice_servers?: IceServer[];
  /** The server's clock (Unix ms) when it sent hello. */
  server_time_ms?: number;
  version?: string;
  stream?: StreamInfo;
  llm?: string;
  tts?: string;
  /** `builtin`, `exec` or `worker`. */
  video_generator?: string;
  /** Why the configured external generator is not used, if so. */
  generator_note?: string;
  /** "Use my photo": a photo applies to the session, may become the server's default, or is off. */
  portraits?: PortraitsMode;
  /** The largest photo (bytes, before base64) the server takes. */
  portrait_max_bytes?: number;
}

export const PORTRAITS_MODES = ['session', 'default', 'off'] as const;
export type PortraitsMode = (typeof PORTRAITS_MODES)[number];

/** The server's answers to a `portrait` (or `portrait_reset`) message. */
export type PortraitMessage =
  | { type: 'portrait'; state: 'checking' }
  | {
      type: 'portrait';
      state: 'applied';
      width: number;
      height: number;
      /** it became the server's default avatar too */
      default: boolean;
      /** warnings about how the photo will look */
      notes: string[];
    }
  | { type: 'portrait'; state: 'refused'; reason: string }
  | { type: 'portrait'; state: 'reset' };

export const STAGES = ['idle', 'thinking', 'speaking', 'complete', 'error'] as const;
export type Stage = (typeof STAGES)[number];

export interface StatusMessage {
  type: 'status';
  stage: Stage;
  note?: string;
}

export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
  /** refusals by a limit (`rate_limited`, `quota_exceeded`): when to try again, ms */
  retry_after_ms?: number;
}

/**
 * Spoken text with its place on the stream timeline. `start_pdt_ms`/`end_pdt_ms` are program
 * date times (Unix ms), comparable with hls.js `playingDate`; `start_ms`/`end_ms` are media times.
 */
export interface TranscriptMessage {
  type: 'transcript';
  turn?: number;
  text: string;
  start_ms?: number;
  end_ms?: number;
  start_pdt_ms?: number;
  end_pdt_ms?: number;
}

/** The per-turn timings the server sends (ms after the prompt arrived); absent = never reached. */
export const TURN_TIMINGS = ['first_text_ms', 'first_audio_ms', 'first_frame_ms', 'first_segment_ms', 'complete_ms'] as const;
export type TurnTiming = (typeof TURN_TIMINGS)[number];

/** Every numeric field of `TurnMetrics` besides `turn`, in the order the server declares them. */
const METRIC_NUMBERS = [
  'first_token_ms',
  ...TURN_TIMINGS,
  'generator_windows',
  'builtin_windows',
  'stt_ms',
] as const;

/** The server's `TurnMetrics`, sent flat next to `"type":"metrics"`. */
export interface MetricsMessage {
  type: 'metrics';
  turn?: number;
  /** The language model's first text (absent without an LLM). */
  first_token_ms?: number;
  first_text_ms?: number;
  first_audio_ms?: number;
  first_frame_ms?: number;
  first_segment_ms?: number;
  complete_ms?: number;
  interrupted?: boolean;
  /** With an external generator: windows whose frames it supplied. */
  generator_windows?: number;
  /** With an external generator: windows the built-in renderer filled. */
  builtin_windows?: number;
  /** A spoken prompt: the speech recognizer's time, from the end of the utterance to its transcript. */
  stt_ms?: number;
  /** The fields above that the message carried, for display. */
  values: Record<string, number | boolean>;
}

/** When the page showed a turn's answer: ms from the prompt reaching the server. */
export interface OnScreenMessage {
  type: 'on_screen';
  turn: number;
  on_screen_ms: number;
}

/** A well-formed JSON object whose `type` this page does not know (yet). */
export interface UnknownMessage {
  type: 'unknown';
  rawType: string;
  data: Record<string, unknown>;
}

export type ServerMessage =
  | HelloMessage
  | StatusMessage
  | ErrorMessage
  | TranscriptMessage
  | MetricsMessage
  | OnScreenMessage
  | UserSpeechMessage
  | PublishMessage
  | UserTranscriptMessage
  | PortraitMessage
  | UnknownMessage;

export type ParseResult = { ok: true; message: ServerMessage } | { ok: false; error: string };

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const optString = (o: Obj, k: string): string | undefined =>
  typeof o[k] === 'string' ? (o[k] as string) : undefined;
const optNumber = (o: Obj, k: string): number | undefined =>
  typeof o[k] === 'number' && Number.isFinite(o[k]) ? (o[k] as number) : undefined;

function fail(error: string): ParseResult {
  return { ok: false, error };
}

/** The well-formed entries of `ice_servers` (others are dropped). */
function parseIceServers(v: unknown): IceServer[] {
  if (!Array.isArray(v)) return [];
  const out: IceServer[] = [];
  for (const e of v) {
    if (!isObj(e) || !Array.isArray(e.urls)) continue;
    const urls = e.urls.filter((u): u is string => typeof u === 'string');
    if (urls.length === 0) continue;
    const server: IceServer = { urls };
    const username = optString(e, 'username');
    const credential = optString(e, 'credential');
    if (username !== undefined) server.username = username;
    if (credential !== undefined) server.credential = credential;
    out.push(server);
  }
  return out;
}

function parseHello(o: Obj): ParseResult {
  const session_id = optString(o, 'session_id');
  const playlist = optString(o, 'playlist');
  if (!session_id) return fail('hello: missing session_id');
  if (!playlist) return fail('hello: missing playlist');
  const msg: HelloMessage = { type: 'hello', session_id, playlist };
  const whep = optString(o, 'whep');
  if (whep !== undefined) msg.whep = whep;
  const ice = parseIceServers(o.ice_servers);
  if (ice.length > 0) msg.ice_servers = ice;
  const serverTime = optNumber(o, 'server_time_ms');
  if (serverTime !== undefined) msg.server_time_ms = serverTime;
  const version = optString(o, 'version');
  if (version !== undefined) msg.version = version;
  const llm = optString(o, 'llm');
  if (llm !== undefined) msg.llm = llm;
  const tts = optString(o, 'tts');
  if (tts !== undefined) msg.tts = tts;
  const video_generator = optString(o, 'video_generator');
  if (video_generator !== undefined) msg.video_generator = video_generator;
  const generator_note = optString(o, 'generator_note');
  if (generator_note !== undefined) msg.generator_note = generator_note;
  parseHelloMic(o, msg);
  const portraits = o.portraits;
  if (typeof portraits === 'string' && (PORTRAITS_MODES as readonly string[]).includes(portraits)) {
    msg.portraits = portraits as PortraitsMode;
  }
  const maxBytes = optNumber(o, 'portrait_max_bytes');
  if (maxBytes !== undefined && Number.isInteger(maxBytes) && maxBytes > 0) msg.portrait_max_bytes = maxBytes;
  if (isObj(o.stream)) {
    const s = o.stream;
    const stream: StreamInfo = {};
    for (const k of ['width', 'height', 'fps', 'segment_ms', 'audio_sample_rate'] as const) {
      const n = optNumber(s, k);
      if (n !== undefined) stream[k] = n;
    }
    msg.stream = stream;
  }
  return { ok: true, message: msg };
}

function parseStatus(o: Obj): ParseResult {
  const stage = o.stage;
  if (typeof stage !== 'string' || !(STAGES as readonly string[]).includes(stage)) {
    return fail(`status: unknown stage ${JSON.stringify(stage)}`);
  }
  const msg: StatusMessage = { type: 'status', stage: stage as Stage };
  const note = optString(o, 'note');
  if (note !== undefined) msg.note = note;
  return { ok: true, message: msg };
}

function parseError(o: Obj): ParseResult {
  const message = optString(o, 'message');
  const code = optString(o, 'code') ?? 'error';
  if (message === undefined) return fail('error: missing message');
  const msg: ErrorMessage = { type: 'error', code, message };
  const retry = o.retry_after_ms;
  if (typeof retry === 'number' && Number.isFinite(retry) && retry >= 0) msg.retry_after_ms = retry;
  return { ok: true, message: msg };
}

function parseTranscript(o: Obj): ParseResult {
  const text = optString(o, 'text');
  if (text === undefined) return fail('transcript: missing text');
  const msg: TranscriptMessage = { type: 'transcript', text };
  for (const k of ['turn', 'start_ms', 'end_ms', 'start_pdt_ms', 'end_pdt_ms'] as const) {
    const n = optNumber(o, k);
    if (n !== undefined) msg[k] = n;
  }
  return { ok: true, message: msg };
}

function parseMetrics(o: Obj): ParseResult {
  // The server's one shape: the turn's fields flat next to "type"; anything else is ignored.
  const values: MetricsMessage['values'] = {};
  const msg: MetricsMessage = { type: 'metrics', values };
  const turn = optNumber(o, 'turn');
  if (turn !== undefined) msg.turn = values.turn = turn;
  for (const k of METRIC_NUMBERS) {
    const n = optNumber(o, k);
    if (n !== undefined) msg[k] = values[k] = n;
  }
  if (typeof o.interrupted === 'boolean') msg.interrupted = values.interrupted = o.interrupted;
  return { ok: true, message: msg };
}

function parseOnScreen(o: Obj): ParseResult {
  const turn = optNumber(o, 'turn');
  const ms = optNumber(o, 'on_screen_ms');
  if (turn === undefined || ms === undefined) return fail('on_screen: missing turn or on_screen_ms');
  return { ok: true, message: { type: 'on_screen', turn, on_screen_ms: ms } };
}

function parsePortrait(o: Obj): ParseResult {
  switch (o.state) {
    case 'checking':
    case 'reset':
      return { ok: true, message: { type: 'portrait', state: o.state } };
    case 'applied': {
      const width = optNumber(o, 'width');
      const height = optNumber(o, 'height');
      if (width === undefined || height === undefined) return fail('portrait applied: missing width or height');
      const notes = Array.isArray(o.notes) ? o.notes.filter((n): n is string => typeof n === 'string' && n !== '') : [];
      return { ok: true, message: { type: 'portrait', state: 'applied', width, height, default: o.default === true, notes } };
    }
    case 'refused':
      return { ok: true, message: { type: 'portrait', state: 'refused', reason: optString(o, 'reason') || 'the server refused the photo' } };
    default:
      return fail(`portrait: unknown state ${JSON.stringify(o.state)}`);
  }
}

const parsers: Record<string, (o: Obj) => ParseResult> = {
  portrait: parsePortrait,
  on_screen: parseOnScreen,
  hello: parseHello,
  status: parseStatus,
  error: parseError,
  transcript: parseTranscript,
  metrics: parseMetrics,
  user_speech: parseUserSpeech,
  user_transcript: parseUserTranscript,
  publish: (o) => {
    const msg = parsePublish(o);
    return msg ? { ok: true, message: msg } : fail('publish: missing or unknown state or target');
  },
};

/** Parse one WebSocket text frame. Never throws. */
export function parseServerMessage(raw: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return fail('not JSON');
  }
  if (!isObj(value)) return fail('not a JSON object');
  const type = value.type;
  if (typeof type !== 'string') return fail('missing "type"');
  const parser = parsers[type];
  if (!parser) return { ok: true, message: { type: 'unknown', rawType: type, data: value } };
  return parser(value);
}

// ---- client -> server ----

export type LogLevel = 'error' | 'warn' | 'info';
export type ControlAction = 'start' | 'stop' | 'interrupt';

export type ClientMessage =
  | { type: 'log'; level: LogLevel; message: string }
  | { type: 'prompt'; text: string }
  | { type: 'control'; action: ControlAction }
  | { type: 'shown'; turn: number }
  | PortraitClientMessage
  | MicClientMessage;

/** A photo for the avatar (standard base64 of JPEG/PNG bytes) and its 68 landmarks in its pixels. */
export type PortraitClientMessage =
  | { type: 'portrait'; image: string; landmarks: [number, number][] }
  | { type: 'portrait_reset' };

/** Longest log line we forward; the server should not be flooded by a runaway error string. */
export const MAX_LOG_CHARS = 2000;

export function logMessage(level: LogLevel, message: string): ClientMessage {
  const text = message.length > MAX_LOG_CHARS ? `${message.slice(0, MAX_LOG_CHARS)}…` : message;
  return { type: 'log', level, message: text };
}

export function promptMessage(text: string): ClientMessage {
  return { type: 'prompt', text };
}

/** The first frame of `turn`'s answer is on screen. */
export function shownMessage(turn: number): ClientMessage {
  return { type: 'shown', turn };
}

export function controlMessage(action: ControlAction): ClientMessage {
  return { type: 'control', action };
}

/**
 * The `portrait` message: `image` is the base64 of the picture's bytes, `landmarks` its 68
 * points in its pixels (rounded to 1/100 px). Throws on points `landmarksProblem` refuses.
 */
export function portraitMessage(image: string, landmarks: readonly Point[], width: number, height: number): PortraitClientMessage {
  const problem = landmarksProblem(landmarks, width, height);
  if (problem) throw new Error(`portrait: ${problem}`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(image) || image.length % 4 !== 0) throw new Error('portrait: image is not standard base64');
  const r = (v: number) => Math.round(v * 100) / 100;
  return { type: 'portrait', image, landmarks: landmarks.map((p) => [r(p[0]), r(p[1])]) };
}

export function portraitResetMessage(): PortraitClientMessage {
  return { type: 'portrait_reset' };
}

export function encode(msg: ClientMessage): string {
  return JSON.stringify(msg);
}

/** ws(s)://host/session for the page's own origin. */
export function sessionUrl(loc: { protocol: string; host: string }): string {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/session`;
}
