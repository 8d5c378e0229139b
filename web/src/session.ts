// The WebSocket to /session: connect, parse, reconnect with backoff. One socket at a time;
// every reconnect is a new server session (the server answers with a new hello).

import { encode, parseServerMessage, type ClientMessage, type ServerMessage } from './protocol';
import { Backoff } from './reconnect';

export interface SessionHandlers {
  open(): void;
  /** A valid message. `raw` is the parsed JSON (or the text if it was not JSON). */
  message(msg: ServerMessage, raw: unknown): void;
  /** A frame that is not a valid message. */
  invalid(error: string, raw: unknown): void;
  /** The socket failed (the browser gives no details). A close follows. */
  socketError(): void;
  /** The socket closed; a reconnect is scheduled in `retryInMs`. */
  closed(code: number, reason: string, retryInMs: number): void;
}

/** Queued bytes beyond which microphone frames are dropped (about 2 s of 16 kHz audio). */
const MAX_BUFFERED_BYTES = 64 * 1024;

export class Session {
  private ws: WebSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(
    /** The socket URL, asked again at each (re)connect (it may carry a new access token). */
    private readonly url: string | (() => string),
    private readonly handlers: SessionHandlers,
    private readonly backoff: Backoff = new Backoff({ initialMs: 500, maxMs: 8000 }),
  ) {}

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close(1000, 'page closing');
    this.ws = null;
  }

  /** The server said hello: the connection is good, start the next backoff from scratch. */
  established(): void {
    this.backoff.reset();
  }

  send(msg: ClientMessage): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(encode(msg));
    return true;
  }

  /**
   * A binary message (microphone audio). Not sent when the socket is closed or already has more
   * than `MAX_BUFFERED_BYTES` queued (a stalled network): late audio is worse than lost audio.
   */
  sendBinary(data: ArrayBuffer): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES) return false;
    this.ws.send(data);
    return true;
  }

  /** Test hook: drop the socket as if the network had. */
  debugClose(): void {
    this.ws?.close(4000, 'debug close');
  }

  private connect(): void {
    clearTimeout(this.timer);
    let ws: WebSocket;
    try {
      ws = new WebSocket(typeof this.url === 'function' ? this.url() : this.url);
    } catch (e) {
      console.error('WebSocket constructor failed', e);
      this.scheduleReconnect(0, String(e));
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      if (this.ws === ws) this.handlers.open();
    });
    ws.addEventListener('message', (ev) => {
      if (this.ws !== ws) return;
      if (typeof ev.data !== 'string') {
        this.handlers.invalid('binary frame', '[binary]');
        return;
      }
      let raw: unknown = ev.data;
      try {
        raw = JSON.parse(ev.data);
      } catch {
        /* keep the text */
      }
      const res = parseServerMessage(ev.data);
      if (res.ok) this.handlers.message(res.message, raw);
      else this.handlers.invalid(res.error, raw);
    });
    ws.addEventListener('error', () => {
      if (this.ws === ws) this.handlers.socketError();
    });
    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.scheduleReconnect(ev.code, ev.reason);
    });
  }

  private scheduleReconnect(code: number, reason: string): void {
    if (this.stopped) return;
    const delay = this.backoff.next();
    this.handlers.closed(code, reason, delay);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
