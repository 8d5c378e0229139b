// Playback health facts from the video element's events: stalls (`waiting` until `playing`)
// and the clock going backwards. Pure: the caller forwards events with their times.

export interface Stall {
  /** when the stall began (performance.now() ms) */
  t: number;
  /** how long until `playing` (ms) */
  duration: number;
  /** media time where it happened (s) */
  mediaTime: number;
  /** before the first `playing` of the current source (initial buffering, not a stall) */
  startup: boolean;
}

export class PlaybackMonitor {
  readonly stalls: Stall[] = [];
  /** performance.now() of the first `playing` since the last reset, or null */
  firstPlayingAt: number | null = null;
  /** set if currentTime ever decreased between two timeupdates without a seek in between */
  timeWentBackwards = false;
  /** details of each backwards step */
  readonly backwards: { from: number; to: number; t: number }[] = [];
  private waitingSince: { t: number; mediaTime: number; startup: boolean } | null = null;
  private lastTime: number | null = null;
  private seeking = false;

  /** a stall in progress: since when (performance.now() ms), or null */
  get stalledSince(): number | null {
    return this.waitingSince?.t ?? null;
  }

  waiting(t: number, mediaTime: number): void {
    if (!this.waitingSince) this.waitingSince = { t, mediaTime, startup: this.firstPlayingAt === null };
  }

  playing(t: number): void {
    if (this.firstPlayingAt === null) this.firstPlayingAt = t;
    const w = this.waitingSince;
    if (w) {
      this.stalls.push({ t: w.t, duration: t - w.t, mediaTime: w.mediaTime, startup: w.startup });
      this.waitingSince = null;
    }
  }

  seekStart(): void {
    this.seeking = true;
  }

  seekEnd(mediaTime: number): void {
    this.seeking = false;
    this.lastTime = mediaTime;
  }

  timeUpdate(mediaTime: number, seeking: boolean, t: number): void {
    if (seeking || this.seeking) {
      this.lastTime = null;
      return;
    }
    if (this.lastTime !== null && mediaTime < this.lastTime) {
      this.timeWentBackwards = true;
      this.backwards.push({ from: this.lastTime, to: mediaTime, t });
    }
    this.lastTime = mediaTime;
  }

  /** A new source (emptied / loadstart): its clock starts over, and an open stall ends unmeasured. */
  newSource(): void {
    this.lastTime = null;
    this.seeking = false;
    this.waitingSince = null;
    this.firstPlayingAt = null;
  }
}
