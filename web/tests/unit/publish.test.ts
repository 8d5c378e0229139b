import { describe, expect, it } from 'vitest';
import { parseServerMessage } from '../../src/protocol';
import { publishBadge, type PublishMessage } from '../../src/publish';

const target = 'rtmp://media:1935/live/…';

describe('publish messages', () => {
  it('parses the server shape, with and without the retry fields', () => {
    const r = parseServerMessage(
      JSON.stringify({ type: 'publish', state: 'retrying', target, reason: 'cannot reach', retry_in_ms: 2000 }),
    );
    expect(r).toEqual({
      ok: true,
      message: { type: 'publish', state: 'retrying', target, reason: 'cannot reach', retry_in_ms: 2000 },
    });
    const live = parseServerMessage(JSON.stringify({ type: 'publish', state: 'live', target }));
    expect(live).toEqual({ ok: true, message: { type: 'publish', state: 'live', target } });
  });

  it('refuses unknown states, a missing target and drops bad optional fields', () => {
    expect(parseServerMessage(JSON.stringify({ type: 'publish', state: 'exploded', target })).ok).toBe(false);
    expect(parseServerMessage(JSON.stringify({ type: 'publish', state: 'live' })).ok).toBe(false);
    const r = parseServerMessage(
      JSON.stringify({ type: 'publish', state: 'retrying', target, reason: 5, retry_in_ms: -1 }),
    );
    expect(r).toEqual({ ok: true, message: { type: 'publish', state: 'retrying', target } });
  });
});

describe('the go-live badge', () => {
  const msg = (m: Partial<PublishMessage>): PublishMessage => ({ type: 'publish', state: 'live', target, ...m });

  it('says ON AIR with where in the tooltip, never a key', () => {
    const b = publishBadge(msg({ state: 'live' }));
    expect(b).toEqual({ text: 'ON AIR', title: 'Publishing to rtmp://media:1935/live', state: 'live', hidden: false });
  });

  it('says why and when it tries again', () => {
    const b = publishBadge(msg({ state: 'retrying', reason: 'the ingest refused to publish: NetStream.Publish.BadName', retry_in_ms: 4000 }));
    expect(b.text).toBe('Not live: retrying in 4 s');
    expect(b.title).toContain('BadName');
    expect(publishBadge(msg({ state: 'retrying' })).title).toContain('the connection failed');
  });

  it('shows connecting and hides when the stream stopped', () => {
    expect(publishBadge(msg({ state: 'connecting' })).text).toBe('Going live…');
    expect(publishBadge(msg({ state: 'stopped' })).hidden).toBe(true);
  });
});
