// What to do after a fatal hls.js error. Pure: the caller passes the time and applies the action.
//
// Policy: the first fatal network error is answered with hls.startLoad(), the first fatal media
// error with hls.recoverMediaError(). If the same kind fails again within `windowMs` (or the error
// is of another kind, e.g. the playlist itself could not be loaded), the source is reloaded from
// scratch (destroy + new Hls), with a growing delay. `healthy()` (called when fragments buffer
// again) forgets the history.

import { Backoff } from './reconnect';

export type FatalKind = 'network' | 'media' | 'other';
export type RecoveryAction =
  | { action: 'startLoad' }
  | { action: 'recoverMedia' }
  | { action: 'reload'; delayMs: number };

export function fatalKind(type: string): FatalKind {
  if (type === 'networkError') return 'network';
  if (type === 'mediaError') return 'media';
  return 'other';
}

export class RecoveryPolicy {
  private lastTry: Partial<Record<'network' | 'media', number>> = {};
  private readonly reloadBackoff: Backoff;

  constructor(
    private readonly windowMs = 15000,
    backoff: Backoff = new Backoff({ initialMs: 500, maxMs: 8000 }),
  ) {
    this.reloadBackoff = backoff;
  }

  decide(type: string, details: string, nowMs: number): RecoveryAction {
    const kind = fatalKind(type);
    // A playlist that could not be loaded or parsed at all: startLoad() would not fetch it again.
    const manifest = details.startsWith('manifest');
    if ((kind === 'network' || kind === 'media') && !manifest) {
      const last = this.lastTry[kind];
      if (last === undefined || nowMs - last > this.windowMs) {
        this.lastTry[kind] = nowMs;
        return kind === 'network' ? { action: 'startLoad' } : { action: 'recoverMedia' };
      }
    }
    return { action: 'reload', delayMs: this.reloadBackoff.next() };
  }

  healthy(): void {
    this.lastTry = {};
    this.reloadBackoff.reset();
  }
}
