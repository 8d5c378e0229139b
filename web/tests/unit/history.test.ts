import { describe, expect, it } from 'vitest';
import { History, MAX_HISTORY } from '../../src/history';

describe('History', () => {
  it('lists what each side said, joining a turn\'s captions, newest last', () => {
    const h = new History();
    h.user('  What is on Mars? ', 'voice');
    h.caption(4, 'Mostly dust,', 1000);
    h.caption(4, 'and some ice.', 2000);
    h.user('Thanks', 'typed');
    h.caption(5, 'You are welcome.', 3000);
    expect(h.plain()).toEqual([
      { who: 'user', text: 'What is on Mars?' },
      { who: 'avatar', text: 'Mostly dust, and some ice.' },
      { who: 'user', text: 'Thanks' },
      { who: 'avatar', text: 'You are welcome.' },
    ]);
    expect(h.entries[0]!.via).toBe('voice');
    expect(h.entries[2]!.via).toBe('typed');
  });

  it('adds a late caption of an earlier turn to that turn', () => {
    const h = new History();
    h.caption(1, 'One', 0);
    h.user('barge in', 'typed');
    h.caption(1, 'two', 10);
    expect(h.plain()).toEqual([
      { who: 'avatar', text: 'One two' },
      { who: 'user', text: 'barge in' },
    ]);
  });

  it('keeps turns of different sessions apart', () => {
    const h = new History();
    h.caption(1, 'old session', 0);
    h.newSession();
    h.caption(1, 'new session', 0);
    expect(h.plain().map((e) => e.text)).toEqual(['old session', 'new session']);
  });

  it('drops what an interrupted turn never said, and the entry if nothing was said', () => {
    const h = new History();
    h.caption(2, 'Said', 100);
    h.caption(2, 'never said', 900);
    h.interrupted(2, 500);
    expect(h.plain()).toEqual([{ who: 'avatar', text: 'Said' }]);
    expect(h.entries[0]!.interrupted).toBe(true);
    h.caption(3, 'too late', 2000);
    h.interrupted(3, 1500);
    expect(h.plain()).toEqual([{ who: 'avatar', text: 'Said' }]);
    h.interrupted(99, 0); // unknown turn
  });

  it('ignores empty text, changes rev on every change, and keeps the newest entries', () => {
    const h = new History();
    h.user('   ', 'typed');
    h.caption(1, '');
    expect(h.entries).toEqual([]);
    h.caption(1, 'a');
    const r = h.entries[0]!.rev;
    h.caption(1, 'b');
    expect(h.entries[0]!.rev).not.toBe(r);
    for (let i = 0; i < MAX_HISTORY + 5; i++) h.user(`m${i}`, 'typed');
    expect(h.entries.length).toBe(MAX_HISTORY);
    expect(h.entries[MAX_HISTORY - 1]!.text).toBe(`m${MAX_HISTORY + 4}`);
    h.caption(1, 'c'); // its entry fell off: a new one at the bottom
    expect(h.entries[MAX_HISTORY - 1]!.text).toBe('c');
  });
});
