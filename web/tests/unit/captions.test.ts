import { describe, expect, it } from 'vitest';
import { CaptionScheduler } from '../../src/captions';

const T0 = 1_795_000_000_000;
/** a transcript at stream offset [a, b] ms */
const tr = (turn: number, text: string, a: number, b: number) => ({
  turn,
  text,
  start_pdt_ms: T0 + a,
  end_pdt_ms: T0 + b,
});

describe('CaptionScheduler (player timeline)', () => {
  it('waits until the player reaches a caption, then hides it 1.5 s after its end', () => {
    const c = new CaptionScheduler();
    c.push(tr(1, 'Hello there.', 5000, 6000));
    expect(c.update(null, 0, false).shown).toEqual([]); // no position yet: keep waiting
    expect(c.update(T0 + 4999, 0, false).shown).toEqual([]);
    expect(c.view().current).toBeNull();
    const r = c.update(T0 + 5000, 0, false);
    expect(r.shown.map((x) => x.text)).toEqual(['Hello there.']);
    expect(r.changed).toBe(true);
    expect(c.view()).toEqual({ current: 'Hello there.', history: [], turn: 1 });
    expect(c.update(T0 + 7500, 0, false).changed).toBe(false); // end + 1.5 s: still there
    expect(c.view().current).toBe('Hello there.');
    expect(c.update(T0 + 7501, 0, false).changed).toBe(true);
    expect(c.view().current).toBeNull();
  });

  it('moves the previous caption of the turn into the readable line when the next starts', () => {
    const c = new CaptionScheduler({ historyMax: 2 });
    c.push(tr(1, 'One.', 0, 900));
    c.push(tr(1, 'Two.', 1000, 1900));
    c.push(tr(1, 'Three.', 2000, 2900));
    c.push(tr(1, 'Four.', 3000, 3900));
    c.update(T0 + 100, 0, false);
    c.update(T0 + 1100, 0, false);
    expect(c.view()).toEqual({ current: 'Two.', history: ['One.'], turn: 1 });
    c.update(T0 + 2100, 0, false);
    c.update(T0 + 3100, 0, false);
    expect(c.view()).toEqual({ current: 'Four.', history: ['Two.', 'Three.'], turn: 1 });
  });

  it('starts a fresh line for a new turn and after a pause that hid the caption', () => {
    const c = new CaptionScheduler();
    c.push(tr(1, 'Old turn.', 0, 1000));
    c.push(tr(2, 'New turn.', 1500, 2500));
    c.update(T0 + 10, 0, false);
    c.update(T0 + 1600, 0, false);
    expect(c.view()).toEqual({ current: 'New turn.', history: [], turn: 2 });
    c.push(tr(2, 'Later.', 10000, 11000));
    c.update(T0 + 5000, 0, false); // hidden: 2500 + 1500 passed
    expect(c.view().current).toBeNull();
    c.update(T0 + 10000, 0, false);
    expect(c.view()).toEqual({ current: 'Later.', history: [], turn: 2 });
  });

  it('limits the line by characters', () => {
    const c = new CaptionScheduler({ historyChars: 25 });
    const long = 'This is a rather long sentence.'; // 31 chars
    c.push(tr(1, long, 0, 900));
    c.push(tr(1, 'Short.', 1000, 1900));
    c.update(T0, 0, false);
    c.update(T0 + 1000, 0, false);
    expect(c.view().history).toEqual([]);
  });

  it('shows captions in start order whatever order they arrive in', () => {
    const c = new CaptionScheduler();
    c.push(tr(1, 'b', 2000, 2500));
    c.push(tr(1, 'a', 1000, 1500));
    const r = c.update(T0 + 2100, 0, false);
    expect(r.shown.map((x) => x.text)).toEqual(['a', 'b']);
    expect(c.view()).toEqual({ current: 'b', history: ['a'], turn: 1 });
  });

  it('does not show captions whose time passed long ago (reports them as missed)', () => {
    const c = new CaptionScheduler();
    c.push(tr(1, 'gone', 0, 1000));
    c.push(tr(1, 'now', 9000, 9500));
    const r = c.update(T0 + 9100, 0, false);
    expect(r.missed.map((x) => x.text)).toEqual(['gone']);
    expect(r.shown.map((x) => x.text)).toEqual(['now']);
  });

  it('a newer turn replaces what older turns had queued from its start on (barge-in)', () => {
    const c = new CaptionScheduler();
    c.push(tr(1, 'First sentence.', 0, 2000));
    c.push(tr(1, 'Second sentence.', 2000, 4000));
    c.push(tr(1, 'Third sentence.', 4000, 6000));
    c.push(tr(2, 'Stop!', 2500, 3000)); // the server cut turn 1 at 2500
    const r = c.update(T0 + 3000, 0, false);
    // the second sentence started before the cut: its beginning was heard
    expect(r.shown.map((x) => x.text)).toEqual(['First sentence.', 'Second sentence.', 'Stop!']);
    expect(c.view()).toEqual({ current: 'Stop!', history: [], turn: 2 });
    expect(c.pending).toBe(0);
  });

  it('dropAfter removes the interrupted turn from the cut on, keeping what was already heard', () => {
    const c = new CaptionScheduler();
    c.push(tr(1, 'heard', 0, 1000));
    c.push(tr(1, 'cut off', 1500, 2500));
    c.push(tr(2, 'next turn', 3000, 4000));
    expect(c.dropAfter(1, T0 + 1200)).toBe(1);
    expect(c.update(T0 + 500, 0, false).shown.map((x) => x.text)).toEqual(['heard']);
    expect(c.update(T0 + 3500, 0, false).shown.map((x) => x.text)).toEqual(['next turn']);
  });

  it('says the viewer hears speech while captions wait or the current words have not ended', () => {
    const c = new CaptionScheduler();
    expect(c.speaking(T0, 0)).toBe(false);
    c.push(tr(1, 'Hello.', 1000, 2000));
    expect(c.speaking(T0, 0)).toBe(true); // queued: the player will get there
    c.update(T0 + 1000, 0, false);
    expect(c.speaking(T0 + 2000, 0)).toBe(true);
    expect(c.speaking(T0 + 2001, 0)).toBe(false); // words ended; the caption lingers for reading
    c.update(T0 + 2001, 0, false);
    expect(c.view().current).toBe('Hello.');
  });

  it('reset forgets everything', () => {
    const c = new CaptionScheduler();
    c.push(tr(1, 'x', 0, 1000));
    c.update(T0, 0, false);
    c.push(tr(1, 'y', 2000, 3000));
    c.reset();
    expect(c.view().current).toBeNull();
    expect(c.pending).toBe(0);
    expect(c.update(T0 + 2000, 0, false).shown).toEqual([]);
  });

  it('ignores empty text', () => {
    const c = new CaptionScheduler();
    c.push(tr(1, '   ', 0, 1000));
    expect(c.pending).toBe(0);
  });
});

describe('CaptionScheduler (no player timeline)', () => {
  it('shows captions at arrival and hides them after their duration + grace (wall clock)', () => {
    const c = new CaptionScheduler();
    c.push(tr(1, 'Now.', 5000, 6000));
    const r = c.update(null, 100, true);
    expect(r.shown.map((x) => x.text)).toEqual(['Now.']);
    expect(c.view().current).toBe('Now.');
    c.update(null, 100 + 1000 + 1500, true);
    expect(c.view().current).toBe('Now.');
    c.update(null, 100 + 1000 + 1501, true);
    expect(c.view().current).toBeNull();
  });

  it('shows a transcript without times at arrival even when the player has a timeline', () => {
    const c = new CaptionScheduler({ defaultDurationMs: 2000 });
    c.push({ turn: 1, text: 'untimed' });
    expect(c.update(T0, 0, false).shown.map((x) => x.text)).toEqual(['untimed']);
    c.update(T0, 3501, false);
    expect(c.view().current).toBeNull();
  });
});
