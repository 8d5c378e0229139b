// WebRTC playback over WHEP: one receive-only RTCPeerConnection per stream (video + audio in one
// MediaStream), the offer POSTed to the session's WHEP endpoint, the answer applied, the media
// shown in the page's <video>. The server is ICE-lite with its candidates in the answer, so the
// offer goes out at once (no trickle, no waiting for candidate gathering). Owns one connection at
// a time; load() tears down the previous one first, destroy() DELETEs the viewer's resource.

import { playWithSound } from './autoplay';
import type { LogLevel } from './protocol';

export interface WhepEvents {
  log(level: LogLevel, message: string): void;
  /** The first frame is on screen (after load, or again after a reconnect). */
  playing(): void;
  /** WebRTC cannot play this stream (refused, no connection in time, connection lost). */
  failed(reason: string): void;
  /** The browser refused audible autoplay; we are playing muted. */
  autoplayMuted(): void;
}

/** What getStats says about the incoming media, refreshed every second while connected. */
export interface WhepStats {
  framesDecoded: number;
  audioPacketsReceived: number;
  /** total energy of the received audio (grows fast while the avatar speaks, slowly in silence) */
  audioEnergy: number;
  /** time media waited in the jitter buffers before playout over the last second (the longer of audio and video), ms */
  jitterBufferMs: number;
  /** round trip to the server (ICE candidate pair), ms */
  rttMs: number | null;
}

/** A connection that was playing and stays disconnected this long has failed. */
const DISCONNECTED_GRACE_MS = 3000;
/** Playout delay assumed before getStats has told anything (jitter buffer + decode), ms. */
const DEFAULT_PLAYOUT_MS = 60;

async function responseReason(resp: Response): Promise<string> {
  const text = (await resp.text().catch(() => '')).trim().slice(0, 300);
  return text ? `${resp.status}: ${text}` : `HTTP ${resp.status}`;
}

export class WhepPlayer {
  private pc: RTCPeerConnection | null = null;
  private resource: string | null = null;
  private token: string | null = null;
  private generation = 0;
  private timers: ReturnType<typeof setTimeout>[] = [];
  private statsTimer: ReturnType<typeof setInterval> | undefined;
  private disconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private started = false;
  private frameWatch: number | null = null;
  /** getStats jitter-buffer totals by kind at the last poll */
  private jitterTotals = new Map<string, { delay: number; emitted: number }>();
  stats: WhepStats = { framesDecoded: 0, audioPacketsReceived: 0, audioEnergy: 0, jitterBufferMs: 0, rttMs: null };

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly events: WhepEvents,
  ) {}

  /** The access token sent with the WHEP requests (servers with ACCESS_TOKEN). */
  setToken(token: string | null): void {
    this.token = token;
  }

  /** The current connection (tests and diagnostics read its getStats). */
  get peer(): RTCPeerConnection | null {
    return this.pc;
  }

  /** Playing now (a frame was shown since the last load). */
  get isPlaying(): boolean {
    return this.started;
  }

  /** How long a frame takes from leaving the server to the screen, as far as the page knows, ms. */
  get playoutDelayMs(): number {
    const rtt = this.stats.rttMs ?? 0;
    return rtt / 2 + (this.stats.jitterBufferMs || DEFAULT_PLAYOUT_MS) + 10;
  }

  /**
   * Connect to `whepUrl` (absolute) and play. `failed` follows if no frame is shown within
   * `timeoutMs`, the server refuses, or the connection is lost.
   */
  load(whepUrl: string, iceServers: RTCIceServer[], timeoutMs: number): void {
    this.destroy();
    const gen = this.generation;
    this.timers.push(
      setTimeout(() => {
        if (!this.started) this.fail(gen, `WebRTC did not connect within ${(timeoutMs / 1000).toFixed(0)} s`);
      }, timeoutMs),
    );
    void this.connect(whepUrl, iceServers, gen).catch((e: unknown) => this.fail(gen, e instanceof Error ? e.message : String(e)));
  }

  private async connect(whepUrl: string, iceServers: RTCIceServer[], gen: number): Promise<void> {
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
    this.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      if (gen !== this.generation) return;
      // Both tracks share one msid: the browser keeps lips and voice in sync within it.
      const from = e.streams[0];
      for (const t of from ? from.getTracks() : [e.track]) if (!stream.getTracks().includes(t)) stream.addTrack(t);
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
      void playWithSound(this.video, this.events, () => gen === this.generation);
    };
    pc.onconnectionstatechange = () => this.onConnectionState(pc, gen);
    this.watchFrames(gen);

    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const headers: Record<string, string> = { 'Content-Type': 'application/sdp' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const resp = await fetch(whepUrl, { method: 'POST', headers, body: pc.localDescription?.sdp ?? offer.sdp ?? '' });
    if (gen !== this.generation) {
      // torn down while the request was out: free the viewer the server made
      const location = resp.headers.get('Location');
      if (resp.status === 201 && location) this.sendDelete(new URL(location, whepUrl).href);
      return;
    }
    if (resp.status !== 201) throw new Error(`WebRTC refused by the server (${await responseReason(resp)})`);
    const location = resp.headers.get('Location');
    if (location) this.resource = new URL(location, whepUrl).href;
    const answer = await resp.text();
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    this.events.log('info', `webrtc: answer applied (${this.resource ?? 'no Location'})`);
  }

  /** `playing` once the first frame is presented (a `playing` event alone can precede it). */
  private watchFrames(gen: number): void {
    const v = this.video;
    const onFrame = (): void => {
      this.frameWatch = null;
      if (gen !== this.generation) return;
      if (!this.started) {
        this.started = true;
        this.startStats(gen);
        this.events.playing();
      }
    };
    if (typeof v.requestVideoFrameCallback === 'function') {
      this.frameWatch = v.requestVideoFrameCallback(onFrame);
    } else {
      const h = (): void => {
        v.removeEventListener('playing', h);
        onFrame();
      };
      v.addEventListener('playing', h);
    }
  }

  private onConnectionState(pc: RTCPeerConnection, gen: number): void {
    if (gen !== this.generation) return;
    const state = pc.connectionState;
    this.events.log('info', `webrtc: connection ${state}`);
    clearTimeout(this.disconnectTimer);
    if (state === 'failed') {
      this.fail(gen, 'the WebRTC connection failed (UDP blocked? see ICE_SERVERS in the README)');
    } else if (state === 'disconnected') {
      this.disconnectTimer = setTimeout(() => {
        if (pc.connectionState !== 'connected') this.fail(gen, 'the WebRTC connection was lost');
      }, DISCONNECTED_GRACE_MS);
    }
  }

  private fail(gen: number, reason: string): void {
    if (gen !== this.generation) return;
    this.events.log('warn', `webrtc: ${reason}`);
    this.destroy();
    this.events.failed(reason);
  }

  private startStats(gen: number): void {
    clearInterval(this.statsTimer);
    this.statsTimer = setInterval(() => {
      const pc = this.pc;
      if (!pc || gen !== this.generation) return;
      void pc.getStats().then((report) => {
        if (gen !== this.generation) return;
        const s: WhepStats = { framesDecoded: 0, audioPacketsReceived: 0, audioEnergy: 0, jitterBufferMs: 0, rttMs: null };
        let jitter = 0;
        report.forEach((r: Record<string, unknown> & { type: string }) => {
          if (r.type === 'inbound-rtp') {
            // Over the last second (the totals include the start, when buffers fill up).
            const kind = String(r.kind);
            const total = { delay: Number(r.jitterBufferDelay) || 0, emitted: Number(r.jitterBufferEmittedCount) || 0 };
            const prev = this.jitterTotals.get(kind) ?? { delay: 0, emitted: 0 };
            this.jitterTotals.set(kind, total);
            if (total.emitted > prev.emitted) jitter = Math.max(jitter, ((total.delay - prev.delay) / (total.emitted - prev.emitted)) * 1000);
            if (r.kind === 'video') s.framesDecoded = Number(r.framesDecoded) || 0;
            if (r.kind === 'audio') {
              s.audioPacketsReceived = Number(r.packetsReceived) || 0;
              s.audioEnergy = Number(r.totalAudioEnergy) || 0;
            }
          } else if (r.type === 'candidate-pair' && r.state === 'succeeded' && typeof r.currentRoundTripTime === 'number') {
            s.rttMs = r.currentRoundTripTime * 1000;
          }
        });
        s.jitterBufferMs = jitter;
        this.stats = s;
      });
    }, 1000);
  }

  unmute(): void {
    this.video.muted = false;
    void this.video.play().catch(() => {});
  }

  /** Close the connection, free the viewer on the server, stop showing the stream. */
  destroy(): void {
    this.generation++;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    clearInterval(this.statsTimer);
    clearTimeout(this.disconnectTimer);
    if (this.frameWatch !== null && typeof this.video.cancelVideoFrameCallback === 'function') this.video.cancelVideoFrameCallback(this.frameWatch);
    this.frameWatch = null;
    this.started = false;
    this.jitterTotals.clear();
    this.stats = { framesDecoded: 0, audioPacketsReceived: 0, audioEnergy: 0, jitterBufferMs: 0, rttMs: null };
    if (this.resource) this.sendDelete(this.resource);
    this.resource = null;
    if (this.pc) {
      this.pc.ontrack = null;
      this.pc.onconnectionstatechange = null;
      this.pc.close();
      this.pc = null;
    }
    if (this.video.srcObject) {
      this.video.srcObject = null;
      this.video.load();
    }
  }

  private sendDelete(url: string): void {
    const headers: Record<string, string> = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    // keepalive: the DELETE still goes out when the tab is closing
    void fetch(url, { method: 'DELETE', headers, keepalive: true }).catch(() => {});
  }
}
