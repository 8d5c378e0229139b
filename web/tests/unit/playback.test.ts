import { describe, expect, it } from 'vitest';
import { PlaybackMonitor } from '../../src/playback';

describe('PlaybackMonitor', () => {
  it('measures stalls from waiting to playing, marking the initial buffering as startup', () => {
    const m = new PlaybackMonitor();
    m.waiting(100, 0);
    m.playing(400);
    expect(m.firstPlayingAt).toBe(400);
    m.waiting(1000, 5.2);
    m.waiting(1100, 5.2); // repeated waiting: the same stall
    expect(m.stalledSince).toBe(1000);
    m.playing(1350);
    expect(m.stalls).toEqual([
      { t: 100, duration: 300, mediaTime: 0, startup: true },
      { t: 1000, duration: 350, mediaTime: 5.2, startup: false },
    ]);
    expect(m.stalledSince).toBeNull();
    m.playing(2000); // playing without waiting: nothing
    expect(m.stalls).toHaveLength(2);
  });

  it('flags currentTime going backwards between timeupdates', () => {
    const m = new PlaybackMonitor();
    m.timeUpdate(1, false, 0);
    m.timeUpdate(1.25, false, 0);
    m.timeUpdate(1.25, false, 0);
    expect(m.timeWentBackwards).toBe(false);
    m.timeUpdate(1.2, false, 42);
    expect(m.timeWentBackwards).toBe(true);
    expect(m.backwards).toEqual([{ from: 1.25, to: 1.2, t: 42 }]);
  });

  it('ignores jumps caused by seeks and by a new source', () => {
    const m = new PlaybackMonitor();
    m.timeUpdate(10, false, 0);
    m.seekStart();
    m.timeUpdate(3, true, 0);
    m.seekEnd(3);
    m.timeUpdate(3.1, false, 0);
    m.timeUpdate(12, false, 0);
    m.newSource();
    m.timeUpdate(0, false, 0);
    m.timeUpdate(0.2, false, 0);
    expect(m.timeWentBackwards).toBe(false);
  });

  it('a new source forgets an open stall and the first-playing time', () => {
    const m = new PlaybackMonitor();
    m.playing(10);
    m.waiting(20, 1);
    m.newSource();
    expect(m.stalledSince).toBeNull();
    expect(m.firstPlayingAt).toBeNull();
    m.playing(30);
    expect(m.stalls).toEqual([]);
    expect(m.firstPlayingAt).toBe(30);
  });
});
