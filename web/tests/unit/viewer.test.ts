import { describe, expect, it } from 'vitest';
import { ViewerTiming } from '../../src/viewer';

describe('viewer timing', () => {
  it('reports a turn once, at the first frame at its speech start', () => {
    const v = new ViewerTiming();
    v.caption(1, 10_000);
    v.caption(1, 10_800); // a later caption of the same turn does not move the start
    expect(v.frame(9_000)).toEqual([]);
    expect(v.frame(9_960)).toEqual([]);
    expect(v.frame(9_990)).toEqual([1]);
    expect(v.frame(10_040)).toEqual([]);
    // A caption of a reported turn arriving late changes nothing.
    v.caption(1, 9_000);
    expect(v.frame(20_000)).toEqual([]);
  });

  it('keeps turns apart and can forget or reset', () => {
    const v = new ViewerTiming();
    v.caption(2, 5_000);
    v.caption(3, 6_000);
    v.forget(3);
    expect(v.frame(7_000)).toEqual([2]);
    v.caption(4, 8_000);
    v.reset();
    expect(v.frame(9_000)).toEqual([]);
  });
});
