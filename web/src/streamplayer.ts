// The page's player for one session's stream, over either transport: WebRTC (WHEP) by default,
// HLS (hls.js) when WebRTC is unavailable or fails to connect in time (see transport.ts). Also
// maps "now on screen" to the stream's program date time for both, which captions and the
// viewer timing use.

import type Hls from 'hls.js';
import type { IceServer } from './protocol';
import { Player, type PlayerEvents } from './player';
import { chooseTransport, WEBRTC_CONNECT_TIMEOUT_MS, type Transport } from './transport';
import { WhepPlayer } from './webrtc';

export interface StreamPlayerEvents extends PlayerEvents {
  /** The transport changed (null: nothing plays); `reason` says why not WebRTC. */
  transport(t: Transport | null, reason: string | null): void;
}

export interface StreamSource {
  /** absolute playlist URL */
  playlist: string;
  /** absolute WHEP endpoint, if the server has WebRTC on */
  whep: string | null;
  iceServers: IceServer[];
  /** the server's clock (Unix ms) when it sent hello, and ours when it arrived */
  serverTimeMs: number | null;
  receivedAtMs: number;
}

/** Retry a forced WebRTC after a failure this long later. */
const FORCED_RETRY_MS = 2000;

export class StreamPlayer {
  readonly hls: Player;
  readonly webrtc: WhepPlayer;
  private source: StreamSource | null = null;
  private current: Transport | null = null;
  private failedBefore: string | null = null;
  /** server clock minus ours, ms (from hello) */
  private clockOffsetMs = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    video: HTMLVideoElement,
    private readonly events: StreamPlayerEvents,
    private readonly forced: Transport | null,
  ) {
    this.hls = new Player(video, events);
    this.webrtc = new WhepPlayer(video, {
      log: events.log,
      autoplayMuted: events.autoplayMuted,
      playing: () => events.healthy(),
      failed: (reason) => this.webrtcFailed(reason),
    });
  }

  get transport(): Transport | null {
    return this.current;
  }

  get hlsInstance(): Hls | null {
    return this.hls.instance;
  }

  setToken(token: string | null): void {
    this.hls.setToken(token);
    this.webrtc.setToken(token);
  }

  /** Play a (new) session's stream. */
  load(source: StreamSource): void {
    this.destroy();
    this.source = source;
    if (source.serverTimeMs !== null) this.clockOffsetMs = source.serverTimeMs - source.receivedAtMs;
    const choice = chooseTransport({
      forced: this.forced,
      whep: source.whep !== null,
      rtcSupported: typeof RTCPeerConnection !== 'undefined',
      failedBefore: this.failedBefore,
    });
    if (choice.transport === 'webrtc' && source.whep) {
      this.setTransport('webrtc', null);
      this.webrtc.load(source.whep, source.iceServers, WEBRTC_CONNECT_TIMEOUT_MS);
    } else {
      this.setTransport('hls', choice.reason);
      this.hls.load(source.playlist);
    }
  }

  private webrtcFailed(reason: string): void {
    const source = this.source;
    if (!source) return;
    if (this.forced === 'webrtc') {
      this.events.error(`WebRTC: ${reason}; retrying…`);
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        if (this.source === source && source.whep) this.webrtc.load(source.whep, source.iceServers, WEBRTC_CONNECT_TIMEOUT_MS);
      }, FORCED_RETRY_MS);
      return;
    }
    this.failedBefore = reason;
    this.events.log('warn', `player: ${reason}; playing HLS instead`);
    this.setTransport('hls', reason);
    this.hls.load(source.playlist);
  }

  private setTransport(t: Transport | null, reason: string | null): void {
    this.current = t;
    this.events.transport(t, reason);
  }

  /** Program date time (Unix ms) of what is on screen now, or null if unknown. */
  playingPdt(): number | null {
    switch (this.current) {
      case 'hls': {
        const date = this.hls.instance?.playingDate;
        return date ? date.getTime() : null;
      }
      case 'webrtc':
        // Frames leave the server when due (at their program date time) and reach the screen
        // after the network and the jitter buffer.
        return this.webrtc.isPlaying ? Date.now() + this.clockOffsetMs - this.webrtc.playoutDelayMs : null;
      case null:
        return null;
    }
  }

  unmute(): void {
    if (this.current === 'webrtc') this.webrtc.unmute();
    else this.hls.unmute();
  }

  /** Stop playing and release everything. */
  destroy(): void {
    clearTimeout(this.retryTimer);
    this.source = null;
    this.webrtc.destroy();
    this.hls.destroy();
    if (this.current !== null) this.setTransport(null, null);
  }
}
