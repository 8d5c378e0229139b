// Wiring: session (WebSocket) → message handlers → player + UI. Also exposes window.__talkstream.

import Hls from 'hls.js';
import './style.css';
import { Player, type FatalInfo } from './player';
import {
  controlMessage,
  logMessage,
  promptMessage,
  sessionUrl,
  type LogLevel,
  type ServerMessage,
  type Stage,
} from './protocol';
import { RateLimiter } from './ratelimit';
import { Session } from './session';
import { badgeState, type BadgeState, type ConnectionFacts } from './state';
import { Ui } from './ui';

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
};
let playing = false;
let reconnectNote = '';

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
};
window.__talkstream = debug;

function refresh(): void {
  const state = badgeState(facts);
  debug.state = state;
  debug.stage = facts.stage;
  ui.setBadge(state);
  ui.setPromptEnabled(facts.socketOpen && facts.hello);
  if (!facts.hello) ui.setOverlay(reconnectNote ? 'Reconnecting…' : 'Connecting…');
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

const player = new Player(video, {
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
});

video.addEventListener('playing', () => {
  playing = true;
  refresh();
});
video.addEventListener('emptied', () => {
  playing = false;
  refresh();
});
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
    debug.sessionId = m.session_id;
    const url = new URL(m.playlist, window.location.href).href;
    debug.playlist = m.playlist;
    ui.setSession(m.session_id);
    ui.setNote('');
    ui.setCaption('', true);
    ui.clearInfo('Server metrics');
    const s = m.stream ?? {};
    ui.setInfo('Session', 'id', m.session_id);
    ui.setInfo('Session', 'server version', m.version);
    ui.setInfo('Session', 'video', s.width && s.height ? `${s.width}×${s.height} @ ${s.fps ?? '?'} fps` : undefined);
    ui.setInfo('Session', 'segment', s.segment_ms ? `${s.segment_ms} ms` : undefined);
    ui.setInfo('Session', 'llm', m.llm);
    ui.setInfo('Session', 'tts', m.tts);
    ui.setInfo('Session', 'playlist', m.playlist);
    player.load(url);
    refresh();
  },
  status(m) {
    facts.stage = m.stage;
    ui.setNote(m.note ?? '');
    if (m.stage === 'error') showError(`Server error${m.note ? `: ${m.note}` : ''}`);
    refresh();
  },
  error(m) {
    showError(`${m.message} (${m.code})`);
  },
  transcript(m) {
    ui.setCaption(m.text, m.final);
  },
  metrics(m) {
    for (const [k, v] of Object.entries(m.values)) ui.setInfo('Server metrics', k, v);
  },
  unknown(m) {
    console.info(`talkstream: ignoring unknown message type "${m.rawType}"`, m.data);
  },
};

function dispatch(msg: ServerMessage): void {
  (handlers[msg.type] as (m: ServerMessage) => void)(msg);
}

// ---- session ----

const session = new Session(sessionUrl(window.location), {
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
    ui.setCaption('', true);
    ui.showUnmute(false);
    reconnectNote = `Disconnected (${code}${reason ? ` ${reason}` : ''}); reconnecting in ${(retryInMs / 1000).toFixed(1)} s`;
    ui.setNote(reconnectNote);
    refresh();
  },
});

// ---- prompt ----

ui.onSend((text) => {
  if (!session.send(promptMessage(text))) {
    showError('Not connected: message not sent.');
    return false;
  }
  return true;
});
ui.onInterrupt(() => {
  if (!session.send(controlMessage('interrupt'))) showError('Not connected.');
});

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
  ui.setInfo('Player', 'engine', hls ? `hls.js ${Hls.version}` : debug.playlist ? 'native HLS' : undefined);
  const buffered = video.buffered;
  const ahead = buffered.length ? buffered.end(buffered.length - 1) - video.currentTime : 0;
  ui.setInfo('Player', 'buffered', `${Math.max(0, ahead).toFixed(1)} s`);
  const latency = hls?.latency;
  ui.setInfo('Player', 'live latency', latency ? `${latency.toFixed(1)} s` : undefined);
  ui.setInfo('Player', 'picture', video.videoWidth ? `${video.videoWidth}×${video.videoHeight}` : undefined);
  const q = video.getVideoPlaybackQuality?.();
  if (q) ui.setInfo('Player', 'dropped frames', `${q.droppedVideoFrames} of ${q.totalVideoFrames}`);
  ui.setInfo('Player', 'audio', video.muted ? 'muted' : 'on');
}
setInterval(updatePlayerStats, 1000);

refresh();
session.start();
