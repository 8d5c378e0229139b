// The status badge: one derived value from everything the page knows. Pure.

import type { Stage } from './protocol';

export type BadgeState = 'connecting' | 'idle' | 'live' | 'error';

export interface ConnectionFacts {
  /** WebSocket is OPEN. */
  socketOpen: boolean;
  /** hello received on the current socket. */
  hello: boolean;
  /** last status stage from the server on the current session (idle until told otherwise). */
  stage: Stage;
  /** the socket failed (error event) and no hello has arrived since. */
  socketError: boolean;
  /** the player hit a fatal error and has not played since. */
  playerError: boolean;
}

export function badgeState(f: ConnectionFacts): BadgeState {
  if (f.socketError && !(f.socketOpen && f.hello)) return 'error';
  if (!f.socketOpen || !f.hello) return 'connecting';
  if (f.stage === 'error' || f.playerError) return 'error';
  if (f.stage === 'thinking' || f.stage === 'speaking') return 'live';
  return 'idle';
}
