// Viewer-side timing: which turns' answers have reached the screen. A turn's answer starts at
// the program date time of its first caption (`transcript.start_pdt_ms`); the first presented
// frame at or past that time is the answer on screen, reported to the server once per turn.

export class ViewerTiming {
  /** turn → program date time (Unix ms) where its speech starts */
  private readonly starts = new Map<number, number>();
  private readonly reported = new Set<number>();

  /** A caption arrived: remember where its turn's speech starts (its first caption). */
  caption(turn: number, startPdtMs: number): void {
    if (this.reported.has(turn)) return;
    const known = this.starts.get(turn);
    if (known === undefined || startPdtMs < known) this.starts.set(turn, startPdtMs);
  }

  /** A frame at program date time `framePdtMs` was presented: the turns that just reached the screen. */
  frame(framePdtMs: number): number[] {
    const shown: number[] = [];
    for (const [turn, start] of this.starts) {
      // Half a frame of slack: the frame that carries the speech's start.
      if (framePdtMs + 20 >= start) {
        shown.push(turn);
        this.starts.delete(turn);
        this.reported.add(turn);
      }
    }
    return shown.sort((a, b) => a - b);
  }

  /** A turn that will never be shown (interrupted before it started, or a new stream). */
  forget(turn: number): void {
    this.starts.delete(turn);
  }

  reset(): void {
    this.starts.clear();
    this.reported.clear();
  }
}
