import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/ratelimit';

describe('RateLimiter', () => {
  it('allows a burst, then refills over time and reports drops', () => {
    const r = new RateLimiter(3, 1, 0);
    expect([r.take(0), r.take(0), r.take(0)]).toEqual([0, 0, 0]);
    expect(r.take(10)).toBeNull();
    expect(r.take(20)).toBeNull();
    expect(r.take(1100)).toBe(2);
    expect(r.take(1100)).toBeNull();
  });
  it('never exceeds capacity after a long pause', () => {
    const r = new RateLimiter(2, 10, 0);
    r.take(0);
    r.take(0);
    expect([r.take(100000), r.take(100000), r.take(100000)]).toEqual([0, 0, null]);
  });
});
