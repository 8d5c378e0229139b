// DOM access and rendering. No protocol or networking logic here.

import type { CaptionView } from './captions';
import { TURN_TIMINGS, type MetricsMessage, type Stage, type TurnTiming } from './protocol';
import type { PublishBadge } from './publish';
import type { BadgeState } from './state';

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}

export type InfoValue = string | number | boolean | null | undefined;

const MAX_VISIBLE_ERRORS = 4;
const ERROR_TTL_MS = 20000;

const STAGE_TEXT: Record<Stage, string> = {
  idle: 'idle',
  thinking: 'thinking…',
  speaking: 'speaking…',
  complete: 'done',
  error: 'error',
};

function formatMs(v: number | undefined): string {
  if (v === undefined) return '—';
  return v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v).toLocaleString('en-US')} ms`;
}

export class Ui {
  readonly video = $<HTMLVideoElement>('video');
  private readonly badge = $('status-badge');
  private readonly note = $('status-note');
  private readonly stageText = $('stage-text');
  private readonly overlay = $('overlay');
  private readonly overlayText = $('overlay-text');
  private readonly unmuteBtn = $<HTMLButtonElement>('unmute');
  private readonly caption = $('caption');
  private readonly errors = $('errors');
  private readonly form = $<HTMLFormElement>('prompt-form');
  private readonly prompt = $<HTMLTextAreaElement>('prompt');
  private readonly sendBtn = $<HTMLButtonElement>('send');
  private readonly interruptBtn = $<HTMLButtonElement>('interrupt');
  private readonly streamBtn = $<HTMLButtonElement>('stream-toggle');
  private readonly turnPanel = $('turn-metrics');
  private readonly turnLabel = $('turn-label');
  private readonly detailsBody = $('details-body');
  private readonly sessionLabel = $('session-label');
  private readonly transportTag = $('transport');
  private readonly publishTag = $('publish');
  private readonly tokenForm = $<HTMLFormElement>('token-form');
  private readonly tokenInput = $<HTMLInputElement>('token-input');
  private readonly tokenError = $('token-error');
  /** section -> key -> value, rendered into the details panel */
  private readonly info = new Map<string, Map<string, string>>();
  private infoDirty = false;

  /** Show the access-token form (with `error` under it), or hide it with `null`. */
  askToken(error: string | null | undefined): void {
    if (error === null) {
      this.tokenForm.hidden = true;
      return;
    }
    this.tokenForm.hidden = false;
    this.tokenError.textContent = error ?? '';
    this.tokenInput.focus();
  }

  onToken(handler: (token: string) => void): void {
    this.tokenForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = this.tokenInput.value.trim();
      if (token) handler(token);
    });
  }

  setBadge(state: BadgeState): void {
    if (this.badge.dataset.state === state) return;
    this.badge.dataset.state = state;
    this.badge.textContent = state;
    document.body.dataset.state = state;
  }

  /** The go-live badge (RTMP publishing): its text, tooltip and state. */
  setPublish(badge: PublishBadge): void {
    this.publishTag.hidden = badge.hidden;
    this.publishTag.textContent = badge.text;
    this.publishTag.title = badge.title;
    this.publishTag.dataset.state = badge.state;
  }

  /** Which transport plays (`label` says why not WebRTC); null hides the tag. */
  setTransport(t: 'webrtc' | 'hls' | null, label: string): void {
    this.transportTag.hidden = t === null;
    this.transportTag.textContent = t === 'webrtc' ? 'WebRTC' : t === 'hls' ? 'HLS' : '';
    this.transportTag.dataset.transport = t ?? '';
    this.transportTag.title = t === null ? '' : `Playing over ${label}`;
  }

  setNote(text: string): void {
    this.note.textContent = text;
  }

  setSession(id: string | null): void {
    this.sessionLabel.textContent = id ? `session ${id}` : '';
  }

  /** null hides the overlay. */
  setOverlay(text: string | null): void {
    this.overlay.hidden = text === null;
    if (text !== null) this.overlayText.textContent = text;
  }

  showUnmute(show: boolean): void {
    this.unmuteBtn.hidden = !show;
  }

  /** The stage next to the badge ("speaking…"); null hides it (not connected). */
  setStage(stage: Stage | null): void {
    const text = stage === null ? '' : STAGE_TEXT[stage];
    this.stageText.textContent = text;
    this.stageText.dataset.stage = stage ?? '';
  }

  /** Earlier captions of the turn (dimmed), then the one being heard. */
  setCaption(view: CaptionView): void {
    if (view.current === null) {
      this.caption.classList.remove('visible');
      return;
    }
    const parts: HTMLElement[] = view.history.map((t) => {
      const span = document.createElement('span');
      span.className = 'caption-past';
      span.textContent = `${t} `;
      return span;
    });
    const cur = document.createElement('span');
    cur.className = 'caption-current';
    cur.textContent = view.current;
    parts.push(cur);
    this.caption.replaceChildren(...parts);
    this.caption.classList.add('visible');
  }

  clearCaption(): void {
    this.caption.classList.remove('visible');
    this.caption.replaceChildren();
  }

  /** on_screen_ms by turn (it may come before or after the turn's metrics) */
  private readonly onScreen = new Map<number, number>();
  private panelTurn: number | undefined;

  /** When the page showed `turn`'s answer (ms from the prompt), in the panel if it shows that turn. */
  setOnScreen(turn: number, ms: number): void {
    this.onScreen.set(turn, ms);
    if (this.onScreen.size > 32) this.onScreen.delete(Math.min(...this.onScreen.keys()));
    if (this.panelTurn === turn) this.showOnScreen(ms);
  }

  private showOnScreen(ms: number | undefined): void {
    const el = this.turnPanel.querySelector<HTMLElement>('[data-metric="on_screen_ms"]');
    if (el) el.textContent = formatMs(ms);
  }

  /** The last turn's timings; null empties the panel. */
  setTurnMetrics(m: MetricsMessage | null): void {
    this.turnPanel.hidden = m === null;
    if (!m) return;
    this.panelTurn = m.turn;
    this.showOnScreen(m.turn === undefined ? undefined : this.onScreen.get(m.turn));
    this.turnLabel.textContent = `Last turn${m.turn !== undefined ? ` · #${m.turn}` : ''}${m.interrupted ? ' · interrupted' : ''}`;
    this.turnPanel.classList.toggle('interrupted', m.interrupted === true);
    for (const k of TURN_TIMINGS) {
      const el = this.turnPanel.querySelector<HTMLElement>(`[data-metric="${k}"]`);
      if (el) el.textContent = formatMs(m[k as TurnTiming]);
    }
  }

  /** Stop/Start toggle: what the button does next, or null to disable it. */
  setStreamToggle(next: 'stop' | 'start' | null): void {
    this.streamBtn.disabled = next === null;
    if (next) {
      this.streamBtn.dataset.action = next;
      this.streamBtn.textContent = next === 'stop' ? 'Stop stream' : 'Start stream';
    }
  }

  onStreamToggle(cb: (action: 'stop' | 'start') => void): void {
    this.streamBtn.addEventListener('click', () => {
      const a = this.streamBtn.dataset.action;
      if (a === 'stop' || a === 'start') cb(a);
    });
  }

  showError(message: string): void {
    // The same message again (e.g. a repeated prompt rejection): count it instead of stacking.
    const top = this.errors.firstElementChild as HTMLElement | null;
    if (top && top.dataset.message === message) {
      const n = Number(top.dataset.count ?? '1') + 1;
      top.dataset.count = String(n);
      const time = top.querySelector('time');
      if (time) time.textContent = new Date().toLocaleTimeString();
      const count = top.querySelector('.error-count');
      if (count) count.textContent = `×${n}`;
      clearTimeout(Number(top.dataset.timer));
      top.dataset.timer = String(setTimeout(() => top.remove(), ERROR_TTL_MS));
      return;
    }
    const item = document.createElement('div');
    item.dataset.message = message;
    item.className = 'error-item';
    const time = document.createElement('time');
    time.textContent = new Date().toLocaleTimeString();
    const text = document.createElement('span');
    text.className = 'error-text';
    text.textContent = message;
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'error-close';
    close.setAttribute('aria-label', 'Dismiss');
    close.textContent = '×';
    close.addEventListener('click', () => item.remove());
    const count = document.createElement('span');
    count.className = 'error-count';
    item.append(time, text, count, close);
    this.errors.prepend(item);
    while (this.errors.children.length > MAX_VISIBLE_ERRORS) this.errors.lastElementChild?.remove();
    item.dataset.timer = String(setTimeout(() => item.remove(), ERROR_TTL_MS));
  }

  setPromptEnabled(send: boolean, interrupt: boolean): void {
    this.sendBtn.disabled = !send;
    this.interruptBtn.disabled = !interrupt;
  }

  setInfo(section: string, key: string, value: InfoValue): void {
    let s = this.info.get(section);
    if (!s) {
      s = new Map();
      this.info.set(section, s);
    }
    const text = value === null || value === undefined || value === '' ? '—' : String(value);
    if (s.get(key) === text) return;
    s.set(key, text);
    this.scheduleInfoRender();
  }

  clearInfo(section: string): void {
    if (this.info.delete(section)) this.scheduleInfoRender();
  }

  onUnmute(cb: () => void): void {
    this.unmuteBtn.addEventListener('click', cb);
  }

  onInterrupt(cb: () => void): void {
    this.interruptBtn.addEventListener('click', cb);
  }

  /** `send` returns true if the text was sent; the box is then cleared. */
  onSend(send: (text: string) => boolean): void {
    const submit = () => {
      const text = this.prompt.value.trim();
      if (!text || this.sendBtn.disabled) return;
      if (send(text)) this.prompt.value = '';
    };
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      submit();
    });
    this.prompt.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        submit();
      }
    });
  }

  private scheduleInfoRender(): void {
    if (this.infoDirty) return;
    this.infoDirty = true;
    requestAnimationFrame(() => {
      this.infoDirty = false;
      this.renderInfo();
    });
  }

  private renderInfo(): void {
    const frag = document.createDocumentFragment();
    for (const [section, entries] of this.info) {
      if (entries.size === 0) continue;
      const box = document.createElement('section');
      const h = document.createElement('h3');
      h.textContent = section;
      const dl = document.createElement('dl');
      for (const [k, v] of entries) {
        const dt = document.createElement('dt');
        dt.textContent = k;
        const dd = document.createElement('dd');
        dd.textContent = v;
        dl.append(dt, dd);
      }
      box.append(h, dl);
      frag.append(box);
    }
    this.detailsBody.replaceChildren(frag);
  }
}
