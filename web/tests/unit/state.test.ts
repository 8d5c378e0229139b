import { describe, expect, it } from 'vitest';
import { badgeState, viewerStage, type ConnectionFacts } from '../../src/state';

const base: ConnectionFacts = { socketOpen: true, hello: true, stage: 'idle', socketError: false, playerError: false };
const s = (over: Partial<ConnectionFacts>) => badgeState({ ...base, ...over });

describe('badgeState', () => {
  it('is connecting until the socket is open and hello arrived', () => {
    expect(s({ socketOpen: false, hello: false })).toBe('connecting');
    expect(s({ hello: false })).toBe('connecting');
  });
  it('is idle for idle/complete stages and live while thinking/speaking', () => {
    expect(s({ stage: 'idle' })).toBe('idle');
    expect(s({ stage: 'complete' })).toBe('idle');
    expect(s({ stage: 'thinking' })).toBe('live');
    expect(s({ stage: 'speaking' })).toBe('live');
  });
  it('is error on a server error status, a player failure or a failed socket', () => {
    expect(s({ stage: 'error' })).toBe('error');
    expect(s({ playerError: true, stage: 'speaking' })).toBe('error');
    expect(s({ socketError: true, socketOpen: false, hello: false })).toBe('error');
  });
  it('a new hello after a socket failure clears the error', () => {
    expect(s({ socketError: true })).toBe('idle');
  });
  it('stays live while the player still plays speech the server has finished', () => {
    expect(s({ stage: 'complete', playerSpeaking: true })).toBe('live');
    expect(s({ stage: 'idle', playerSpeaking: true })).toBe('live');
    expect(s({ stage: 'idle', playerSpeaking: false })).toBe('idle');
    expect(s({ stage: 'error', playerSpeaking: true })).toBe('error');
    expect(s({ socketOpen: false, playerSpeaking: true })).toBe('connecting');
  });
});

describe('viewerStage', () => {
  it('is the server stage, except "speaking" while the player catches up', () => {
    expect(viewerStage({ stage: 'thinking', playerSpeaking: false })).toBe('thinking');
    expect(viewerStage({ stage: 'thinking', playerSpeaking: true })).toBe('thinking');
    expect(viewerStage({ stage: 'speaking' })).toBe('speaking');
    expect(viewerStage({ stage: 'complete', playerSpeaking: true })).toBe('speaking');
    expect(viewerStage({ stage: 'idle', playerSpeaking: true })).toBe('speaking');
    expect(viewerStage({ stage: 'idle', playerSpeaking: false })).toBe('idle');
  });
});
