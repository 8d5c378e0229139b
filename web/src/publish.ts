/**
 * Going live: the server's `publish` messages (its RTMP publisher for RTMP_PUBLISH_URL) parsed
 * and turned into the page's badge text. The target never carries the stream key.
 */

export type PublishState = 'connecting' | 'live' | 'retrying' | 'stopped';

export interface PublishMessage {
  type: 'publish';
  state: PublishState;
  /** rtmp://host:port/app/… (the key is not sent) */
  target: string;
  reason?: string;
  retry_in_ms?: number;
}

const STATES: readonly string[] = ['connecting', 'live', 'retrying', 'stopped'];

/** Parse a `publish` message's fields; `null` when it is not one the page understands. */
export function parsePublish(o: Record<string, unknown>): PublishMessage | null {
  const { state, target, reason, retry_in_ms: retry } = o;
  if (typeof state !== 'string' || !STATES.includes(state)) return null;
  if (typeof target !== 'string') return null;
  const msg: PublishMessage = { type: 'publish', state: state as PublishState, target };
  if (typeof reason === 'string' && reason) msg.reason = reason;
  if (typeof retry === 'number' && Number.isFinite(retry) && retry >= 0) msg.retry_in_ms = retry;
  return msg;
}

export interface PublishBadge {
  /** Short text for the status row. */
  text: string;
  /** The whole story, for the tooltip. */
  title: string;
  state: PublishState;
  /** Hide the badge (the stream ended). */
  hidden: boolean;
}

/** What the status row shows for the publisher's state. */
export function publishBadge(m: PublishMessage): PublishBadge {
  const where = m.target.replace(/\/…$/, '');
  switch (m.state) {
    case 'connecting':
      return { text: 'Going live…', title: `Connecting to ${where}`, state: m.state, hidden: false };
    case 'live':
      return { text: 'ON AIR', title: `Publishing to ${where}`, state: m.state, hidden: false };
    case 'retrying': {
      const secs = m.retry_in_ms !== undefined ? Math.max(1, Math.round(m.retry_in_ms / 1000)) : null;
      const when = secs !== null ? `retrying in ${secs} s` : 'retrying';
      return {
        text: `Not live: ${when}`,
        title: `${where}: ${m.reason ?? 'the connection failed'}; ${when}`,
        state: m.state,
        hidden: false,
      };
    }
    case 'stopped':
      return { text: '', title: '', state: m.state, hidden: true };
  }
}
