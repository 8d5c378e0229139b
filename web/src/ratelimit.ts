// Token bucket for client→server log forwarding, so a flapping player cannot flood the server. Pure.

export class RateLimiter {
  private tokens: number;
  private last: number;
  private dropped = 0;

  constructor(
    private readonly capacity: number,
    private readonly refillPerSec: number,
    nowMs: number,
  ) {
    this.tokens = capacity;
    this.last = nowMs;
  }

  /**
   * Try to take one token. Returns null if over the limit, otherwise the number of messages
   * dropped since the last accepted one (so the caller can say "N messages suppressed").
   */
  take(nowMs: number): number | null {
    const elapsed = Math.max(0, nowMs - this.last) / 1000;
    this.last = Math.max(this.last, nowMs);
    this.tokens = Math.min(this.capacity, this.tokens + elapsed * this.refillPerSec);
    if (this.tokens < 1) {
      this.dropped++;
      return null;
    }
    this.tokens -= 1;
    const d = this.dropped;
    this.dropped = 0;
    return d;
  }
}
