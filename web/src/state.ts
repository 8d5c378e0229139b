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
  /**
   * The viewer still hears (or is about to hear) speech the server has already finished
   * publishing: stages run ahead of the player by its delay (hls.js: about three segments).
   */
  playerSpeaking?: boolean;
}

/**
 * The stage as the viewer experiences it: after the server is done (idle/complete), the player
 * still plays the end of the speech for a few seconds: that is "speaking" too.
 */
export function viewerStage(f: Pick<ConnectionFacts, 'stage' | 'playerSpeaking'>): Stage {
  if ((f.stage === 'idle' || f.stage === 'complete') && f.playerSpeaking) return 'speaking';
  return f.stage;
}

export function badgeState(f: ConnectionFacts): BadgeState {
  if (f.socketError && !(f.socketOpen && f.hello)) return 'error';
  if (!f.socketOpen || !f.hello) return 'connecting';
  if (f.stage === 'error' || f.playerError) return 'error';
  const stage = viewerStage(f);
  if (stage === 'thinking' || stage === 'speaking') return 'live';
  return 'idle';
}
