// The conversation history, pure: what the user said (recognized speech and typed prompts) and
// what the avatar said (each turn's `transcript` captions joined), oldest first, capped.

export type Speaker = 'user' | 'avatar';

export interface HistoryEntry {
  who: Speaker;
  text: string;
  /** how the user said it */
  via?: 'voice' | 'typed';
  /** the avatar stopped (was interrupted) before the end */
  interrupted?: boolean;
  /** a number that changes whenever the entry does (for the view) */
  rev: number;
}

interface Segment {
  text: string;
  startPdt: number | null;
}

interface AvatarTurn {
  entry: HistoryEntry;
  segments: Segment[];
}

export const MAX_HISTORY = 200;

export class History {
  readonly entries: HistoryEntry[] = [];
  /** avatar entries by session epoch + turn */
  private readonly turns = new Map<string, AvatarTurn>();
  private epoch = 0;
  private revs = 0;

  /** A new session (hello): its turn numbers are new. */
  newSession(): void {
    this.epoch += 1;
    this.turns.clear();
  }

  user(text: string, via: 'voice' | 'typed'): void {
    const t = text.trim();
    if (t) this.add({ who: 'user', text: t, via, rev: ++this.revs });
  }

  /** One `transcript` caption of `turn`: starts the avatar's entry or extends it. */
  caption(turn: number | undefined, text: string, startPdt?: number): void {
    const t = text.trim();
    if (!t) return;
    const key = `${this.epoch}:${turn ?? 'none'}`;
    let at = this.turns.get(key);
    if (!at || !this.entries.includes(at.entry)) {
      at = { entry: { who: 'avatar', text: '', rev: 0 }, segments: [] };
      this.turns.set(key, at);
      this.add(at.entry);
    }
    at.segments.push({ text: t, startPdt: startPdt ?? null });
    this.render(at);
  }

  /**
   * `turn` was interrupted at `pdt` (program date time): captions scheduled after that were
   * never spoken. An entry left with nothing is removed.
   */
  interrupted(turn: number, pdt: number): void {
    const key = `${this.epoch}:${turn}`;
    const at = this.turns.get(key);
    if (!at) return;
    at.segments = at.segments.filter((s) => s.startPdt === null || s.startPdt <= pdt);
    at.entry.interrupted = true;
    if (at.segments.length === 0) {
      const i = this.entries.indexOf(at.entry);
      if (i >= 0) this.entries.splice(i, 1);
      this.turns.delete(key);
      return;
    }
    this.render(at);
  }

  /** {who, text} of every entry, oldest first (the page's debug view). */
  plain(): { who: Speaker; text: string }[] {
    return this.entries.map((e) => ({ who: e.who, text: e.text }));
  }

  private render(at: AvatarTurn): void {
    at.entry.text = at.segments.map((s) => s.text).join(' ');
    at.entry.rev = ++this.revs;
  }

  private add(e: HistoryEntry): void {
    this.entries.push(e);
    if (this.entries.length > MAX_HISTORY) this.entries.splice(0, this.entries.length - MAX_HISTORY);
  }
}
