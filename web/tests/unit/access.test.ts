import { describe, expect, it } from 'vitest';
import { accessStep, parseAccessInfo, tokenFromHash, TokenStore, withToken } from '../../src/access';

describe('access token', () => {
  it('takes the token from the fragment and keeps the rest', () => {
    expect(tokenFromHash('#token=abc-123_x')).toEqual({ token: 'abc-123_x', rest: '' });
    expect(tokenFromHash('#a=1&token=t0k&b=2')).toEqual({ token: 't0k', rest: '#a=1&b=2' });
    expect(tokenFromHash('')).toEqual({ token: null, rest: '' });
    expect(tokenFromHash('#token=')).toEqual({ token: null, rest: '' });
  });

  it('adds the token as a query parameter, encoded', () => {
    expect(withToken('ws://h:1/session', null)).toBe('ws://h:1/session');
    expect(withToken('ws://h:1/session', 'a b&c')).toBe('ws://h:1/session?token=a%20b%26c');
    expect(withToken('ws://h:1/session?x=1', 'tok')).toBe('ws://h:1/session?x=1&token=tok');
  });

  it('decides between connecting and asking', () => {
    const open = parseAccessInfo({ token_required: false, token_valid: null });
    expect(accessStep(open, null)).toBe('connect');
    const guarded = parseAccessInfo({ token_required: true, token_valid: null });
    expect(accessStep(guarded, null)).toBe('ask');
    expect(accessStep(parseAccessInfo({ token_required: true, token_valid: false }), 'x')).toBe('wrong');
    expect(accessStep(parseAccessInfo({ token_required: true, token_valid: true }), 'x')).toBe('connect');
    // An old server without /api/access, or garbage: connect as before.
    expect(accessStep(parseAccessInfo('nonsense'), null)).toBe('connect');
    expect(parseAccessInfo({ token_required: 'yes', token_valid: 1 })).toEqual({
      token_required: false,
      token_valid: null,
      playback_token_required: false,
    });
  });

  it('keeps the token in storage and survives a storage that throws', () => {
    const m = new Map<string, string>();
    const store = new TokenStore({
      getItem: (k) => m.get(k) ?? null,
      setItem: (k, v) => void m.set(k, v),
      removeItem: (k) => void m.delete(k),
    });
    expect(store.get()).toBeNull();
    store.set('tok');
    expect(store.get()).toBe('tok');
    store.set(null);
    expect(store.get()).toBeNull();
    const broken = new TokenStore({
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('denied');
      },
      removeItem: () => {
        throw new Error('denied');
      },
    });
    broken.set('x');
    expect(broken.get()).toBeNull();
    expect(new TokenStore(null).get()).toBeNull();
  });
});
