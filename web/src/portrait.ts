// "Use my photo", the pure part: which photo files are taken, where the square crop around the
// face goes (and how to pad it with edge pixels where it leaves the photo), moving landmarks
// between the photo, the crop and the screen, the contour groups of the 68 iBUG 300-W points,
// hit testing for dragging, a sharpness measure and base64. No DOM: photo.ts draws, facedetect.ts
// runs the detector; the wire messages are in protocol.ts.

export type Point = readonly [number, number];

/** The detector's points: 68, in iBUG 300-W order. */
export const LANDMARK_COUNT = 68;

/** A named run of landmark indices drawn as one line (`closed`: back to its first point). */
export interface Contour {
  name: string;
  indices: readonly number[];
  closed: boolean;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The 68 points as contours (the subject's right is the picture's left). */
export const CONTOURS: readonly Contour[] = [
  { name: 'jaw', indices: range(0, 16), closed: false },
  { name: 'brow-right', indices: range(17, 21), closed: false },
  { name: 'brow-left', indices: range(22, 26), closed: false },
  { name: 'nose-bridge', indices: range(27, 30), closed: false },
  { name: 'nose-base', indices: range(31, 35), closed: false },
  { name: 'eye-right', indices: range(36, 41), closed: true },
  { name: 'eye-left', indices: range(42, 47), closed: true },
  { name: 'lips-outer', indices: range(48, 59), closed: true },
  { name: 'lips-inner', indices: range(60, 67), closed: true },
];

/** The mouth corners (outer lip contour). */
export const MOUTH_CORNERS = [48, 54] as const;

// ---- the photo file ----

export type PhotoType = 'image/jpeg' | 'image/png' | 'image/webp';

/** Larger files are refused before decoding. */
export const MAX_PHOTO_FILE_BYTES = 25 * 1024 * 1024;
/** Decoded photos with more pixels are refused (40 megapixels). */
export const MAX_PHOTO_PIXELS = 40_000_000;
/** The first detection runs on the photo scaled down to at most this many pixels a side. */
export const DETECT_MAX_SIDE = 1600;

/** What the first bytes say the file is (the browser's MIME type is only a guess from the name). */
export function sniffPhotoType(head: Uint8Array): PhotoType | null {
  const b = (i: number) => head[i] ?? -1;
  if (b(0) === 0xff && b(1) === 0xd8 && b(2) === 0xff) return 'image/jpeg';
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (png.every((v, i) => b(i) === v)) return 'image/png';
  const ascii = (from: number, s: string) => [...s].every((c, i) => b(from + i) === c.charCodeAt(0));
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'image/webp';
  return null;
}

const mb = (n: number) => `${(n / (1024 * 1024)).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MB`;

/** Why a picked file is refused (null: go on and decode it). `head`: its first 16 bytes or more. */
export function photoFileProblem(file: { name: string; size: number }, head: Uint8Array): string | null {
  if (file.size === 0) return `"${file.name}" is empty.`;
  if (file.size > MAX_PHOTO_FILE_BYTES) {
    return `"${file.name}" is too large (${mb(file.size)}); use a photo under ${mb(MAX_PHOTO_FILE_BYTES)}.`;
  }
  if (sniffPhotoType(head) === null) return `"${file.name}" is not a JPEG, PNG or WebP image.`;
  return null;
}

/** Why decoded dimensions are refused (null: fine). */
export function photoSizeProblem(width: number, height: number): string | null {
  if (width * height > MAX_PHOTO_PIXELS) {
    return `The photo is too large (${width}×${height}); use one under ${MAX_PHOTO_PIXELS / 1e6} megapixels.`;
  }
  if (Math.min(width, height) < 64) return `The photo is too small (${width}×${height}).`;
  return null;
}

/** The scale (≤ 1) that brings a photo within DETECT_MAX_SIDE. */
export function detectScale(width: number, height: number): number {
  return Math.min(1, DETECT_MAX_SIDE / Math.max(width, height));
}

// ---- faces ----

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The index of the largest box (by area), or -1 for none. */
export function largestFace(boxes: readonly Box[]): number {
  let best = -1;
  let area = -1;
  boxes.forEach((b, i) => {
    const a = b.width * b.height;
    if (a > area) {
      area = a;
      best = i;
    }
  });
  return best;
}

const mean = (pts: readonly Point[], idx: readonly number[]): Point => {
  let x = 0;
  let y = 0;
  for (const i of idx) {
    const p = pts[i]!;
    x += p[0];
    y += p[1];
  }
  return [x / idx.length, y / idx.length];
};
const dist = (a: Point, b: Point) => Math.hypot(a[0] - b[0], a[1] - b[1]);

/** The centres of the subject's right and left eye. */
export function eyeCentres(pts: readonly Point[]): { right: Point; left: Point } {
  return { right: mean(pts, range(36, 41)), left: mean(pts, range(42, 47)) };
}

/**
 * The face's width in the points' units: the jaw's span at the ears (0 to 16), but at least twice
 * the distance between the eyes (a badly placed jaw must not make the crop tiny).
 */
export function faceWidth(pts: readonly Point[]): number {
  const { right, left } = eyeCentres(pts);
  return Math.max(dist(pts[0]!, pts[16]!), 2 * dist(right, left));
}

// ---- the crop ----

/** The face spans this fraction of the crop's shorter side. */
export const FACE_FRACTION = 0.5;
/** The eyes sit this far down the crop (fraction of its height). */
export const EYE_LINE = 0.4;

export interface Crop {
  /** In the photo's pixels; may reach outside the photo. */
  x: number;
  y: number;
  width: number;
  height: number;
  /** Output pixels per photo pixel. */
  scale: number;
  /** The output (stream) size. */
  outWidth: number;
  outHeight: number;
  /**
   * The face's tilt (radians, the eye line's angle in the photo) that the crop turns away so the
   * eyes are level; 0 for a face upright within LEVEL_BELOW. Turned about the point between the
   * eyes. Absent: 0.
   */
  angle?: number;
}

/** A face tilted less than this (radians, 3°) is cut as it is, pixel for pixel. */
export const LEVEL_BELOW = (3 * Math.PI) / 180;

/** A crop kept inside the photo may grow the face up to this fraction of its shorter side. */
export const FACE_FRACTION_MAX = 0.75;

/**
 * Where to cut a picture of `outWidth`×`outHeight` (the stream's size) out of the photo for a
 * face with these landmarks (photo pixels): the face FACE_FRACTION of the shorter side, centred
 * between the eyes, which sit at EYE_LINE from the top.
 *
 * With the photo's size (`photo`) and an upright face, the crop stays inside the photo where it
 * can, so no pixels are invented: it moves (the face off centre), then shrinks (the face up to
 * FACE_FRACTION_MAX), but never cuts into the face (landmarks, with room for the forehead above
 * the brows). What is left over is padded by cropBlits.
 */
export function cropAroundFace(
  pts: readonly Point[],
  outWidth: number,
  outHeight: number,
  photo?: { width: number; height: number },
): Crop {
  const { right, left } = eyeCentres(pts);
  const mid: Point = [(right[0] + left[0]) / 2, (right[1] + left[1]) / 2];
  const tilt = Math.atan2(left[1] - right[1], left[0] - right[0]);
  const angle = Math.abs(tilt) < LEVEL_BELOW ? 0 : tilt;
  const face = faceWidth(pts);
  const aspect = outWidth / outHeight;
  const sized = (side: number): [number, number] => (aspect >= 1 ? [side * aspect, side] : [side, side / aspect]);
  let [width, height] = sized(face / FACE_FRACTION);
  let x = mid[0] - width / 2;
  let y = mid[1] - EYE_LINE * height;
  if (photo && angle === 0) {
    // The face's box: the landmarks, a little room beside them, the forehead above the brows.
    const xs = pts.map((p) => p[0]);
    const ys = pts.map((p) => p[1]);
    const [fx0, fx1] = [Math.min(...xs) - 0.05 * face, Math.max(...xs) + 0.05 * face];
    const [fy0, fy1] = [Math.min(...ys) - 0.35 * face, Math.max(...ys) + 0.05 * face];
    const fit = Math.min(1, photo.width / width, photo.height / height);
    const least = Math.max((face / FACE_FRACTION_MAX) / Math.min(width, height), (fx1 - fx0) / width, (fy1 - fy0) / height);
    const k = Math.min(1, Math.max(fit, least));
    [width, height] = [width * k, height * k];
    // Inside the photo if it fits, and around the face in any case (the face wins).
    const place = (at: number, size: number, photoSize: number, f0: number, f1: number) => {
      let v = at;
      if (size <= photoSize) v = Math.min(Math.max(v, 0), photoSize - size);
      return Math.min(Math.max(v, f1 - size), f0);
    };
    x = place(mid[0] - width / 2, width, photo.width, fx0, fx1);
    y = place(mid[1] - EYE_LINE * height, height, photo.height, fy0, fy1);
  }
  return {
    x,
    y,
    width,
    height,
    scale: outWidth / width,
    outWidth,
    outHeight,
    angle,
  };
}

/** The point the crop turns about (between the eyes), in photo pixels. */
function pivot(crop: Crop): Point {
  return [crop.x + crop.width / 2, crop.y + EYE_LINE * crop.height];
}

/** A photo point in the crop's output pixels. */
export function toCrop(crop: Crop, p: Point): Point {
  const a = crop.angle ?? 0;
  if (a === 0) return [(p[0] - crop.x) * crop.scale, (p[1] - crop.y) * crop.scale];
  const [cx, cy] = pivot(crop);
  const [dx, dy] = [p[0] - cx, p[1] - cy];
  const [cos, sin] = [Math.cos(-a), Math.sin(-a)];
  return [
    crop.outWidth / 2 + (dx * cos - dy * sin) * crop.scale,
    EYE_LINE * crop.outHeight + (dx * sin + dy * cos) * crop.scale,
  ];
}

/**
 * The canvas transform (a, b, c, d, e, f of setTransform) that draws the photo at its place in a
 * turned crop: photo pixels to output pixels, as toCrop.
 */
export function cropTransform(crop: Crop): [number, number, number, number, number, number] {
  const a = crop.angle ?? 0;
  const [cx, cy] = pivot(crop);
  const s = crop.scale;
  const [cos, sin] = [Math.cos(-a), Math.sin(-a)];
  const ox = crop.outWidth / 2;
  const oy = EYE_LINE * crop.outHeight;
  return [s * cos, s * sin, -s * sin, s * cos, ox - s * (cos * cx - sin * cy), oy - s * (sin * cx + cos * cy)];
}

/** Every point scaled by `s` (photo ↔ detection image, crop ↔ screen). */
export function scalePoints(pts: readonly Point[], s: number): Point[] {
  return pts.map((p) => [p[0] * s, p[1] * s] as const);
}

/** One drawImage call: the source rectangle (photo pixels) to the destination (output pixels). */
export interface Blit {
  sx: number;
  sy: number;
  sw: number;
  sh: number;
  dx: number;
  dy: number;
  dw: number;
  dh: number;
}

/**
 * The drawImage calls that render `crop` of a `photoW`×`photoH` photo: the part inside the photo,
 * then where the crop leaves it, the photo's edge rows/columns (and corner pixels) stretched over
 * the rest, so the padding continues the photo's edge instead of a flat colour.
 */
export function cropBlits(crop: Crop, photoW: number, photoH: number): Blit[] {
  const s = crop.scale;
  // The photo's pixels the crop covers (whole pixels), at least one pixel in each direction.
  const x0 = Math.min(photoW - 1, Math.max(0, Math.floor(crop.x)));
  const y0 = Math.min(photoH - 1, Math.max(0, Math.floor(crop.y)));
  const x1 = Math.max(x0 + 1, Math.min(photoW, Math.ceil(crop.x + crop.width)));
  const y1 = Math.max(y0 + 1, Math.min(photoH, Math.ceil(crop.y + crop.height)));
  const dx = (x: number) => (x - crop.x) * s;
  const dy = (y: number) => (y - crop.y) * s;
  const cols: { sx: number; sw: number; dx: number; dw: number }[] = [];
  const rows: { sy: number; sh: number; dy: number; dh: number }[] = [];
  if (dx(x0) > 0) cols.push({ sx: x0, sw: 1, dx: 0, dw: dx(x0) });
  cols.push({ sx: x0, sw: x1 - x0, dx: dx(x0), dw: (x1 - x0) * s });
  if (dx(x1) < crop.outWidth) cols.push({ sx: x1 - 1, sw: 1, dx: dx(x1), dw: crop.outWidth - dx(x1) });
  if (dy(y0) > 0) rows.push({ sy: y0, sh: 1, dy: 0, dh: dy(y0) });
  rows.push({ sy: y0, sh: y1 - y0, dy: dy(y0), dh: (y1 - y0) * s });
  if (dy(y1) < crop.outHeight) rows.push({ sy: y1 - 1, sh: 1, dy: dy(y1), dh: crop.outHeight - dy(y1) });
  const out: Blit[] = [];
  for (const r of rows) for (const c of cols) out.push({ sx: c.sx, sy: r.sy, sw: c.sw, sh: r.sh, dx: c.dx, dy: r.dy, dw: c.dw, dh: r.dh });
  return out;
}

/** Below this many photo pixels across, a face is refused; below WARN it is used with a warning. */
export function faceSizeProblem(facePx: number, crop: Crop): { refuse: string } | { warn: string } | null {
  const upscale = crop.scale;
  const px = Math.round(facePx);
  if (upscale > 3) {
    return { refuse: `The face is too small (${px} px wide) for a ${crop.outWidth}×${crop.outHeight} avatar; use a closer or larger photo.` };
  }
  if (upscale > 1.6) return { warn: `The face is small (${px} px wide): the avatar will look soft.` };
  return null;
}

/**
 * Sharpness: the variance of the 4-neighbour Laplacian of the luminance of an RGBA region
 * (`data`, `w`×`h`). Measured on the face at the crop's scale, so photos compare.
 */
export function sharpness(data: ArrayLike<number>, w: number, h: number): number {
  if (w < 3 || h < 3) return 0;
  const lum = new Float32Array(w * h);
  for (let i = 0; i < w * h; i++) lum[i] = 0.299 * data[4 * i]! + 0.587 * data[4 * i + 1]! + 0.114 * data[4 * i + 2]!;
  let sum = 0;
  let sum2 = 0;
  let n = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const i = y * w + x;
      const v = lum[i - 1]! + lum[i + 1]! + lum[i - w]! + lum[i + w]! - 4 * lum[i]!;
      sum += v;
      sum2 += v * v;
      n++;
    }
  }
  const m = sum / n;
  return sum2 / n - m * m;
}

/**
 * Sharpness below this: refused as too blurry; below WARN: a warning. Measured on the face-api
 * demo photos: 6.8–28.8 as they are, 1.8–3.0 after a 2 px Gaussian blur at full size.
 */
export const BLUR_REFUSE = 4;
export const BLUR_WARN = 6;

export function blurProblem(value: number): { refuse: string } | { warn: string } | null {
  if (value < BLUR_REFUSE) return { refuse: 'The face is too blurry; use a sharper photo.' };
  if (value < BLUR_WARN) return { warn: 'The face looks a little blurry: the avatar will look soft.' };
  return null;
}

/** The rectangle (output pixels, whole) around the eyes, brows and mouth, for `sharpness`. */
export function featureRegion(pts: readonly Point[], outW: number, outH: number): Box {
  const idx = [...range(17, 26), ...range(36, 67)];
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const i of idx) {
    const [x, y] = pts[i]!;
    x0 = Math.min(x0, x);
    y0 = Math.min(y0, y);
    x1 = Math.max(x1, x);
    y1 = Math.max(y1, y);
  }
  const cx0 = Math.max(0, Math.floor(x0));
  const cy0 = Math.max(0, Math.floor(y0));
  const cx1 = Math.min(outW, Math.ceil(x1));
  const cy1 = Math.min(outH, Math.ceil(y1));
  return { x: cx0, y: cy0, width: Math.max(0, cx1 - cx0), height: Math.max(0, cy1 - cy0) };
}

// ---- editing ----

/** The index of the point nearest `at` within `radius`, or -1. */
export function hitPoint(pts: readonly Point[], at: Point, radius: number): number {
  let best = -1;
  let bestD = radius;
  pts.forEach((p, i) => {
    const d = dist(p, at);
    if (d <= bestD) {
      bestD = d;
      best = i;
    }
  });
  return best;
}

/**
 * `p` kept inside a `w`×`h` picture: 0 to w − 1 (the last pixel's place, whether the reader takes
 * coordinates as pixel indices or as positions on a 0..w plane).
 */
export function clampPoint(p: Point, w: number, h: number): Point {
  return [Math.min(w - 1, Math.max(0, p[0])), Math.min(h - 1, Math.max(0, p[1]))];
}

/** Why these points cannot be sent for a `w`×`h` picture (null: they can). */
export function landmarksProblem(pts: readonly Point[], w: number, h: number): string | null {
  if (pts.length !== LANDMARK_COUNT) return `expected ${LANDMARK_COUNT} landmarks, got ${pts.length}`;
  for (const [i, p] of pts.entries()) {
    if (p.length !== 2 || !Number.isFinite(p[0]) || !Number.isFinite(p[1])) return `landmark ${i} is not a number pair`;
    if (p[0] < 0 || p[1] < 0 || p[0] > w - 1 || p[1] > h - 1) return `landmark ${i} is outside the ${w}×${h} picture`;
  }
  const { right, left } = eyeCentres(pts);
  const mouth = mean(pts, range(48, 59));
  if (right[0] >= left[0]) return 'the eyes are swapped (the right eye must be on the picture’s left)';
  if (mouth[1] <= Math.max(right[1], left[1])) return 'the mouth must be below the eyes';
  return null;
}

// ---- base64 ----

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 (with padding) of `bytes`. */
export function base64(bytes: Uint8Array): string {
  const out: string[] = [];
  let chunk = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    chunk += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
    if (chunk.length >= 8192) {
      out.push(chunk);
      chunk = '';
    }
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    chunk += `${ALPHABET[n >> 18]}${ALPHABET[(n >> 12) & 63]}==`;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    chunk += `${ALPHABET[n >> 18]}${ALPHABET[(n >> 12) & 63]}${ALPHABET[(n >> 6) & 63]}=`;
  }
  out.push(chunk);
  return out.join('');
}

/** JPEG qualities tried in turn until the picture fits the server's limit. */
export const JPEG_QUALITIES = [0.92, 0.85, 0.75, 0.6] as const;
