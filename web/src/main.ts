// Wiring: session (WebSocket) → message handlers → player + UI. Also exposes window.__talkstream.

import Hls from 'hls.js';
import './style.css';
import { CaptionScheduler } from './captions';
import { PlaybackMonitor, type Stall } from './playback';
import type { FatalInfo } from './player';
import { PhotoController, type PhotoDebug } from './photo';
import { publishBadge, type PublishMessage } from './publish';
import { StreamPlayer } from './streamplayer';
import type { WhepStats } from './webrtc';
import { forcedTransport, transportLabel, type Transport } from './transport';
import {
  controlMessage,
  logMessage,
  promptMessage,
  sessionUrl,
  shownMessage,
  type LogLevel,
  type MetricsMessage,
  type OnScreenMessage,
  type ServerMessage,
  type Stage,
} from './protocol';
import { accessStep, fetchAccess, TokenStore, tokenFromHash, withToken } from './access';
import { RateLimiter } from './ratelimit';
import { Session } from './session';
import { badgeState, viewerStage, type BadgeState, type ConnectionFacts } from './state';
import { Ui } from './ui';
import { ViewerTiming } from './viewer';
import { Voice } from './voice';
import type { MicState } from './micstate';

export interface TalkstreamDebug {
  state: BadgeState;
  stage: Stage;
  sessionId: string | null;
  playlist: string | null;
  hls: Hls | null;
  /** every server message received (parsed JSON, or the raw text if it was not JSON) */
  events: unknown[];
  /** every error shown in the page */
  errors: string[];
  fatalHlsErrors: FatalInfo[];
  /** client→server log messages sent (level + text), newest last, capped */
  sentLogs: { level: LogLevel; message: string }[];
  sendLog(level: LogLevel, message: string): void;
  debugCloseSocket(): void;
  /** every caption text displayed, in order (one per transcript message: a TTS chunk, often part of a sentence) */
  captionsShown: string[];
  /** every caption line displayed (earlier captions of the turn + the current one), in order */
  captionLines: string[];
  /** the same with timing: when it was shown, the player position then and the caption's start (PDT ms) */
  captionLog: { text: string; turn: number | null; shownAt: number; pdt: number | null; startPdt: number | null }[];
  /** captions whose time had passed before the player got there (not displayed) */
  captionsMissed: string[];
  /** every status stage received, in order */
  statuses: Stage[];
  /** video `waiting` stalls, measured until `playing` (t: performance.now() ms; startup: before the first `playing` of a source) */
  waitingEvents: Stall[];
  /** performance.now() when the current source first played, or null */
  playingSince: number | null;
  /** performance.now() when a stall in progress began, or null */
  readonly stalledSince: number | null;
  /** video.currentTime decreased between two timeupdates without a seek */
  timeWentBackwards: boolean;
  /** every metrics message (parsed), in order */
  metrics: MetricsMessage[];
  /** every on_screen message (when the page showed each answer, as the server measured it) */
  onScreen: OnScreenMessage[];
  /** the access step the page took last: connect, or asking for a (right) token */
  access: 'connect' | 'ask' | 'wrong' | null;
  /** what plays the stream now (null: nothing), and why not WebRTC */
  transport: Transport | null;
  transportReason: string | null;
  /** every transport the page switched to, in order */
  transports: (Transport | null)[];
  /** WebRTC receive statistics (getStats, refreshed every second) */
  webrtcStats(): WhepStats;
  /** the WebRTC connection, if one is open */
  webrtcPeer(): RTCPeerConnection | null;
  /** program date time (Unix ms) of what is on screen now, on either transport */
  playingPdt(): number | null;
  /** the microphone: off, listening (sending), hearing (user_speech started), heard (until user_transcript) */
  readonly micState: MicState;
  readonly micMode: 'hands_free' | 'push_to_talk';
  /** binary microphone frames sent (512 samples each), and frames captured but not sent */
  readonly micFramesSent: number;
  readonly micFramesDropped: number;
  /** level of the last captured frame, dBFS (−100: silence or off) */
  readonly micLevelDb: number;
  /** every mic message sent, in order */
  readonly micMessages: unknown[];
  /** the conversation: what the user said (spoken or typed) and what the avatar said per turn */
  readonly history: { who: 'user' | 'avatar'; text: string }[];
  /** every go-live state received (RTMP publishing), in order */
  publish: PublishMessage[];
  /** "Use my photo": its state, the detected and edited landmarks, what was sent, the answers */
  readonly photo: PhotoDebug;
}

declare global {
  interface Window {
    __talkstream: TalkstreamDebug;
  }
}

const ui = new Ui();
const video = ui.video;

const facts: ConnectionFacts = {
  socketOpen: false,
  hello: false,
  stage: 'idle',
  socketError: false,
  playerError: false,
  playerSpeaking: false,
};
let playing = false;
let reconnectNote = '';
/** the server streams (hello seen, no stop sent since) */
let streaming = false;
const captions = new CaptionScheduler();
const monitor = new PlaybackMonitor();

const debug: TalkstreamDebug = {
  state: 'connecting',
  stage: 'idle',
  sessionId: null,
  playlist: null,
  hls: null,
  events: [],
  errors: [],
  fatalHlsErrors: [],
  sentLogs: [],
  sendLog: (level, message) => sendLog(level, message),
  debugCloseSocket: () => session.debugClose(),
  captionsShown: [],
  captionLines: [],
  captionLog: [],
  captionsMissed: [],
  statuses: [],
  waitingEvents: monitor.stalls,
  playingSince: null,
  get stalledSince() {
    return monitor.stalledSince;
  },
  timeWentBackwards: false,
  metrics: [],
  onScreen: [],
  access: null,
  transport: null,
  transportReason: null,
  transports: [],
  webrtcStats: () => player.webrtc.stats,
  webrtcPeer: () => player.webrtc.peer,
  playingPdt: () => player.playingPdt(),
  get micState() {
    return voice.state;
  },
  get micMode() {
    return voice.mode;
  },
  get micFramesSent() {
    return voice.framesSent;
  },
  get micFramesDropped() {
    return voice.framesDropped;
  },
  get micLevelDb() {
    return voice.levelDb;
  },
  get micMessages() {
    return voice.sent;
  },
  get history() {
    return voice.history.plain();
  },
  publish: [],
  get photo() {
    return photo.debug;
  },
};
window.__talkstream = debug;

function refresh(): void {
  const state = badgeState(facts);
  debug.state = state;
  debug.stage = facts.stage;
  ui.setBadge(state);
  const connected = facts.socketOpen && facts.hello;
  ui.setStage(connected ? viewerStage(facts) : null);
  ui.setPromptEnabled(connected && streaming, connected && streaming && (facts.stage === 'thinking' || facts.stage === 'speaking'));
  ui.setStreamToggle(connected ? (streaming ? 'stop' : 'start') : null);
  voice.setUsable(connected && streaming);
  if (!facts.hello) ui.setOverlay(reconnectNote ? 'Reconnecting…' : 'Connecting…');
  else if (!streaming && (video.ended || !playing)) ui.setOverlay('Stream stopped');
  else if (video.ended) ui.setOverlay('Stream ended');
  else if (!playing) ui.setOverlay('Starting stream…');
  else ui.setOverlay(null);
}

function showError(message: string): void {
  debug.errors.push(message);
  ui.showError(message);
}

// ---- client → server logs ----

const MAX_PENDING_LOGS = 50;
const pendingLogs: { level: LogLevel; message: string }[] = [];
const logLimiter = new RateLimiter(30, 2, performance.now());

function sendLog(level: LogLevel, message: string): void {
  const dropped = logLimiter.take(performance.now());
  if (dropped === null) return;
  const text = dropped > 0 ? `${message} (${dropped} earlier log messages suppressed)` : message;
  debug.sentLogs.push({ level, message: text });
  if (debug.sentLogs.length > 200) debug.sentLogs.splice(0, debug.sentLogs.length - 200);
  if (!session.send(logMessage(level, text))) {
    pendingLogs.push({ level, message: text });
    if (pendingLogs.length > MAX_PENDING_LOGS) pendingLogs.shift();
  }
}

function flushLogs(): void {
  while (pendingLogs.length > 0) {
    const l = pendingLogs[0]!;
    if (!session.send(logMessage(l.level, l.message))) return;
    pendingLogs.shift();
  }
}

// ---- player ----

const player = new StreamPlayer(video, {
  log: sendLog,
  error: showError,
  fatal(info) {
    debug.fatalHlsErrors.push(info);
    facts.playerError = true;
    refresh();
  },
  healthy() {
    if (facts.playerError) {
      facts.playerError = false;
      refresh();
    }
  },
  autoplayMuted() {
    ui.showUnmute(true);
  },
  hlsChanged(hls) {
    debug.hls = hls;
  },
  transport(t, reason) {
    debug.transport = t;
    debug.transportReason = reason;
    debug.transports.push(t);
    ui.setTransport(t, transportLabel(t, reason));
    if (t !== null) sendLog('info', `player: playing over ${transportLabel(t, reason)}`);
    voice.transportChanged(t);
  },
}, forcedTransport(window.location.search));

video.addEventListener('playing', () => {
  playing = true;
  monitor.playing(performance.now());
  debug.playingSince = monitor.firstPlayingAt;
  refresh();
});
video.addEventListener('emptied', () => {
  playing = false;
  monitor.newSource();
  debug.playingSince = null;
  refresh();
});
video.addEventListener('waiting', () => {
  monitor.waiting(performance.now(), video.currentTime);
  // After Stop stream, a stall is the end of what was published (hls.js does not always end
  // an LL-HLS stream whose audio stops a few ms before its video): the stream is over.
  if (!streaming && player.transport === 'hls') {
    player.destroy();
    playing = false;
    refresh();
  }
});
video.addEventListener('seeking', () => monitor.seekStart());
video.addEventListener('seeked', () => monitor.seekEnd(video.currentTime));
video.addEventListener('timeupdate', () => {
  monitor.timeUpdate(video.currentTime, video.seeking, performance.now());
  if (monitor.timeWentBackwards && !debug.timeWentBackwards) {
    debug.timeWentBackwards = true;
    const b = monitor.backwards[0]!;
    sendLog('warn', `player: currentTime went backwards from ${b.from.toFixed(3)} to ${b.to.toFixed(3)} s`);
  }
  updateCaptions();
});
// The page draws its own captions: never let the browser render the subtitle track on the video.
const hideTextTracks = () => {
  for (const track of Array.from(video.textTracks)) if (track.mode === 'showing') track.mode = 'hidden';
};
video.textTracks.addEventListener('addtrack', hideTextTracks);
video.textTracks.addEventListener('change', hideTextTracks);
video.addEventListener('ended', () => {
  // The server ended this stream (EXT-X-ENDLIST); a new hello will bring a new one.
  playing = false;
  ui.setNote('Stream ended');
  refresh();
});
video.addEventListener('volumechange', () => {
  if (!video.muted) ui.showUnmute(false);
});
ui.onUnmute(() => {
  player.unmute();
  ui.showUnmute(false);
});

// ---- server messages ----

type Handlers = {
  [K in ServerMessage['type']]: (msg: Extract<ServerMessage, { type: K }>) => void;
};

const handlers: Handlers = {
  hello(m) {
    session.established();
    facts.hello = true;
    facts.socketError = false;
    facts.playerError = false;
    facts.stage = 'idle';
    reconnectNote = '';
    streaming = true;
    resetCaptions();
    viewer.reset();
    debug.sessionId = m.session_id;
    const url = new URL(m.playlist, window.location.href).href;
    debug.playlist = m.playlist;
    ui.setSession(m.session_id);
    ui.setNote('');
    ui.clearInfo('Server metrics');
    const s = m.stream ?? {};
    ui.setInfo('Session', 'id', m.session_id);
    ui.setInfo('Session', 'server version', m.version);
    ui.setInfo('Session', 'video', s.width && s.height ? `${s.width}×${s.height} @ ${s.fps ?? '?'} fps` : undefined);
    ui.setInfo('Session', 'segment', s.segment_ms ? `${s.segment_ms} ms` : undefined);
    ui.setInfo('Session', 'audio', s.audio_sample_rate ? `${s.audio_sample_rate} Hz` : undefined);
    ui.setInfo('Session', 'llm', m.llm);
    ui.setInfo('Session', 'tts', m.tts);
    ui.setInfo('Session', 'video generator', m.video_generator);
    ui.setInfo('Session', 'generator note', m.generator_note);
    ui.setInfo('Session', 'playlist', m.playlist);
    ui.setInfo('Session', 'whep', m.whep);
    ui.setInfo('Session', 'speech recognizer', m.stt);
    ui.setInfo('Session', 'stt note', m.stt_note);
    ui.setInfo('Session', 'voice detection', m.vad ? Object.entries(m.vad).map(([k, v]) => `${k.replace(/_ms$/, '')} ${v} ms`).join(', ') : undefined);
    player.load({
      playlist: url,
      whep: m.whep ? new URL(m.whep, window.location.href).href : null,
      iceServers: m.ice_servers ?? [],
      serverTimeMs: m.server_time_ms ?? null,
      receivedAtMs: Date.now(),
    });
    voice.hello(m);
    photo.hello(m);
    ui.setInfo('Session', 'photos', m.portraits ? `${m.portraits}${m.portrait_max_bytes ? ` (≤ ${Math.round(m.portrait_max_bytes / 1024)} KB)` : ''}` : undefined);
    refresh();
  },
  status(m) {
    debug.statuses.push(m.stage);
    facts.stage = m.stage;
    ui.setNote(m.note ?? '');
    if (m.stage === 'error') showError(`Server error${m.note ? `: ${m.note}` : ''}`);
    refresh();
  },
  error(m) {
    if (photo.serverError(m)) return;
    showError(voice.serverError(m) ?? `${m.message} (${m.code})`);
  },
  portrait(m) {
    photo.message(m);
  },
  transcript(m) {
    if (m.turn !== undefined && m.start_pdt_ms !== undefined && !turnsSeen.has(m.turn)) {
      // The first words of a turn start right at the server's render position: a clock sample.
      turnsSeen.add(m.turn);
      serverClockOffset = m.start_pdt_ms - Date.now();
    }
    if (m.turn !== undefined && m.start_pdt_ms !== undefined) viewer.caption(m.turn, m.start_pdt_ms);
    captions.push(m);
    voice.caption(m);
    updateCaptions();
  },
  on_screen(m) {
    debug.onScreen.push(m);
    ui.setOnScreen(m.turn, m.on_screen_ms);
  },
  metrics(m) {
    debug.metrics.push(m);
    ui.setTurnMetrics(m);
    for (const [k, v] of Object.entries(m.values)) ui.setInfo('Server metrics', k, v);
    if (m.interrupted && m.turn !== undefined) {
      // The server dropped the rest of the turn at about its current render position.
      captions.dropAfter(m.turn, Date.now() + serverClockOffset);
      voice.interrupted(m.turn, Date.now() + serverClockOffset);
      updateCaptions();
    }
  },
  user_speech(m) {
    voice.userSpeech(m);
  },
  user_transcript(m) {
    voice.userTranscript(m);
  },
  publish(m) {
    debug.publish.push(m);
    const badge = publishBadge(m);
    ui.setPublish(badge);
    ui.setInfo('Session', 'go live', badge.hidden ? undefined : badge.title);
    if (m.state === 'retrying') console.warn(`talkstream: going live: ${badge.title}`);
  },
  unknown(m) {
    console.info(`talkstream: ignoring unknown message type "${m.rawType}"`, m.data);
  },
};

function dispatch(msg: ServerMessage): void {
  (handlers[msg.type] as (m: ServerMessage) => void)(msg);
}

// ---- session ----

// ---- access token (servers with ACCESS_TOKEN) ----

const tokens = new TokenStore(typeof sessionStorage === 'undefined' ? null : sessionStorage);
{
  // A link like http://host:7860/#token=… hands the page its token; keep it out of the address bar.
  const { token, rest } = tokenFromHash(window.location.hash);
  if (token) {
    tokens.set(token);
    history.replaceState(null, '', window.location.pathname + window.location.search + rest);
  }
}

const session = new Session(() => withToken(sessionUrl(window.location), tokens.get()), {
  open() {
    facts.socketOpen = true;
    flushLogs();
    refresh();
  },
  message(msg, raw) {
    debug.events.push(raw);
    dispatch(msg);
  },
  invalid(error, raw) {
    debug.events.push(raw);
    console.warn(`talkstream: invalid server message (${error})`, raw);
    sendLog('warn', `client: invalid server message (${error}): ${typeof raw === 'string' ? raw : JSON.stringify(raw)}`);
  },
  socketError() {
    facts.socketError = true;
    showError('Connection to the server failed.');
    refresh();
  },
  closed(code, reason, retryInMs) {
    facts.socketOpen = false;
    facts.hello = false;
    facts.stage = 'idle';
    playing = false;
    player.destroy();
    debug.sessionId = null;
    debug.playlist = null;
    ui.setSession(null);
    streaming = false;
    resetCaptions();
    voice.socketClosed();
    photo.socketClosed();
    ui.showUnmute(false);
    reconnectNote = `Disconnected (${code}${reason ? ` ${reason}` : ''}); reconnecting in ${(retryInMs / 1000).toFixed(1)} s`;
    ui.setNote(reconnectNote);
    refresh();
  },
});

// ---- microphone and conversation history (voice.ts) ----

const voice: Voice = new Voice({
  send: (msg) => session.send(msg),
  sendBinary: (data) => session.sendBinary(data),
  transport: () => player.transport,
  error: showError,
  log: sendLog,
});

// ---- "Use my photo" (photo.ts) ----

const photo = new PhotoController({ send: (msg) => session.send(msg), log: sendLog });

// ---- prompt ----

ui.onSend((text) => {
  if (!session.send(promptMessage(text))) {
    showError('Not connected: message not sent.');
    return false;
  }
  voice.typed(text);
  return true;
});
ui.onInterrupt(() => {
  if (!session.send(controlMessage('interrupt'))) showError('Not connected.');
});
ui.onStreamToggle((action) => {
  // The microphone turns off with the stream (its `mic stop` goes first).
  if (action === 'stop') voice.streamStopped();
  if (!session.send(controlMessage(action))) {
    showError('Not connected.');
    return;
  }
  // stop: the playlist ends, the player plays out what it has; start: a new hello follows.
  if (action === 'stop') {
    streaming = false;
    // WebRTC has nothing to play out: once the last frames are shown, the picture is gone.
    if (player.transport === 'webrtc') setTimeout(() => !streaming && player.destroy(), STOP_GRACE_MS);
  }
  refresh();
});

// ---- captions ----

/** Turns whose first transcript was seen (clock samples). */
const turnsSeen = new Set<number>();
/** server program-date-time clock minus ours (ms), estimated from each turn's first transcript */
let serverClockOffset = 0;
/** Without hls.js (native HLS) the page has no program date time: captions show at arrival. */
const nativeHls = !Hls.isSupported();
/** After Stop stream, a WebRTC picture stays this long (the last frames), ms. */
const STOP_GRACE_MS = 1000;

function resetCaptions(): void {
  captions.reset();
  facts.playerSpeaking = false;
  turnsSeen.clear();
  ui.clearCaption();
}

function updateCaptions(): void {
  const pdt = player.playingPdt();
  const r = captions.update(pdt, performance.now(), nativeHls && player.transport === 'hls');
  const shownAt = performance.now();
  for (const c of r.shown) {
    debug.captionsShown.push(c.text);
    debug.captionLog.push({ text: c.text, turn: c.turn, shownAt, pdt, startPdt: c.startPdt });
  }
  for (const c of r.missed) debug.captionsMissed.push(c.text);
  const speaking = captions.speaking(pdt, performance.now());
  if (speaking !== facts.playerSpeaking) {
    facts.playerSpeaking = speaking;
    refresh();
  }
  if (r.changed) {
    const view = captions.view();
    ui.setCaption(view);
    if (view.current !== null) debug.captionLines.push([...view.history, view.current].join(' '));
  }
}
setInterval(updateCaptions, 100);

// ---- viewer-side timing: tell the server when each answer's first frame is on screen ----

const viewer = new ViewerTiming();
if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
  const onFrame = (): void => {
    const pdt = player.playingPdt();
    if (pdt !== null) for (const turn of viewer.frame(pdt)) session.send(shownMessage(turn));
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

// ---- page-level errors and live player stats ----

window.addEventListener('error', (e) => {
  sendLog('error', `page error: ${e.message} at ${e.filename}:${e.lineno}:${e.colno}`);
});
window.addEventListener('unhandledrejection', (e) => {
  sendLog('error', `page unhandled rejection: ${String(e.reason)}`);
});
window.addEventListener('pagehide', () => session.stop());

function updatePlayerStats(): void {
  const hls = debug.hls;
  const rtc = player.transport === 'webrtc' ? player.webrtc.stats : null;
  ui.setInfo('Player', 'engine', rtc ? 'WebRTC (WHEP)' : hls ? `hls.js ${Hls.version}` : debug.playlist ? 'native HLS' : undefined);
  ui.setInfo('Player', 'frames decoded', rtc ? rtc.framesDecoded : undefined);
  ui.setInfo('Player', 'jitter buffer', rtc ? `${Math.round(rtc.jitterBufferMs)} ms` : undefined);
  ui.setInfo('Player', 'round trip', rtc && rtc.rttMs !== null ? `${Math.round(rtc.rttMs)} ms` : undefined);
  const buffered = video.buffered;
  const ahead = buffered.length ? buffered.end(buffered.length - 1) - video.currentTime : 0;
  ui.setInfo('Player', 'buffered', rtc ? undefined : `${Math.max(0, ahead).toFixed(1)} s`);
  const latency = hls?.latency;
  ui.setInfo('Player', 'live latency', latency ? `${latency.toFixed(1)} s` : undefined);
  ui.setInfo('Player', 'picture', video.videoWidth ? `${video.videoWidth}×${video.videoHeight}` : undefined);
  const q = video.getVideoPlaybackQuality?.();
  if (q) ui.setInfo('Player', 'dropped frames', `${q.droppedVideoFrames} of ${q.totalVideoFrames}`);
  ui.setInfo('Player', 'audio', video.muted ? 'muted' : 'on');
}
setInterval(updatePlayerStats, 1000);

/** Check the token with the server (when it needs one), then connect; else ask for it. */
async function connectWithAccess(): Promise<void> {
  let info;
  try {
    info = await fetchAccess(tokens.get());
  } catch (e) {
    ui.askToken(e instanceof Error ? e.message : String(e));
    return;
  }
  player.setToken(tokens.get());
  const step = accessStep(info, tokens.get());
  debug.access = step;
  if (step === 'connect') {
    ui.askToken(null);
    session.start();
    return;
  }
  if (step === 'wrong') tokens.set(null);
  ui.setOverlay('Waiting for the access token…');
  ui.askToken(step === 'wrong' ? 'That token is not right; try again.' : undefined);
}

ui.onToken((token) => {
  tokens.set(token);
  void connectWithAccess();
});

refresh();
void connectWithAccess();
