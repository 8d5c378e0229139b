// Reconnect backoff: pure, no timers. The caller asks for the next delay and resets after success.

export interface BackoffOptions {
  /** First delay in ms (default 500). */
  initialMs?: number;
  /** Upper bound in ms (default 8000). */
  maxMs?: number;
  /** Growth factor per attempt (default 2). */
  factor?: number;
  /** 0..1: spread each delay randomly by ±jitter (default 0 = deterministic). */
  jitter?: number;
  /** Random source for jitter, injectable for tests. */
  random?: () => number;
}

export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  readonly jitter: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 500;
    this.maxMs = opts.maxMs ?? 8000;
    this.factor = opts.factor ?? 2;
    this.jitter = Math.min(Math.max(opts.jitter ?? 0, 0), 1);
    this.random = opts.random ?? Math.random;
    if (!(this.initialMs > 0) || !(this.maxMs >= this.initialMs) || !(this.factor >= 1)) {
      throw new Error('Backoff: need 0 < initialMs <= maxMs and factor >= 1');
    }
  }

  /** Number of delays handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** Delay before the next attempt; grows until maxMs. */
  next(): number {
    const base = Math.min(this.initialMs * this.factor ** this.attempt, this.maxMs);
    this.attempt++;
    if (this.jitter === 0) return base;
    const spread = base * this.jitter * (this.random() * 2 - 1);
    return Math.max(0, Math.round(base + spread));
  }

  /** Call after a successful (re)connect, i.e. after the server's hello. */
  reset(): void {
    this.attempt = 0;
  }
}
