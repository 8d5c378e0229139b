// DOM of the microphone and the conversation: the mic button, the hands-free / push-to-talk
// toggle, the level meter, the state line, the "Mic off" button and the history list. No
// protocol or audio logic here; voice.ts says what to show and gets the user's actions.

import type { HistoryEntry } from './history';
import type { MicMode } from './micprotocol';
import { spaceIsPushToTalk, type MicState } from './micstate';

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}

/** The meter spans this many dB below full scale. */
const METER_RANGE_DB = 60;

export interface MicView {
  mode: MicMode;
  state: MicState;
  /** the capture is open (or opening) */
  open: boolean;
  /** push-to-talk is held */
  held: boolean;
  /** connected and streaming: the button can be used */
  usable: boolean;
  /** the server has a speech recognizer (else the button explains instead) */
  stt: boolean;
  label: string;
  stateText: string;
}

/** What holds push-to-talk down. */
export type Holder = 'pointer' | 'space';

export interface MicUiEvents {
  /** hands-free click */
  toggle(): void;
  /** push-to-talk down and up, by the pointer on the button or Space */
  press(by: Holder): void;
  release(by: Holder): void;
  mode(mode: MicMode): void;
  close(): void;
}

export class MicUi {
  readonly button = $<HTMLButtonElement>('mic');
  private readonly row = $('mic-row');
  private readonly meter = $('mic-meter');
  private readonly bar = $('mic-meter-bar');
  private readonly stateLine = $('mic-state');
  private readonly closeBtn = $<HTMLButtonElement>('mic-close');
  private readonly modeInputs = Array.from(document.querySelectorAll<HTMLInputElement>('input[name="mic-mode"]'));
  private readonly historyBox = $('history');
  private readonly historyList = $<HTMLOListElement>('history-list');
  private readonly items = new Map<HistoryEntry, { li: HTMLLIElement; rev: number }>();
  private mode: MicMode = 'hands_free';
  private usable = false;
  private pointer: number | null = null;
  private spaceHeld = false;

  constructor(events: MicUiEvents) {
    this.button.addEventListener('click', () => {
      if (this.mode === 'hands_free') events.toggle();
    });
    this.button.addEventListener('pointerdown', (e) => {
      if (this.mode !== 'push_to_talk' || e.button !== 0 || this.pointer !== null) return;
      e.preventDefault();
      this.pointer = e.pointerId;
      this.button.setPointerCapture?.(e.pointerId);
      this.button.focus();
      events.press('pointer');
    });
    const up = (e: PointerEvent) => {
      if (e.pointerId !== this.pointer) return;
      this.pointer = null;
      events.release('pointer');
    };
    this.button.addEventListener('pointerup', up);
    this.button.addEventListener('pointercancel', up);
    this.button.addEventListener('lostpointercapture', up);
    // A long touch must not open the context menu while talking.
    this.button.addEventListener('contextmenu', (e) => e.preventDefault());
    for (const input of this.modeInputs) {
      input.addEventListener('change', () => {
        if (input.checked && (input.value === 'hands_free' || input.value === 'push_to_talk')) events.mode(input.value);
      });
    }
    this.closeBtn.addEventListener('click', () => events.close());
    window.addEventListener('keydown', (e) => this.space(e, true, events));
    window.addEventListener('keyup', (e) => this.space(e, false, events));
    // Focus leaving the page while Space is held: its keyup would never come.
    window.addEventListener('blur', () => {
      if (this.spaceHeld) {
        this.spaceHeld = false;
        events.release('space');
      }
    });
  }

  /** Space as push-to-talk (see spaceIsPushToTalk for where it keeps its usual meaning). */
  private space(e: KeyboardEvent, down: boolean, events: MicUiEvents): void {
    if (e.key !== ' ') return;
    if (this.spaceHeld) {
      e.preventDefault(); // auto-repeat must not scroll; keyup must not click
      if (!down) {
        this.spaceHeld = false;
        events.release('space');
      }
      return;
    }
    if (!down || this.mode !== 'push_to_talk' || !this.usable) return;
    const el = e.target instanceof HTMLElement ? e.target : null;
    const target = el && { tagName: el.tagName, isContentEditable: el.isContentEditable, isMicButton: el === this.button };
    if (!spaceIsPushToTalk(e.key, e.repeat, target)) return;
    e.preventDefault();
    this.spaceHeld = true;
    events.press('space');
  }

  show(v: MicView): void {
    this.mode = v.mode;
    this.usable = v.usable;
    for (const input of this.modeInputs) input.checked = input.value === v.mode;
    const b = this.button;
    b.disabled = !v.usable;
    b.dataset.mode = v.mode;
    b.dataset.state = v.state;
    b.dataset.open = String(v.open);
    b.classList.toggle('no-stt', !v.stt);
    // Without a recognizer the button looks disabled but stays clickable (no aria-disabled, which
    // also makes automation refuse to click it) to say why it cannot listen.
    b.setAttribute('aria-pressed', String(v.mode === 'hands_free' ? v.open : v.held));
    const label = v.stt ? v.label : 'Microphone unavailable: the server has no speech recognizer (click for details)';
    b.setAttribute('aria-label', label);
    b.title = label;
    this.row.dataset.active = String(v.open || v.state !== 'off');
    this.meter.hidden = !v.open;
    this.meter.classList.toggle('idle', v.mode === 'push_to_talk' && !v.held);
    this.stateLine.textContent = v.stateText;
    this.stateLine.dataset.state = v.state;
    this.closeBtn.hidden = !(v.open && v.mode === 'push_to_talk');
    if (!v.open) this.setLevel(null);
  }

  /** The level meter (dBFS), or null to empty it. */
  setLevel(db: number | null): void {
    const pct = db === null ? 0 : Math.max(0, Math.min(100, ((db + METER_RANGE_DB) / METER_RANGE_DB) * 100));
    this.bar.style.width = `${pct.toFixed(1)}%`;
    this.meter.setAttribute('aria-valuenow', db === null ? String(-METER_RANGE_DB) : db.toFixed(0));
  }

  /** Bring the list in line with `entries` (oldest first); keep it scrolled to the newest. */
  renderHistory(entries: readonly HistoryEntry[]): void {
    const list = this.historyList;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const keep = new Set(entries);
    for (const [e, item] of this.items) {
      if (!keep.has(e)) {
        item.li.remove();
        this.items.delete(e);
      }
    }
    let prev: Element | null = null;
    for (const e of entries) {
      let item = this.items.get(e);
      if (!item) {
        item = { li: this.entryItem(e), rev: -1 };
        this.items.set(e, item);
      }
      if (item.rev !== e.rev) {
        item.rev = e.rev;
        item.li.querySelector('.msg-text')!.textContent = e.text;
        item.li.classList.toggle('interrupted', e.interrupted === true);
      }
      const want: Element | null = prev ? prev.nextElementSibling : list.firstElementChild;
      if (want !== item.li) list.insertBefore(item.li, want);
      prev = item.li;
    }
    this.historyBox.hidden = entries.length === 0;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  private entryItem(e: HistoryEntry): HTMLLIElement {
    const li = document.createElement('li');
    li.className = `msg msg-${e.who}`;
    li.dataset.who = e.who;
    const who = document.createElement('span');
    who.className = 'msg-who';
    who.textContent = e.who === 'user' ? (e.via === 'voice' ? 'You (spoken)' : 'You') : 'Avatar';
    const text = document.createElement('span');
    text.className = 'msg-text';
    li.append(who, text);
    return li;
  }
}
