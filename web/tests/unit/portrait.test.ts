import { describe, expect, it } from 'vitest';
import {
  base64,
  blurProblem,
  clampPoint,
  CONTOURS,
  cropAroundFace,
  cropBlits,
  cropTransform,
  detectScale,
  DETECT_MAX_SIDE,
  EYE_LINE,
  eyeCentres,
  FACE_FRACTION,
  FACE_FRACTION_MAX,
  faceSizeProblem,
  faceWidth,
  featureRegion,
  hitPoint,
  LANDMARK_COUNT,
  landmarksProblem,
  largestFace,
  MAX_PHOTO_FILE_BYTES,
  photoFileProblem,
  photoSizeProblem,
  scalePoints,
  sharpness,
  sniffPhotoType,
  toCrop,
  type Blit,
  type Point,
} from '../../src/portrait';

/** A plausible frontal face: width `s`, eyes on the line y0, centred on cx (iBUG 300-W order). */
function face(cx: number, y0: number, s: number): Point[] {
  const pts: Point[] = [];
  for (let i = 0; i <= 16; i++) {
    const t = Math.PI - (Math.PI * i) / 16;
    pts.push([cx + (s / 2) * Math.cos(t), y0 + 0.75 * s * Math.sin(t)]);
  }
  for (let i = 0; i < 5; i++) pts.push([cx - 0.4 * s + (0.3 * s * i) / 4, y0 - 0.15 * s]);
  for (let i = 0; i < 5; i++) pts.push([cx + 0.1 * s + (0.3 * s * i) / 4, y0 - 0.15 * s]);
  for (let i = 0; i < 4; i++) pts.push([cx, y0 + (0.25 * s * i) / 3]);
  for (let i = 0; i < 5; i++) pts.push([cx - 0.08 * s + (0.16 * s * i) / 4, y0 + 0.3 * s]);
  const ring = (x: number, y: number, rx: number, ry: number, n: number) => {
    for (let i = 0; i < n; i++) {
      const t = Math.PI + (2 * Math.PI * i) / n;
      pts.push([x + rx * Math.cos(t), y + ry * Math.sin(t)]);
    }
  };
  ring(cx - 0.2 * s, y0, 0.08 * s, 0.03 * s, 6);
  ring(cx + 0.2 * s, y0, 0.08 * s, 0.03 * s, 6);
  ring(cx, y0 + 0.45 * s, 0.18 * s, 0.07 * s, 12);
  ring(cx, y0 + 0.45 * s, 0.12 * s, 0.02 * s, 8);
  return pts;
}

const ascii = (s: string) => Uint8Array.from([...s].map((c) => c.charCodeAt(0)));

describe('contours', () => {
  it('use each of the 68 points exactly once', () => {
    const all = CONTOURS.flatMap((c) => c.indices).sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: LANDMARK_COUNT }, (_, i) => i));
    expect(CONTOURS.find((c) => c.name === 'lips-outer')).toMatchObject({ closed: true, indices: expect.arrayContaining([48, 54]) });
    expect(CONTOURS.find((c) => c.name === 'jaw')?.closed).toBe(false);
  });
});

describe('the photo file', () => {
  it('is recognised by its first bytes', () => {
    expect(sniffPhotoType(Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]))).toBe('image/jpeg');
    expect(sniffPhotoType(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0]))).toBe('image/png');
    expect(sniffPhotoType(ascii('RIFF\x10\x00\x00\x00WEBPVP8 '))).toBe('image/webp');
    expect(sniffPhotoType(ascii('RIFF\x10\x00\x00\x00WAVEfmt '))).toBeNull();
    expect(sniffPhotoType(ascii('GIF89a'))).toBeNull();
    expect(sniffPhotoType(ascii('hello, this is text'))).toBeNull();
    expect(sniffPhotoType(new Uint8Array())).toBeNull();
  });

  it('is refused when empty, too large or not a photo, with its name in the message', () => {
    const jpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0]);
    expect(photoFileProblem({ name: 'me.jpg', size: 1000 }, jpeg)).toBeNull();
    expect(photoFileProblem({ name: 'me.jpg', size: 0 }, jpeg)).toMatch(/"me\.jpg" is empty/);
    expect(photoFileProblem({ name: 'big.jpg', size: MAX_PHOTO_FILE_BYTES + 1 }, jpeg)).toMatch(/"big\.jpg" is too large \(25 MB\).*under 25 MB/);
    expect(photoFileProblem({ name: 'notes.txt', size: 20 }, ascii('just some text here'))).toBe('"notes.txt" is not a JPEG, PNG or WebP image.');
  });

  it('is refused when decoded too large or too small', () => {
    expect(photoSizeProblem(1920, 1280)).toBeNull();
    expect(photoSizeProblem(8000, 6000)).toMatch(/too large \(8000×6000\).*40 megapixels/);
    expect(photoSizeProblem(40, 300)).toMatch(/too small/);
  });

  it('is scaled down for the first detection only when large', () => {
    expect(detectScale(800, 600)).toBe(1);
    expect(detectScale(3200, 2400)).toBeCloseTo(DETECT_MAX_SIDE / 3200);
    expect(detectScale(1000, 4000)).toBeCloseTo(DETECT_MAX_SIDE / 4000);
  });
});

describe('faces and the crop', () => {
  it('takes the largest face', () => {
    const b = (w: number, h: number) => ({ x: 0, y: 0, width: w, height: h });
    expect(largestFace([])).toBe(-1);
    expect(largestFace([b(10, 10), b(30, 20), b(20, 20)])).toBe(1);
  });

  it('measures the face by the jaw, at least twice the eye distance', () => {
    const pts = face(500, 400, 200);
    expect(faceWidth(pts)).toBeCloseTo(200);
    expect(eyeCentres(pts).right[0]).toBeCloseTo(460);
    expect(eyeCentres(pts).left[0]).toBeCloseTo(540);
    // a jaw squeezed to nothing: the eyes (80 apart) still say 160
    const squeezed = pts.map((p, i) => (i <= 16 ? ([500, p[1]] as const) : p));
    expect(faceWidth(squeezed)).toBeCloseTo(160);
  });

  it('puts the face at half the square and the eyes at 40 % from the top', () => {
    const pts = face(700, 500, 200);
    const crop = cropAroundFace(pts, 512, 512);
    expect(crop.width).toBeCloseTo(200 / FACE_FRACTION);
    expect(crop.height).toBeCloseTo(crop.width);
    expect(crop.scale).toBeCloseTo(512 / 400);
    const c = pts.map((p) => toCrop(crop, p));
    expect(c[16]![0] - c[0]![0]).toBeCloseTo(256);
    expect((c[0]![0] + c[16]![0]) / 2).toBeCloseTo(256);
    const eyes = eyeCentres(c);
    expect(eyes.right[1]).toBeCloseTo(EYE_LINE * 512);
    expect(eyes.left[1]).toBeCloseTo(EYE_LINE * 512);
  });

  it('keeps the stream aspect for a wide or tall stream', () => {
    const pts = face(700, 500, 200);
    const wide = cropAroundFace(pts, 640, 480);
    expect(wide.width / wide.height).toBeCloseTo(640 / 480);
    expect(wide.height).toBeCloseTo(400);
    expect(toCrop(wide, eyeCentres(pts).right)[1]).toBeCloseTo(0.4 * 480);
    const tall = cropAroundFace(pts, 480, 640);
    expect(tall.width).toBeCloseTo(400);
    expect(tall.height).toBeCloseTo(400 * (640 / 480));
  });

  it('turns a tilted face upright (eyes level), and draws the photo where its points go', () => {
    const upright = face(700, 500, 200);
    const tilt = (25 * Math.PI) / 180;
    const turn = (p: Point): Point => {
      const [dx, dy] = [p[0] - 700, p[1] - 500];
      return [700 + dx * Math.cos(tilt) - dy * Math.sin(tilt), 500 + dx * Math.sin(tilt) + dy * Math.cos(tilt)];
    };
    const pts = upright.map(turn);
    const crop = cropAroundFace(pts, 512, 512);
    expect(crop.angle).toBeCloseTo(tilt);
    const c = pts.map((p) => toCrop(crop, p));
    const eyes = eyeCentres(c);
    expect(eyes.right[1]).toBeCloseTo(EYE_LINE * 512);
    expect(eyes.left[1]).toBeCloseTo(EYE_LINE * 512);
    expect((eyes.right[0] + eyes.left[0]) / 2).toBeCloseTo(256);
    // The jaw spans half the crop as for the upright face.
    expect(Math.hypot(c[16]![0] - c[0]![0], c[16]![1] - c[0]![1])).toBeCloseTo(256);
    // The canvas transform puts every photo point where toCrop says.
    const [a, b, cc, d, e, f] = cropTransform(crop);
    for (const [i, p] of pts.entries()) {
      expect(a * p[0] + cc * p[1] + e).toBeCloseTo(c[i]![0]);
      expect(b * p[0] + d * p[1] + f).toBeCloseTo(c[i]![1]);
    }
    // A face tilted under 3° is cut as it is.
    const slight = upright.map((p) => [p[0], p[1] + (p[0] - 700) * 0.03] as const);
    expect(cropAroundFace(slight, 512, 512).angle).toBe(0);
  });

  it('keeps an upright face\'s crop inside the photo: moved, then shrunk, never into the face', () => {
    // Room all around: the same crop as without the photo's size.
    const pts = face(700, 500, 200);
    expect(cropAroundFace(pts, 512, 512, { width: 1400, height: 1000 })).toEqual(cropAroundFace(pts, 512, 512));
    // A face low in a photo that is large enough: the crop moves up to the photo's bottom edge,
    // keeping its size; the face is lower in it.
    const low = face(700, 820, 200);
    const moved = cropAroundFace(low, 512, 512, { width: 1400, height: 1000 });
    expect(moved.width).toBeCloseTo(400);
    expect(moved.y + moved.height).toBeCloseTo(1000);
    expect(toCrop(moved, eyeCentres(low).right)[1]).toBeGreaterThan(EYE_LINE * 512);
    // A photo cut close around the face (a 300 px square, the face 200 px wide): the crop
    // shrinks to the photo, no padding, the face larger in it.
    const close = face(150, 140, 200);
    const shrunk = cropAroundFace(close, 512, 512, { width: 300, height: 300 });
    expect(shrunk.width).toBeCloseTo(300);
    expect(shrunk.x).toBeCloseTo(0);
    expect(shrunk.y).toBeCloseTo(0);
    // Closer still: the crop stops shrinking at the face's size and never cuts into it.
    const tight = cropAroundFace(close, 512, 512, { width: 210, height: 230 });
    expect(tight.width).toBeGreaterThanOrEqual(200 / FACE_FRACTION_MAX - 1e-9);
    for (const p of close.map((q) => toCrop(tight, q))) {
      expect(p[0]).toBeGreaterThanOrEqual(0);
      expect(p[0]).toBeLessThanOrEqual(512);
      expect(p[1]).toBeGreaterThanOrEqual(0);
      expect(p[1]).toBeLessThanOrEqual(512);
    }
    // A tilted face is turned about its eyes as before (the photo's size is not used).
    const tilt = 0.3;
    const turned = pts.map((p) => [700 + (p[0] - 700) * Math.cos(tilt) - (p[1] - 500) * Math.sin(tilt), 500 + (p[0] - 700) * Math.sin(tilt) + (p[1] - 500) * Math.cos(tilt)] as const);
    expect(cropAroundFace(turned, 512, 512, { width: 800, height: 600 })).toEqual(cropAroundFace(turned, 512, 512));
  });

  it('scales points', () => {
    expect(scalePoints([[10, 20]], 0.5)).toEqual([[5, 10]]);
  });
});

/** The blits tile the output exactly: every output pixel centre is covered once. */
function coverage(blits: Blit[], w: number, h: number): number[] {
  const counts: number[] = [];
  for (let y = 0.5; y < h; y += 7) {
    for (let x = 0.5; x < w; x += 7) {
      counts.push(blits.filter((b) => x >= b.dx && x < b.dx + b.dw && y >= b.dy && y < b.dy + b.dh).length);
    }
  }
  return [...new Set(counts)];
}

describe('cropBlits', () => {
  it('is one blit when the crop is inside the photo', () => {
    const crop = { x: 100, y: 50, width: 400, height: 400, scale: 512 / 400, outWidth: 512, outHeight: 512 };
    const blits = cropBlits(crop, 1000, 800);
    expect(blits).toHaveLength(1);
    expect(blits[0]).toMatchObject({ sx: 100, sy: 50, sw: 400, sh: 400, dx: 0, dy: 0 });
    expect(blits[0]!.dw).toBeCloseTo(512);
  });

  it('pads with the edge rows, columns and corner pixel where the crop leaves the photo', () => {
    const crop = { x: -50, y: -100, width: 400, height: 400, scale: 512 / 400, outWidth: 512, outHeight: 512 };
    const blits = cropBlits(crop, 1000, 800);
    expect(blits).toHaveLength(4);
    expect(coverage(blits, 512, 512)).toEqual([1]);
    const corner = blits.find((b) => b.dx === 0 && b.dy === 0)!;
    expect(corner).toMatchObject({ sx: 0, sy: 0, sw: 1, sh: 1 });
    expect(corner.dw).toBeCloseTo(50 * (512 / 400));
    expect(corner.dh).toBeCloseTo(100 * (512 / 400));
    const top = blits.find((b) => b.dy === 0 && b.dx > 0)!;
    expect(top).toMatchObject({ sx: 0, sy: 0, sw: 350, sh: 1 });
    const left = blits.find((b) => b.dx === 0 && b.dy > 0)!;
    expect(left).toMatchObject({ sx: 0, sy: 0, sw: 1, sh: 300 });
  });

  it('pads all four sides of a small photo (nine blits) and still tiles the output', () => {
    const crop = { x: -30, y: -40, width: 200, height: 200, scale: 512 / 200, outWidth: 512, outHeight: 512 };
    const blits = cropBlits(crop, 120, 100);
    expect(blits).toHaveLength(9);
    expect(coverage(blits, 512, 512)).toEqual([1]);
    const br = blits.find((b) => Math.abs(b.dx + b.dw - 512) < 1e-6 && Math.abs(b.dy + b.dh - 512) < 1e-6)!;
    expect(br).toMatchObject({ sx: 119, sy: 99, sw: 1, sh: 1 });
  });
});

describe('quality checks', () => {
  it('refuses faces blown up more than 3× and warns above 1.6×', () => {
    const crop = (scale: number) => ({ x: 0, y: 0, width: 512 / scale, height: 512 / scale, scale, outWidth: 512, outHeight: 512 });
    expect(faceSizeProblem(256, crop(1))).toBeNull();
    expect(faceSizeProblem(128, crop(2))).toEqual({ warn: expect.stringMatching(/small \(128 px wide\)/) });
    expect(faceSizeProblem(60, crop(4.2))).toEqual({ refuse: expect.stringMatching(/too small \(60 px wide\) for a 512×512 avatar/) });
  });

  it('measures sharpness: zero on flat, high on fine detail, lower once blurred', () => {
    const w = 40;
    const h = 40;
    const img = (f: (x: number, y: number) => number) => {
      const d = new Uint8ClampedArray(w * h * 4);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const v = f(x, y);
          d.set([v, v, v, 255], (y * w + x) * 4);
        }
      }
      return d;
    };
    expect(sharpness(img(() => 128), w, h)).toBe(0);
    const sharp = sharpness(img((x, y) => ((x >> 1) + (y >> 1)) % 2 ? 200 : 50), w, h);
    const soft = sharpness(img((x, y) => 125 + 40 * Math.sin(x / 6) * Math.cos(y / 6)), w, h);
    expect(sharp).toBeGreaterThan(1000);
    expect(soft).toBeLessThan(5);
    expect(blurProblem(sharp)).toBeNull();
    expect(blurProblem(soft)).toEqual({ refuse: expect.stringMatching(/too blurry/) });
    expect(sharpness(new Uint8ClampedArray(8), 2, 1)).toBe(0);
  });

  it('finds the brows-to-mouth region in whole pixels inside the picture', () => {
    const r = featureRegion(face(256, 205, 256), 512, 512);
    expect(r.x).toBe(Math.floor(256 - 0.4 * 256));
    expect(r.y).toBe(Math.floor(205 - 0.15 * 256));
    expect(r.y + r.height).toBe(Math.ceil(205 + 0.45 * 256 + 0.07 * 256));
    expect(featureRegion(face(10, 10, 256), 512, 512).x).toBe(0);
  });
});

describe('editing', () => {
  const pts: Point[] = [
    [10, 10],
    [20, 10],
    [100, 100],
  ];

  it('hits the nearest point within the radius', () => {
    expect(hitPoint(pts, [12, 11], 8)).toBe(0);
    expect(hitPoint(pts, [16, 10], 8)).toBe(1);
    expect(hitPoint(pts, [60, 60], 8)).toBe(-1);
    expect(hitPoint(pts, [100, 108], 8)).toBe(2);
    expect(hitPoint(pts, [100, 108.5], 8)).toBe(-1);
  });

  it('keeps dragged points inside the picture', () => {
    expect(clampPoint([-5, 600], 512, 512)).toEqual([0, 511]);
    expect(clampPoint([511.5, 3], 512, 512)).toEqual([511, 3]);
    expect(clampPoint([30, 40], 512, 512)).toEqual([30, 40]);
  });

  it('checks the points before they are sent', () => {
    const good = face(256, 205, 256);
    expect(landmarksProblem(good, 512, 512)).toBeNull();
    expect(landmarksProblem(good.slice(0, 67), 512, 512)).toBe('expected 68 landmarks, got 67');
    const nan = good.map((p, i) => (i === 5 ? ([Number.NaN, 3] as const) : p));
    expect(landmarksProblem(nan, 512, 512)).toBe('landmark 5 is not a number pair');
    const out = good.map((p, i) => (i === 8 ? ([200, 511.5] as const) : p));
    expect(landmarksProblem(out, 512, 512)).toBe('landmark 8 is outside the 512×512 picture');
    const mirrored = good.map((p) => [512 - p[0], p[1]] as const);
    expect(landmarksProblem(mirrored, 512, 512)).toMatch(/eyes are swapped/);
    const flipped = good.map((p) => [p[0], 512 - p[1]] as const);
    expect(landmarksProblem(flipped, 512, 512)).toMatch(/mouth must be below the eyes/);
  });
});

/** The browser's own encoder, for reference. */
const reference = (bytes: Uint8Array) => {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
};

describe('base64', () => {
  it('matches the standard encoding for every tail length and for large inputs', () => {
    for (let n = 0; n < 40; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n * 11) & 255);
      expect(base64(bytes)).toBe(reference(bytes));
    }
    const big = Uint8Array.from({ length: 100_003 }, (_, i) => (i * 7919) & 255);
    expect(base64(big)).toBe(reference(big));
  });
});
