// "Use my photo", the page part: the button and file input, reading the photo, running the face
// detector (facedetect.ts, imported only when the user picks a photo), cutting the crop, opening
// the landmark editor on it (point_editor.ts), sending the `portrait` message and showing the
// server's answers. The geometry and checks are in portrait.ts; the messages in protocol.ts.

import { PointEditor } from './point_editor';
import {
  base64,
  blurProblem,
  clampPoint,
  cropAroundFace,
  cropBlits,
  cropTransform,
  detectScale,
  faceSizeProblem,
  faceWidth,
  featureRegion,
  JPEG_QUALITIES,
  largestFace,
  photoFileProblem,
  photoSizeProblem,
  scalePoints,
  sharpness,
  toCrop,
  type Point,
} from './portrait';
import {
  portraitMessage,
  portraitResetMessage,
  type ClientMessage,
  type ErrorMessage,
  type HelloMessage,
  type LogLevel,
  type PortraitMessage,
  type PortraitsMode,
} from './protocol';

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}

export type PhotoState = 'idle' | 'reading' | 'loading' | 'detecting' | 'editing' | 'failed' | 'sending' | 'checking' | 'applied';

export interface PhotoDeps {
  send(msg: ClientMessage): boolean;
  log(level: LogLevel, message: string): void;
}

/** What tests read through window.__talkstream.photo. */
export interface PhotoDebug {
  readonly state: PhotoState;
  /** faces the detector found in the photo */
  faces: number;
  /** the TensorFlow.js backend that ran the detector */
  backend: string | null;
  /** the landmarks found on the crop (crop pixels), before any dragging */
  detected: Point[] | null;
  /** the landmarks now (crop pixels) */
  readonly points: Point[] | null;
  /** where each point is on the screen now (client CSS pixels) */
  screenPoints(): { x: number; y: number }[];
  /** the face's sharpness measure (portrait.ts `sharpness`) */
  sharpness: number | null;
  /** warnings shown with the photo */
  notes: string[];
  /** the last `portrait` message sent: the image (base64) and its landmarks */
  sent: { image: string; landmarks: [number, number][]; bytes: number; quality: number } | null;
  /** every portrait answer received */
  messages: PortraitMessage[];
}

/** The server should say `checking` well within this; after it, the page gives up waiting. */
const ANSWER_TIMEOUT_MS = 60000;


export class PhotoController {
  private readonly useBtn = $<HTMLButtonElement>('photo-use');
  private readonly resetBtn = $<HTMLButtonElement>('photo-reset');
  private readonly fileInput = $<HTMLInputElement>('photo-file');
  private readonly statusLine = $('photo-status');
  private readonly warnings = $<HTMLUListElement>('photo-warnings');
  private readonly editor = $('photo-editor');
  private readonly progress = $('photo-progress');
  private readonly progressText = $('photo-progress-text');
  /** The crop with its points, to drag into place. */
  private readonly pointEditor = new PointEditor($<HTMLCanvasElement>('photo-canvas'), $('photo-canvas-wrap'), () => this.state === 'editing');
  private readonly msg = $('photo-msg');
  private readonly notesList = $<HTMLUListElement>('photo-notes');
  private readonly hint = $('photo-hint');
  private readonly cancelBtn = $<HTMLButtonElement>('photo-cancel');
  private readonly applyBtn = $<HTMLButtonElement>('photo-apply');

  private mode: PortraitsMode | undefined;
  private maxBytes = 0;
  private outW = 512;
  private outH = 512;
  private connected = false;
  private state: PhotoState = 'idle';
  /** a newer pick or Cancel makes older work stale */
  private run = 0;
  private notes: string[] = [];
  private answerTimer: ReturnType<typeof setTimeout> | undefined;
  /** a photo is the avatar of this session */
  private applied = false;
  readonly debug: PhotoDebug;

  constructor(private readonly deps: PhotoDeps) {
    const self = this;
    this.debug = {
      get state() {
        return self.state;
      },
      faces: 0,
      backend: null,
      detected: null,
      get points() {
        const pts = self.pointEditor.points;
        return pts ? pts.map((p) => [p[0], p[1]] as const) : null;
      },
      screenPoints: () => this.pointEditor.screenPoints(),
      sharpness: null,
      notes: [],
      sent: null,
      messages: [],
    };
    this.useBtn.addEventListener('click', () => {
      // Start fetching the detector now: the user is choosing a file meanwhile.
      void import('./facedetect').then((fd) => fd.loadModels()).catch(() => {});
      this.fileInput.click();
    });
    this.fileInput.addEventListener('change', () => {
      const file = this.fileInput.files?.[0];
      this.fileInput.value = '';
      if (file) void this.pick(file);
    });
    this.cancelBtn.addEventListener('click', () => this.close());
    this.applyBtn.addEventListener('click', () => void this.apply());
    this.resetBtn.addEventListener('click', () => {
      if (!this.deps.send(portraitResetMessage())) this.setStatus('Not connected.', 'error');
      else this.setStatus('Going back to the default avatar…');
    });
    this.refresh();
  }

  // ---- session events (main.ts) ----

  hello(m: HelloMessage): void {
    this.connected = true;
    this.mode = m.portraits;
    this.maxBytes = m.portrait_max_bytes ?? 0;
    if (m.stream?.width && m.stream.height) {
      const [w, h] = [Math.round(m.stream.width), Math.round(m.stream.height)];
      const changed = w !== this.outW || h !== this.outH;
      this.outW = w;
      this.outH = h;
      // A crop cut for the old size cannot be sent (its points are checked against the new one).
      if (changed && this.pointEditor.crop) {
        this.run++;
        this.pointEditor.clear();
        this.fail(`The stream is now ${w}×${h}; choose the photo again.`);
      }
    }
    // A new session starts with the server's default avatar.
    if (this.applied) {
      this.applied = false;
      this.setStatus('');
      this.warnings.replaceChildren();
    }
    if (this.state === 'applied') this.state = 'idle';
    if (this.state === 'sending' || this.state === 'checking') this.backToEditing('The connection was renewed before the server answered; try again.');
    if (this.mode === undefined || this.mode === 'off') this.close();
    this.refresh();
  }

  socketClosed(): void {
    this.connected = false;
    if (this.state === 'sending' || this.state === 'checking') this.backToEditing('The connection was lost before the server answered; try again once it is back.');
    this.refresh();
  }

  message(m: PortraitMessage): void {
    this.debug.messages.push(m);
    switch (m.state) {
      case 'checking':
        if (this.state === 'sending') {
          this.state = 'checking';
          this.showProgress('The server is checking your photo…');
        }
        break;
      case 'applied': {
        clearTimeout(this.answerTimer);
        this.applied = true;
        const notes = [...this.notes, ...m.notes];
        this.endEditing('applied');
        this.setStatus(`Your photo is the avatar (${m.width}×${m.height})${m.default ? ', also the server’s default' : ''}.`, 'ok');
        this.setWarnings(notes);
        break;
      }
      case 'refused':
        clearTimeout(this.answerTimer);
        if (this.pointEditor.crop) this.backToEditing(`The server refused the photo: ${m.reason}`);
        else this.setStatus(`The server refused the photo: ${m.reason}`, 'error');
        break;
      case 'reset':
        this.applied = false;
        if (this.state === 'applied') this.state = 'idle';
        this.setStatus('Back to the default avatar.');
        this.setWarnings([]);
        break;
    }
    this.refresh();
  }

  /** A server error while a photo is on its way is the answer to it; returns true if taken. */
  serverError(m: ErrorMessage): boolean {
    if (this.state !== 'sending' && this.state !== 'checking') return false;
    clearTimeout(this.answerTimer);
    this.backToEditing(`The server did not take the photo: ${m.message} (${m.code})`);
    this.refresh();
    return true;
  }

  // ---- picking and detecting ----

  private async pick(file: File): Promise<void> {
    const run = ++this.run;
    const stale = () => run !== this.run;
    this.pointEditor.clear();
    this.notes = [];
    this.debug.detected = null;
    this.debug.sharpness = null;
    this.debug.faces = 0;
    this.debug.notes = [];
    this.openEditor();
    this.state = 'reading';
    this.showProgress('Reading the photo…');
    this.refresh();
    try {
      const head = new Uint8Array(await file.slice(0, 16).arrayBuffer());
      const problem = photoFileProblem(file, head);
      if (problem) return this.fail(problem);
      let bitmap: ImageBitmap;
      try {
        bitmap = await createImageBitmap(file);
      } catch {
        return this.fail(`"${file.name}" could not be read as an image.`);
      }
      if (stale()) return;
      const sizeProblem = photoSizeProblem(bitmap.width, bitmap.height);
      if (sizeProblem) return this.fail(sizeProblem);

      this.state = 'loading';
      this.showProgress('Loading the face detector (about 6 MB, once)…');
      const fd = await import('./facedetect');
      this.debug.backend = await fd.loadModels();
      if (stale()) return;

      this.state = 'detecting';
      this.showProgress('Finding faces…');
      const ds = detectScale(bitmap.width, bitmap.height);
      const small = canvasOf(Math.round(bitmap.width * ds), Math.round(bitmap.height * ds));
      small.getContext('2d')!.drawImage(bitmap, 0, 0, small.width, small.height);
      const faces = await fd.detectFaces(small);
      if (stale()) return;
      this.debug.faces = faces.length;
      if (faces.length === 0) return this.fail('No face found in this photo. Use a photo where one face looks into the camera, well lit.');
      const face = faces[largestFace(faces.map((f) => f.box))]!;
      if (faces.length > 1) this.notes.push(`${faces.length} faces found: using the largest.`);

      const photoPts = scalePoints(face.landmarks, 1 / ds);
      const crop = cropAroundFace(photoPts, this.outW, this.outH, { width: bitmap.width, height: bitmap.height });
      const size = faceSizeProblem(faceWidth(photoPts), crop);
      if (size && 'refuse' in size) return this.fail(size.refuse);
      if (size) this.notes.push(size.warn);
      const out = canvasOf(this.outW, this.outH);
      const g = out.getContext('2d', { willReadFrequently: true })!;
      g.imageSmoothingQuality = 'high';
      // The photo's edges stretched over what the crop leaves of it (an upright face's crop stays
      // inside the photo when the photo is large enough), then, for a tilted
      // face, the photo turned so the eyes are level on top.
      for (const b of cropBlits(crop, bitmap.width, bitmap.height)) g.drawImage(bitmap, b.sx, b.sy, b.sw, b.sh, b.dx, b.dy, b.dw, b.dh);
      if (crop.angle) {
        g.setTransform(...cropTransform(crop));
        g.drawImage(bitmap, 0, 0);
        g.setTransform(1, 0, 0, 1, 0, 0);
        this.notes.push(`The face was tilted ${Math.round((Math.abs(crop.angle) * 180) / Math.PI)}°: the photo is turned so the eyes are level.`);
      }
      bitmap.close();

      this.showProgress('Placing the landmarks…');
      const expected = photoPts.map((p) => toCrop(crop, p));
      const again = await fd.detectFaces(out, 0.3);
      if (stale()) return;
      // The face we cut around is the one nearest the expected eyes (others may be in the margin).
      const pts = nearestFace(again, expected)?.landmarks ?? expected;
      const region = featureRegion(pts, this.outW, this.outH);
      const sharp = region.width >= 3 && region.height >= 3 ? sharpness(g.getImageData(region.x, region.y, region.width, region.height).data, region.width, region.height) : 0;
      this.debug.sharpness = sharp;
      const blur = blurProblem(sharp);
      if (blur && 'refuse' in blur) return this.fail(blur.refuse);
      if (blur) this.notes.push(blur.warn);

      const points = pts.map((p) => clampPoint(p, this.outW, this.outH));
      this.pointEditor.set(out, points, this.outW, this.outH);
      this.debug.detected = points.map((p) => [p[0], p[1]] as const);
      this.debug.notes = [...this.notes];
      this.state = 'editing';
      this.showEditor();
      this.deps.log('info', `photo: ${faces.length} face(s), crop ${Math.round(crop.width)} px → ${this.outW}×${this.outH}, sharpness ${sharp.toFixed(1)}, backend ${this.debug.backend}`);
    } catch (e) {
      if (stale()) return;
      const why = e instanceof Error ? e.message : String(e);
      this.deps.log('warn', `photo: ${why}`);
      this.fail(`The face detector failed: ${why}`);
    } finally {
      if (!stale()) this.refresh();
    }
  }

  // ---- sending ----

  private async apply(): Promise<void> {
    const { crop, points } = this.pointEditor;
    if (!crop || !points || this.state !== 'editing') return;
    const run = this.run;
    this.state = 'sending';
    this.msg.textContent = '';
    this.refresh();
    try {
      let bytes: Uint8Array | null = null;
      let quality = 0;
      for (const q of JPEG_QUALITIES) {
        const blob = await new Promise<Blob | null>((res) => crop.toBlob(res, 'image/jpeg', q));
        if (!blob) throw new Error('the browser could not encode the picture');
        bytes = new Uint8Array(await blob.arrayBuffer());
        quality = q;
        if (this.maxBytes <= 0 || bytes.length <= this.maxBytes) break;
      }
      if (run !== this.run) return;
      if (!bytes || (this.maxBytes > 0 && bytes.length > this.maxBytes)) {
        return this.backToEditing(`The picture does not fit the server's limit of ${Math.round(this.maxBytes / 1024)} KB.`);
      }
      const image = base64(bytes);
      const msg = portraitMessage(image, points, this.outW, this.outH);
      if (msg.type !== 'portrait') return;
      if (!this.deps.send(msg)) return this.backToEditing('Not connected: the photo was not sent.');
      this.debug.sent = { image, landmarks: msg.landmarks, bytes: bytes.length, quality };
      this.showProgress('Sending your photo…');
      clearTimeout(this.answerTimer);
      this.answerTimer = setTimeout(() => {
        if (this.state === 'sending' || this.state === 'checking') this.backToEditing('The server did not answer; try again.');
        this.refresh();
      }, ANSWER_TIMEOUT_MS);
    } catch (e) {
      this.backToEditing(`The photo could not be sent: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      this.refresh();
    }
  }

  // ---- the editor ----

  private openEditor(): void {
    this.editor.hidden = false;
    this.msg.textContent = '';
    this.msg.dataset.kind = '';
    this.notesList.replaceChildren();
    this.pointEditor.hide();
    this.hint.hidden = true;
    this.editor.scrollIntoView?.({ block: 'nearest' });
  }

  private showProgress(text: string): void {
    this.progress.hidden = false;
    this.progressText.textContent = text;
  }

  private showEditor(): void {
    this.progress.hidden = true;
    this.pointEditor.show();
    this.hint.hidden = false;
    this.msg.textContent = '';
    this.msg.dataset.kind = '';
    this.renderNotes(this.notesList, this.notes);
  }

  private fail(message: string): void {
    this.state = 'failed';
    this.progress.hidden = true;
    this.pointEditor.hide();
    this.hint.hidden = true;
    this.msg.textContent = message;
    this.msg.dataset.kind = 'error';
    this.renderNotes(this.notesList, []);
    this.deps.log('info', `photo: refused in the page: ${message}`);
    this.refresh();
  }

  private backToEditing(message: string): void {
    clearTimeout(this.answerTimer);
    if (!this.pointEditor.crop) {
      this.state = 'idle';
      this.setStatus(message, 'error');
      return;
    }
    this.state = 'editing';
    this.progress.hidden = true;
    this.msg.textContent = message;
    this.msg.dataset.kind = 'error';
  }

  private close(): void {
    this.run++;
    clearTimeout(this.answerTimer);
    this.endEditing(this.applied ? 'applied' : 'idle');
    this.refresh();
  }

  private endEditing(state: PhotoState): void {
    this.state = state;
    this.editor.hidden = true;
    this.pointEditor.clear();
    this.progress.hidden = true;
  }

  private refresh(): void {
    const enabled = this.mode === 'session' || this.mode === 'default';
    this.useBtn.hidden = !enabled;
    const busy = this.state === 'reading' || this.state === 'loading' || this.state === 'detecting' || this.state === 'sending' || this.state === 'checking';
    this.useBtn.disabled = !this.connected || busy;
    this.resetBtn.hidden = !(enabled && this.applied);
    this.resetBtn.disabled = !this.connected;
    this.applyBtn.hidden = this.state === 'failed';
    this.applyBtn.disabled = this.state !== 'editing' || !this.connected;
    this.cancelBtn.textContent = this.state === 'failed' ? 'Close' : 'Cancel';
    this.editor.dataset.state = this.state;
    this.pointEditor.busy(this.state === 'sending' || this.state === 'checking');
  }

  private setStatus(text: string, kind: 'ok' | 'error' | '' = ''): void {
    this.statusLine.textContent = text;
    this.statusLine.dataset.kind = kind;
  }

  private setWarnings(notes: string[]): void {
    this.renderNotes(this.warnings, notes);
  }

  private renderNotes(list: HTMLUListElement, notes: string[]): void {
    list.replaceChildren(
      ...notes.map((n) => {
        const li = document.createElement('li');
        li.textContent = n;
        return li;
      }),
    );
    list.hidden = notes.length === 0;
  }

  // ---- drawing and dragging ----
}

function canvasOf(w: number, h: number): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return c;
}

/** The face whose eyes are nearest where `expected` puts them. */
function nearestFace<T extends { landmarks: Point[] }>(faces: readonly T[], expected: readonly Point[]): T | undefined {
  const eyes = (pts: readonly Point[]) => [36, 39, 42, 45].map((i) => pts[i]!);
  const want = eyes(expected);
  let best: T | undefined;
  let bestD = Infinity;
  for (const f of faces) {
    const d = eyes(f.landmarks).reduce((s, p, i) => s + Math.hypot(p[0] - want[i]![0], p[1] - want[i]![1]), 0);
    if (d < bestD) {
      bestD = d;
      best = f;
    }
  }
  // Much further than the eye distance: another face, not this one.
  const eyeSpan = Math.hypot(want[3]![0] - want[0]![0], want[3]![1] - want[0]![1]);
  return bestD / 4 < eyeSpan / 2 ? best : undefined;
}
