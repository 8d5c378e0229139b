// The landmark editor of "Use my photo": the crop on a canvas with the face's contours drawn
// over it and its 68 points, which the mouse or a finger drags (a larger target for touch) and
// the keyboard moves (arrows, 10 px with Shift; [ and ] choose the point). photo.ts owns the
// flow around it; the geometry (hit testing, clamping, contours) is in portrait.ts.

import { clampPoint, CONTOURS, hitPoint, type Point } from './portrait';

const COLORS: Record<string, string> = {
  jaw: 'rgba(255, 255, 255, 0.6)',
  'brow-right': '#fbbf24',
  'brow-left': '#fbbf24',
  'nose-bridge': 'rgba(255, 255, 255, 0.35)',
  'nose-base': 'rgba(255, 255, 255, 0.35)',
  'eye-right': '#5eead4',
  'eye-left': '#5eead4',
  'lips-outer': '#f472b6',
  'lips-inner': '#f9a8d4',
};

export class PointEditor {
  /** The crop being edited (output pixels), and its points on it. */
  crop: HTMLCanvasElement | null = null;
  points: Point[] | null = null;
  private drag: { id: number; index: number; off: Point } | null = null;
  /** the point under the pointer */
  private active = -1;
  /** the point the arrow keys move (the last one pressed, or chosen with [ and ]) */
  private selected = -1;
  private drawQueued = false;

  /** `editable`: whether points may move now (the photo is not being sent). */
  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly wrap: HTMLElement,
    private readonly editable: () => boolean,
  ) {
    canvas.addEventListener('pointerdown', (e) => this.pointerDown(e));
    canvas.addEventListener('pointermove', (e) => this.pointerMove(e));
    const up = (e: PointerEvent) => {
      if (this.drag && e.pointerId === this.drag.id) {
        this.drag = null;
        this.queueDraw();
      }
    };
    canvas.addEventListener('keydown', (e) => this.key(e));
    canvas.addEventListener('pointerup', up);
    canvas.addEventListener('pointercancel', up);
    canvas.addEventListener('lostpointercapture', up);
  }

  /** Edit `points` on `crop` (both `w`×`h` output pixels); shown by show(). */
  set(crop: HTMLCanvasElement, points: Point[], w: number, h: number): void {
    this.crop = crop;
    this.points = points;
    this.selected = -1;
    this.canvas.width = w;
    this.canvas.height = h;
  }

  /** Forget the crop and its points. */
  clear(): void {
    this.crop = null;
    this.points = null;
    this.drag = null;
    this.selected = -1;
  }

  show(): void {
    this.wrap.hidden = false;
    this.queueDraw();
  }

  hide(): void {
    this.wrap.hidden = true;
  }

  /** Mark the canvas busy while the photo is on its way (the page's style dims it). */
  busy(on: boolean): void {
    this.canvas.dataset.busy = String(on);
  }

  /** Canvas pixels per CSS pixel. */
  private pxPerCss(): number {
    const w = this.canvas.getBoundingClientRect().width;
    return w > 0 ? this.canvas.width / w : 1;
  }

  private toCanvas(e: PointerEvent): Point {
    const r = this.canvas.getBoundingClientRect();
    const k = this.pxPerCss();
    return [(e.clientX - r.left) * k, (e.clientY - r.top) * k];
  }

  /** The points where they are on the screen (CSS pixels), for tests. */
  screenPoints(): { x: number; y: number }[] {
    if (!this.points || this.wrap.hidden) return [];
    const r = this.canvas.getBoundingClientRect();
    const k = this.pxPerCss();
    return this.points.map((p) => ({ x: r.left + p[0] / k, y: r.top + p[1] / k }));
  }

  private hitRadius(e: PointerEvent): number {
    return (e.pointerType === 'touch' ? 22 : 10) * this.pxPerCss();
  }

  private pointerDown(e: PointerEvent): void {
    if (!this.points || !this.editable() || e.button !== 0) return;
    const at = this.toCanvas(e);
    const i = hitPoint(this.points, at, this.hitRadius(e));
    if (i < 0) return;
    e.preventDefault();
    this.canvas.setPointerCapture?.(e.pointerId);
    const p = this.points[i]!;
    this.drag = { id: e.pointerId, index: i, off: [p[0] - at[0], p[1] - at[1]] };
    this.active = i;
    this.selected = i;
    this.canvas.focus({ preventScroll: true });
    this.queueDraw();
  }

  private pointerMove(e: PointerEvent): void {
    if (!this.points) return;
    const at = this.toCanvas(e);
    if (this.drag && e.pointerId === this.drag.id) {
      const { index, off } = this.drag;
      this.points[index] = clampPoint([at[0] + off[0], at[1] + off[1]], this.canvas.width, this.canvas.height);
      this.queueDraw();
      return;
    }
    if (!this.editable()) return;
    const over = hitPoint(this.points, at, this.hitRadius(e));
    this.canvas.style.cursor = over >= 0 ? 'grab' : '';
    if (over !== this.active) {
      this.active = over;
      this.queueDraw();
    }
  }

  /** Arrow keys move the selected point 1 px (10 with Shift); [ and ] choose another. */
  private key(e: KeyboardEvent): void {
    if (!this.points || !this.editable()) return;
    const n = this.points.length;
    if (e.key === '[' || e.key === ']') {
      this.selected = this.selected < 0 ? 0 : (this.selected + (e.key === ']' ? 1 : n - 1)) % n;
    } else {
      const step = e.shiftKey ? 10 : 1;
      const d: Record<string, Point> = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      const v = d[e.key];
      if (!v) return;
      if (this.selected < 0) this.selected = 0;
      const p = this.points[this.selected]!;
      this.points[this.selected] = clampPoint([p[0] + v[0], p[1] + v[1]], this.canvas.width, this.canvas.height);
    }
    e.preventDefault();
    this.queueDraw();
  }

  private queueDraw(): void {
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      this.draw();
    });
  }

  private draw(): void {
    const g = this.canvas.getContext('2d');
    if (!g || !this.crop || !this.points) return;
    const k = this.pxPerCss();
    const pts = this.points;
    g.clearRect(0, 0, this.canvas.width, this.canvas.height);
    g.drawImage(this.crop, 0, 0);
    g.lineJoin = 'round';
    g.lineCap = 'round';
    for (const c of CONTOURS) {
      g.beginPath();
      c.indices.forEach((idx, n) => {
        const p = pts[idx]!;
        if (n === 0) g.moveTo(p[0], p[1]);
        else g.lineTo(p[0], p[1]);
      });
      if (c.closed) g.closePath();
      g.strokeStyle = 'rgba(0, 0, 0, 0.45)';
      g.lineWidth = 3 * k;
      g.stroke();
      g.strokeStyle = COLORS[c.name] ?? '#fff';
      g.lineWidth = 1.5 * k;
      g.stroke();
    }
    pts.forEach((p, i) => {
      const hot = i === this.active || i === this.drag?.index || (i === this.selected && document.activeElement === this.canvas);
      g.beginPath();
      g.arc(p[0], p[1], (hot ? 5 : 2.6) * k, 0, Math.PI * 2);
      g.fillStyle = hot ? '#7c8cff' : '#ffffff';
      g.fill();
      g.lineWidth = 1 * k;
      g.strokeStyle = 'rgba(0, 0, 0, 0.7)';
      g.stroke();
    });
    this.canvas.style.cursor = this.drag ? 'grabbing' : this.canvas.style.cursor;
  }
}
