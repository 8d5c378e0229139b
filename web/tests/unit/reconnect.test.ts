import { describe, expect, it } from 'vitest';
import { Backoff } from '../../src/reconnect';

describe('Backoff', () => {
  it('doubles from 0.5 s up to 8 s by default', () => {
    const b = new Backoff();
    const seq = Array.from({ length: 8 }, () => b.next());
    expect(seq).toEqual([500, 1000, 2000, 4000, 8000, 8000, 8000, 8000]);
    expect(b.attempts).toBe(8);
  });

  it('starts over after reset', () => {
    const b = new Backoff();
    b.next();
    b.next();
    b.next();
    b.reset();
    expect(b.attempts).toBe(0);
    expect([b.next(), b.next()]).toEqual([500, 1000]);
  });

  it('honours custom options', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, factor: 3 });
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([100, 300, 900, 1000]);
  });

  it('applies bounded jitter', () => {
    const lo = new Backoff({ jitter: 0.5, random: () => 0 });
    const hi = new Backoff({ jitter: 0.5, random: () => 0.999999 });
    expect(lo.next()).toBe(250);
    expect(hi.next()).toBe(750);
  });

  it('rejects nonsense options', () => {
    expect(() => new Backoff({ initialMs: 0 })).toThrow();
    expect(() => new Backoff({ initialMs: 1000, maxMs: 10 })).toThrow();
    expect(() => new Backoff({ factor: 0.5 })).toThrow();
  });
});
