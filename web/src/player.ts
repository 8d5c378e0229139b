// The video player: hls.js where MSE exists, native HLS otherwise (Safari/iOS).
// Owns one playback at a time; load() tears down the previous one first.

import Hls, { type ErrorData, type HlsConfig, type ILogger, type Part } from 'hls.js';
import type { LogLevel } from './protocol';
import { playWithSound } from './autoplay';
import { RecoveryPolicy } from './recovery';

export interface FatalInfo {
  type: string;
  details: string;
  reason: string;
  url: string;
  at: number;
}

export interface PlayerEvents {
  /** Something worth sending to the server log. */
  log(level: LogLevel, message: string): void;
  /** Something the viewer should see in the error area. */
  error(message: string): void;
  /** A fatal hls.js error (before recovery is attempted). */
  fatal(info: FatalInfo): void;
  /** Playback is progressing (after start or after a recovery). */
  healthy(): void;
  /** The browser refused audible autoplay; we are playing muted. */
  autoplayMuted(): void;
  /** The hls.js instance changed (null when torn down / native playback). */
  hlsChanged(hls: Hls | null): void;
}

const HLS_MIME = 'application/vnd.apple.mpegurl';
/** Play anyway after this long, even if the start buffer never filled up. */
const START_TIMEOUT_MS = 10000;

/** Seconds buffered ahead of the playhead (0 if the playhead is not in a buffered range). */
function bufferedAhead(v: HTMLVideoElement): number {
  const t = v.currentTime;
  const b = v.buffered;
  for (let i = 0; i < b.length; i++) {
    // hls.js moves the playhead to the live start position, a hair before the first buffered frame
    if (b.start(i) - 0.5 <= t && t <= b.end(i)) return b.end(i) - Math.max(t, b.start(i));
  }
  return 0;
}

function describeError(d: ErrorData): string {
  const parts = [`type=${d.type}`, `details=${d.details}`, `fatal=${d.fatal}`];
  if (d.reason) parts.push(`reason=${d.reason}`);
  if (d.error?.message && d.error.message !== d.reason) parts.push(`error=${d.error.message}`);
  const code = d.response?.code;
  if (code !== undefined) parts.push(`http=${code}`);
  const url = d.frag?.url ?? d.url ?? d.context?.url;
  if (url) parts.push(`url=${url}`);
  return `hls.js ${parts.join(' ')}`;
}

function stringify(args: unknown[]): string {
  return args
    .map((a) => {
      if (typeof a === 'string') return a;
      if (a instanceof Error) return a.message;
      try {
        return JSON.stringify(a);
      } catch {
        return String(a);
      }
    })
    .join(' ');
}

/** Keep this much played media; trim when there is this much more. */
const BACK_BUFFER_S = 30;
const BACK_BUFFER_SLACK_S = 30;

/**
 * Drop played media older than BACK_BUFFER_S, through hls.js (so its fragment tracker follows).
 * Only right after the newest published part was buffered: the next part is then at least one
 * blocking playlist reload away, so the flush cannot land while a part is in flight (see
 * `backBufferLength` in the config).
 */
function trimBackBuffer(hls: Hls, video: HTMLVideoElement, part: Part | null): void {
  const b = video.buffered;
  if (!b.length || video.currentTime - b.start(0) < BACK_BUFFER_S + BACK_BUFFER_SLACK_S) return;
  const parts = hls.latestLevelDetails?.partList;
  if (parts?.length && part !== parts[parts.length - 1]) return;
  hls.trigger(Hls.Events.BUFFER_FLUSHING, {
    startOffset: 0,
    endOffset: video.currentTime - BACK_BUFFER_S,
    type: null,
  });
}

export class Player {
  private hls: Hls | null = null;
  private url: string | null = null;
  private recovery = new RecoveryPolicy();
  private reloadTimer: ReturnType<typeof setTimeout> | undefined;
  private generation = 0;
  private detachVideo: (() => void) | null = null;
  private cancelStart: (() => void) | null = null;
  private manifestLoaded = false;
  private manifestRetries = 0;
  /** access token sent with every playlist and segment request (ACCESS_TOKEN_PLAYBACK) */
  private token: string | null = null;

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly events: PlayerEvents,
  ) {}

  /** The access token for the next `load` (servers with ACCESS_TOKEN_PLAYBACK=true). */
  setToken(token: string | null): void {
    this.token = token;
  }

  get instance(): Hls | null {
    return this.hls;
  }

  /** Start playing `url` (absolute), replacing whatever played before. */
  load(url: string): void {
    this.destroy();
    this.url = url;
    this.recovery = new RecoveryPolicy();
    this.attach();
  }

  /** Stop playback and release everything (hls.js instance, MSE, timers, listeners). */
  destroy(): void {
    this.generation++;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = undefined;
    this.url = null;
    this.teardown();
  }

  unmute(): void {
    this.video.muted = false;
    void this.video.play().catch(() => {});
  }

  private teardown(): void {
    this.cancelStart?.();
    this.cancelStart = null;
    this.detachVideo?.();
    this.detachVideo = null;
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
      this.events.hlsChanged(null);
    }
    this.video.removeAttribute('src');
    this.video.load();
  }

  private attach(): void {
    const url = this.url;
    if (!url) return;
    this.watchVideo();
    if (Hls.isSupported()) {
      this.attachHls(url);
    } else if (this.video.canPlayType(HLS_MIME)) {
      this.video.src = url;
      void this.play();
    } else {
      this.events.error('This browser cannot play HLS video (no Media Source Extensions, no native HLS).');
      this.events.log('error', 'player: neither hls.js nor native HLS is supported');
    }
  }

  private hlsConfig(url: string): Partial<HlsConfig> {
    const forward = (level: LogLevel) => (...args: unknown[]) => {
      const text = stringify(args);
      (level === 'error' ? console.error : console.warn)('[hls.js]', text);
      // Until the first playlist arrives, hls.js warns about each (expected) 404 retry of it:
      // a session's playlist appears shortly after its hello. Count those, report once.
      if (level === 'warn' && !this.manifestLoaded && text.includes(url)) {
        this.manifestRetries++;
        return;
      }
      this.events.log(level, `hls.js ${level}: ${text}`);
    };
    const quiet = () => {};
    const logger: ILogger = {
      trace: quiet,
      debug: quiet,
      log: quiet,
      info: quiet,
      warn: forward('warn'),
      error: forward('error'),
    };
    const token = this.token;
    return {
      debug: logger,
      // With an access token, every playlist and segment request carries it.
      xhrSetup: token
        ? (xhr: XMLHttpRequest) => xhr.setRequestHeader('Authorization', `Bearer ${token}`)
        : undefined,
      // Low-Latency HLS (settings pinned for hls.js 1.7): load parts with blocking playlist
      // reloads and play the server's PART-HOLD-BACK (three parts, ~1 s) behind the live edge.
      lowLatencyMode: true,
      // After a stall hls.js moves its target back by this much and never takes it back: one
      // part, instead of the default whole second.
      liveSyncOnStallIncrease: 0.33,
      // Catch up at most 10 % faster (inaudible in speech) when further behind than the target.
      maxLiveSyncPlaybackRate: 1.1,
      // hls.js's own back-buffer eviction is off: it runs every segment, and when its flush
      // completes while a part is between loaded and buffered, hls.js 1.7 forgets the parts it
      // has of that segment and stops loading (the playhead stalls at the end of the buffer).
      // trimBackBuffer() bounds the back buffer instead, at moments without a part in flight.
      backBufferLength: Infinity,
      // The server may announce a playlist a moment before its first segment is written:
      // keep retrying a 404 on the very first playlist load (every 250 ms, up to 10 s).
      manifestLoadPolicy: {
        default: {
          maxTimeToFirstByteMs: 10000,
          maxLoadTimeMs: 20000,
          timeoutRetry: { maxNumRetry: 2, retryDelayMs: 0, maxRetryDelayMs: 0 },
          errorRetry: {
            maxNumRetry: 40,
            retryDelayMs: 250,
            maxRetryDelayMs: 250,
            backoff: 'linear',
            shouldRetry: (cfg, count, _timeout, response, retry) =>
              retry || (response?.code === 404 && count < (cfg?.maxNumRetry ?? 0)),
          },
        },
      },
    };
  }

  private attachHls(url: string): void {
    this.manifestLoaded = false;
    this.manifestRetries = 0;
    const hls = new Hls(this.hlsConfig(url));
    // The stream carries a WebVTT subtitles rendition; the page draws its own captions (timed
    // from the transcript messages), so hls.js keeps the text track hidden instead of showing it.
    hls.subtitleDisplay = false;
    this.hls = hls;
    this.events.hlsChanged(hls);
    const gen = this.generation;

    // Start playback only once a little media is buffered ahead. A fresh live session has a
    // single segment in its playlist; playing it at once stalls as soon as it runs out, because
    // the next one is only seen at the next playlist reload.
    let targetDuration = 2;
    let partTarget = 0;
    let started = false;
    const start = () => {
      if (started || gen !== this.generation) return;
      started = true;
      clearTimeout(startTimer);
      void this.play();
    };
    const startTimer = setTimeout(start, START_TIMEOUT_MS);
    this.cancelStart = () => clearTimeout(startTimer);
    const created = performance.now();
    hls.on(Hls.Events.MANIFEST_LOADED, () => {
      this.manifestLoaded = true;
      if (this.manifestRetries > 0) {
        const ms = Math.round(performance.now() - created);
        this.events.log('info', `player: playlist available after ${this.manifestRetries} retries (${ms} ms)`);
      }
    });
    hls.on(Hls.Events.LEVEL_LOADED, (_evt, data) => {
      targetDuration = data.details.targetduration || targetDuration;
      partTarget = data.details.partTarget || 0;
    });
    hls.on(Hls.Events.FRAG_BUFFERED, (_evt, data) => {
      this.recovery.healthy();
      trimBackBuffer(hls, this.video, data.part);
      // Low-latency: hls.js starts PART-HOLD-BACK (3 parts) behind the edge, so two parts are
      // about all there is to wait for; every moment spent paused adds to the latency.
      const enough = partTarget > 0 ? 2 * partTarget : Math.min(2 * targetDuration, 6);
      if (!started && bufferedAhead(this.video) >= enough - 0.25) start();
    });
    hls.on(Hls.Events.ERROR, (_evt, data) => {
      if (gen !== this.generation || hls !== this.hls) return;
      this.onHlsError(hls, data);
    });
    hls.loadSource(url);
    hls.attachMedia(this.video);
  }

  private onHlsError(hls: Hls, data: ErrorData): void {
    const text = describeError(data);
    if (!data.fatal) {
      // hls.js recovers from these by itself (retries, nudges over stalls); just report them.
      console.warn(text);
      this.events.log('warn', text);
      return;
    }
    console.error(text);
    this.events.log('error', text);
    this.events.fatal({
      type: data.type,
      details: data.details,
      reason: data.reason ?? data.error?.message ?? '',
      url: data.frag?.url ?? data.url ?? '',
      at: Date.now(),
    });
    const step = this.recovery.decide(data.type, data.details, performance.now());
    switch (step.action) {
      case 'startLoad':
        this.events.error(`Stream network error (${data.details}); retrying…`);
        hls.startLoad();
        break;
      case 'recoverMedia':
        this.events.error(`Stream media error (${data.details}); recovering…`);
        hls.recoverMediaError();
        break;
      case 'reload':
        this.events.error(
          `Stream failed (${data.details}); reloading in ${(step.delayMs / 1000).toFixed(1)} s…`,
        );
        this.scheduleReload(step.delayMs);
        break;
    }
  }

  private scheduleReload(delayMs: number): void {
    const url = this.url;
    this.teardown();
    const gen = this.generation;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => {
      if (gen !== this.generation || url !== this.url) return;
      this.events.log('info', `player: reloading ${url}`);
      this.attach();
    }, delayMs);
  }

  private watchVideo(): void {
    const v = this.video;
    let lastTime = -1;
    const onTime = () => {
      // "healthy" once the clock really moves, not on every timeupdate
      if (lastTime >= 0 && v.currentTime > lastTime) this.events.healthy();
      lastTime = v.currentTime;
    };
    const onError = () => {
      const err = v.error;
      if (!err) return;
      const text = `video element error code=${err.code} ${err.message ?? ''}`.trim();
      this.events.log('error', text);
      if (!this.hls) {
        // native playback has no recovery hooks: reload the source
        this.events.error(`Video error (${err.code}); reloading…`);
        const step = this.recovery.decide('other', 'nativeVideoError', performance.now());
        this.scheduleReload(step.action === 'reload' ? step.delayMs : 1000);
      }
    };
    v.addEventListener('timeupdate', onTime);
    v.addEventListener('error', onError);
    this.detachVideo = () => {
      v.removeEventListener('timeupdate', onTime);
      v.removeEventListener('error', onError);
    };
  }

  /** play() with sound; if the browser says no, play muted and tell the UI. */
  private play(): Promise<void> {
    const gen = this.generation;
    return playWithSound(this.video, this.events, () => gen === this.generation);
  }
}
