// Captions timed to what the viewer hears. Pure: the caller feeds transcripts and the player's
// position (program date time, Unix ms — hls.js `playingDate`), and renders `view()`.
//
// Transcripts arrive when the server schedules the audio, seconds before the player plays it.
// They wait in a queue until the player's position reaches their start; the current caption is
// hidden `graceMs` after its end or when the next one starts. Without a position (native HLS,
// or a transcript without times) a caption is shown when it arrives.

export interface CaptionInput {
  turn?: number;
  text: string;
  start_pdt_ms?: number;
  end_pdt_ms?: number;
}

export interface Caption {
  turn: number | null;
  text: string;
  startPdt: number | null;
  endPdt: number | null;
}

export interface CaptionView {
  /** the caption being heard, or null: nothing to show */
  current: string | null;
  /** earlier captions of the same turn, oldest first (a readable line with `current` last) */
  history: string[];
  turn: number | null;
}

export interface CaptionOptions {
  /** keep a caption this long after its end (ms) */
  graceMs: number;
  /** at most this many earlier captions of the turn next to the current one */
  historyMax: number;
  /** …and at most about this many characters of them */
  historyChars: number;
  /** fallback display time (ms) for a caption without times, shown at arrival */
  defaultDurationMs: number;
  /** queue bound (oldest dropped) */
  maxQueue: number;
}

const DEFAULTS: CaptionOptions = {
  graceMs: 1500,
  historyMax: 3,
  historyChars: 160,
  defaultDurationMs: 4000,
  maxQueue: 200,
};

export interface UpdateResult {
  /** captions that became visible in this update, in order */
  shown: Caption[];
  /** captions whose time had already passed when the player got there (never shown) */
  missed: Caption[];
  /** the view changed */
  changed: boolean;
}

export class CaptionScheduler {
  private readonly opts: CaptionOptions;
  /** waiting for the player; sorted by start */
  private queue: Caption[] = [];
  /** waiting to be shown at arrival (no timeline) */
  private immediate: Caption[] = [];
  private current: Caption | null = null;
  /** when the current caption hides: a program date time (pdt mode) or a wall time (arrival) */
  private hideAt: { pdt: number } | { wall: number } | null = null;
  /** when the current caption's words end (same clock as hideAt, without the grace) */
  private endAt: { pdt: number } | { wall: number } | null = null;
  private history: Caption[] = [];

  constructor(opts: Partial<CaptionOptions> = {}) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  get pending(): number {
    return this.queue.length + this.immediate.length;
  }

  /** Forget everything (a new stream). */
  reset(): void {
    this.queue = [];
    this.immediate = [];
    this.current = null;
    this.hideAt = null;
    this.endAt = null;
    this.history = [];
  }

  /**
   * The viewer is hearing (or is about to hear) speech: captions wait in the queue, or the
   * current caption's words have not ended yet at `pdt` / `now`.
   */
  speaking(pdt: number | null, now: number): boolean {
    if (this.pending > 0) return true;
    if (!this.current || !this.endAt) return false;
    return 'pdt' in this.endAt ? pdt === null || pdt <= this.endAt.pdt : now <= this.endAt.wall;
  }

  push(input: CaptionInput): void {
    const text = input.text.trim();
    if (!text) return;
    const c: Caption = {
      turn: input.turn ?? null,
      text,
      startPdt: input.start_pdt_ms ?? null,
      endPdt: input.end_pdt_ms ?? null,
    };
    if (c.startPdt === null) {
      this.immediate.push(c);
      return;
    }
    // A newer turn replaces whatever older turns had scheduled from its start on (barge-in:
    // the server dropped that audio).
    if (c.turn !== null) {
      const start = c.startPdt;
      const turn = c.turn;
      this.queue = this.queue.filter((q) => !(q.turn !== null && q.turn < turn && q.startPdt! >= start));
    }
    let i = this.queue.length;
    while (i > 0 && this.queue[i - 1]!.startPdt! > c.startPdt) i--;
    this.queue.splice(i, 0, c);
    if (this.queue.length > this.opts.maxQueue) this.queue.shift();
  }

  /** Turn `turn` (and older) was cut at `cutPdt`: drop their captions that start after it. */
  dropAfter(turn: number, cutPdt: number): number {
    const before = this.queue.length;
    this.queue = this.queue.filter((q) => !(q.turn !== null && q.turn <= turn && q.startPdt! >= cutPdt));
    return before - this.queue.length;
  }

  /**
   * Advance. `pdt` is the player's position as a program date time, or null if unknown;
   * `arrival` true means there is no timeline at all (native HLS): show captions as they come.
   * `now` is wall time in ms (for captions shown at arrival).
   */
  update(pdt: number | null, now: number, arrival: boolean): UpdateResult {
    const res: UpdateResult = { shown: [], missed: [], changed: false };
    const grace = this.opts.graceMs;

    // expire the current caption
    if (this.current && this.hideAt) {
      const expired = 'pdt' in this.hideAt ? pdt !== null && pdt > this.hideAt.pdt : now > this.hideAt.wall;
      if (expired) {
        this.current = null;
        this.hideAt = null;
        this.endAt = null;
        this.history = [];
        res.changed = true;
      }
    }

    const show = (c: Caption, endAt: { pdt: number } | { wall: number }) => {
      if (this.current) {
        if (c.turn !== null && this.current.turn === c.turn) this.history.push(this.current);
        else this.history = [];
      } else if (this.history.length && this.history[this.history.length - 1]!.turn !== c.turn) {
        this.history = [];
      }
      this.current = c;
      this.endAt = endAt;
      this.hideAt = 'pdt' in endAt ? { pdt: endAt.pdt + grace } : { wall: endAt.wall + grace };
      this.trimHistory();
      res.shown.push(c);
      res.changed = true;
    };
    const wallDuration = (c: Caption) =>
      c.startPdt !== null && c.endPdt !== null && c.endPdt > c.startPdt ? c.endPdt - c.startPdt : this.opts.defaultDurationMs;

    // captions without a timeline, or everything when there is no player timeline
    const atArrival = arrival ? [...this.immediate, ...this.queue] : this.immediate;
    if (arrival) this.queue = [];
    this.immediate = [];
    for (const c of atArrival) show(c, { wall: now + wallDuration(c) });

    if (!arrival && pdt !== null) {
      while (this.queue.length && this.queue[0]!.startPdt! <= pdt) {
        const c = this.queue.shift()!;
        const end = c.endPdt ?? c.startPdt! + this.opts.defaultDurationMs;
        if (pdt > end + grace) {
          res.missed.push(c);
          continue;
        }
        show(c, { pdt: end });
      }
    }
    return res;
  }

  view(): CaptionView {
    if (!this.current) return { current: null, history: [], turn: null };
    return { current: this.current.text, history: this.history.map((c) => c.text), turn: this.current.turn };
  }

  private trimHistory(): void {
    if (this.history.length > this.opts.historyMax) this.history.splice(0, this.history.length - this.opts.historyMax);
    let chars = this.history.reduce((n, c) => n + c.text.length + 1, 0);
    while (this.history.length && chars > this.opts.historyChars) chars -= this.history.shift()!.text.length + 1;
  }
}
