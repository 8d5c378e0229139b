import { describe, expect, it } from 'vitest';
import { RecoveryPolicy } from '../../src/recovery';

describe('RecoveryPolicy', () => {
  it('tries startLoad once for a fatal network error, then reloads with growing delay', () => {
    const p = new RecoveryPolicy(15000);
    expect(p.decide('networkError', 'fragLoadError', 0)).toEqual({ action: 'startLoad' });
    expect(p.decide('networkError', 'fragLoadError', 1000)).toEqual({ action: 'reload', delayMs: 500 });
    expect(p.decide('networkError', 'fragLoadError', 2000)).toEqual({ action: 'reload', delayMs: 1000 });
  });

  it('tries recoverMediaError once for a fatal media error', () => {
    const p = new RecoveryPolicy(15000);
    expect(p.decide('mediaError', 'bufferAppendError', 0)).toEqual({ action: 'recoverMedia' });
    expect(p.decide('mediaError', 'bufferAppendError', 10)).toEqual({ action: 'reload', delayMs: 500 });
  });

  it('allows another in-place attempt once the window has passed', () => {
    const p = new RecoveryPolicy(15000);
    expect(p.decide('networkError', 'levelLoadError', 0).action).toBe('startLoad');
    expect(p.decide('networkError', 'levelLoadError', 20000).action).toBe('startLoad');
  });

  it('reloads right away when the playlist itself failed or the error is of another kind', () => {
    const p = new RecoveryPolicy();
    expect(p.decide('networkError', 'manifestLoadError', 0)).toEqual({ action: 'reload', delayMs: 500 });
    expect(p.decide('muxError', 'fragParsingError', 0)).toEqual({ action: 'reload', delayMs: 1000 });
  });

  it('forgets the history once playback is healthy again', () => {
    const p = new RecoveryPolicy();
    p.decide('networkError', 'fragLoadError', 0);
    p.decide('networkError', 'fragLoadError', 1);
    p.healthy();
    expect(p.decide('networkError', 'fragLoadError', 2)).toEqual({ action: 'startLoad' });
    expect(p.decide('networkError', 'fragLoadError', 3)).toEqual({ action: 'reload', delayMs: 500 });
  });
});
