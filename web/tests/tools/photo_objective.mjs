// The objective check of a photo avatar's video (issue 14): `talkstream render` speaks a text
// with a photo as the avatar and logs what it commanded per frame (--pose-log); every frame of
// the MP4 is decoded with ffmpeg and face-api measures it in Chromium: mouth opening (mean
// inner-lip gap / interocular distance), eye aspect ratio, face descriptor distance to the photo.
// Used by tests/e2e/photo_objective.test.mjs (asserts) and tests/bench/photo_objective.mjs
// (prints the figures for docs/benchmarks.md). Not a test file itself.
//
// The face is detected once, on the photo: the portrait renderer does not move the head, so
// the landmark and descriptor models run on every frame inside that box (the detector is by far
// the slowest model on the CPU backend).

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FaceApiPage, descriptorDistance, launchChromium, mouthOpening, requireTools, webDir } from './faceapi.mjs';
import { HumanPage, meshEar, meshEyeAspect, meshEyePaint, requireHuman } from './human.mjs';

export const bin = process.env.TALKSTREAM_BIN
  ? resolve(process.env.TALKSTREAM_BIN)
  : resolve(webDir, '../target/debug/talkstream');
export const photosDir = resolve(webDir, '../crates/avatar/tests/fixtures/photos');
export const DEFAULT_PHOTO = join(photosDir, 'sample6_x1065_y230.jpg');
// ~4.2 s of speech, then silence up to 5.6 s (140 frames): with the renderer's fixed seed the
// eyes blink at ~2.2 s (frame 55) and ~5.3 s (frames 132-133), and 36 frames of tail show the
// mouth at rest.
export const DEFAULT_TEXT = 'Hello there. My name is Anna, and I read the news for you every morning.';
export const DEFAULT_DURATION_MS = 5600;

/** Fails (throws) naming whatever is missing: the binary, ffmpeg, face-api, Chromium. */
export function requireAll() {
  if (!existsSync(bin)) throw new Error(`server binary ${bin} not found: build it (cargo build) or set TALKSTREAM_BIN`);
  try {
    execFileSync('ffmpeg', ['-version'], { stdio: 'ignore' });
  } catch (e) {
    throw new Error(`ffmpeg is needed on PATH to decode the video: ${e.message}`);
  }
  requireTools();
  requireHuman();
}

function run(cmd, args, env) {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (e) => fail(new Error(`${cmd}: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? ok(out) : fail(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out.slice(-3000)}`))));
  });
}

/** Pearson correlation of two equally long arrays. */
export function pearson(a, b) {
  const n = a.length;
  const ma = a.reduce((s, v) => s + v, 0) / n;
  const mb = b.reduce((s, v) => s + v, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

const median = (v) => {
  const s = [...v].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Indices of the frames whose face descriptor is computed: every `every`-th frame and the last,
 * plus the extreme ones (the 3 widest commanded mouths, rounds and spreads, every blink >= 0.5):
 * the descriptor is the slowest model, and identity drift shows first where the warp is largest. */
export function descriptorFrames(poses, every) {
  const pick = new Set();
  for (let i = 0; i < poses.length; i += every) pick.add(i);
  pick.add(poses.length - 1);
  for (const key of ['open', 'round', 'wide']) {
    const top = poses.map((p, i) => [p[key] ?? 0, i]).sort((a, b) => b[0] - a[0]).slice(0, 3);
    for (const [, i] of top) pick.add(i);
  }
  poses.forEach((p, i) => {
    if (p.blink >= 0.5) pick.add(i);
  });
  return [...pick].sort((a, b) => a - b);
}

/** The frames the eye check measures: every commanded blink >= 0.9 and `count` open-eye
 * frames (blink 0) spread evenly over the video. */
export function eyeFrames(poses, count) {
  const blink = [];
  const open = [];
  poses.forEach((p, i) => (p.blink >= 0.9 ? blink : p.blink === 0 ? open : []).push(i));
  const spread = [];
  for (let k = 0; k < count && open.length; k++) spread.push(open[Math.round(((k + 0.5) * open.length) / count - 0.5)]);
  return { blink, open: [...new Set(spread)] };
}

/**
 * Render `text` with `photo` (`durationMs` of video), measure the frames, return the per-frame
 * series and the figures. face-api (mouth, rest, identity) and Human (eyelids) run side by side
 * in two pages of one Chromium. `log` receives progress lines.
 */
export async function measurePhotoVideo({
  photo = DEFAULT_PHOTO,
  text = DEFAULT_TEXT,
  durationMs = DEFAULT_DURATION_MS,
  descriptorEvery = 15,
  openEyeFrames = 8,
  log = () => {},
} = {}) {
  requireAll();
  const dir = mkdtempSync(join(tmpdir(), 'talkstream-photo-objective-'));
  let browser = null;
  const fa = new FaceApiPage();
  const hu = new HumanPage();
  try {
    const mp4 = join(dir, 'out.mp4');
    const poseLog = join(dir, 'pose.jsonl');
    const started = Date.now();
    const args = ['render', '--text', text, '-o', mp4, '--pose-log', poseLog];
    if (durationMs) args.push('--duration_ms', String(durationMs));
    const said = await run(bin, args, {
      AVATAR_REF_IMAGE: photo,
      LOCAL_TTS_ENGINE: process.env.LOCAL_TTS_ENGINE || 'espeak',
      LOG_LEVEL: 'warn',
    });
    log(`render: ${said.trim().split('\n').pop()} (${Date.now() - started} ms)`);
    const poses = readFileSync(poseLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', mp4, '-vsync', '0', '-start_number', '0', join(dir, 'f%05d.png')]);
    const frames = readdirSync(dir).filter((f) => /^f\d+\.png$/.test(f)).sort();
    if (frames.length !== poses.length) {
      throw new Error(`the video has ${frames.length} frames, the pose log ${poses.length} lines`);
    }

    browser = await launchChromium();
    const [info, hinfo] = await Promise.all([fa.start({ browser }), hu.start(browser)]);
    log(`face-api ${info.version} on ${info.backend}, Human ${hinfo.version} on ${hinfo.backend}`);
    const found = await fa.detectOne(photo, 0.5);
    if (!found) throw new Error(`face-api finds no face in ${photo}`);
    const box = { ...found.box, descriptor: true };
    const still = await fa.measureInBox(photo, box);

    const withDescriptor = new Set(descriptorFrames(poses, descriptorEvery));
    const mouth = async () => {
      // The measurement's own noise on the still photo: the box moved by a pixel or two.
      const jitter = [];
      for (const [dx, dy] of [[-2, 0], [2, 0], [0, -2], [0, 2], [1, 1], [-1, -1]]) {
        const m = await fa.measureInBox(photo, { ...found.box, x: found.box.x + dx, y: found.box.y + dy });
        jitter.push(mouthOpening(m.points));
      }
      const series = [];
      const t0 = Date.now();
      for (let i = 0; i < frames.length; i++) {
        const m = await fa.measureInBox(join(dir, frames[i]), { ...box, descriptor: withDescriptor.has(i) });
        series.push({
          frame: i,
          open: poses[i].open,
          blink: poses[i].blink,
          opening: mouthOpening(m.points),
          distance: m.descriptor ? descriptorDistance(m.descriptor, still.descriptor) : null,
        });
        if (i % 50 === 49) log(`face-api: ${i + 1}/${frames.length} frames (${((Date.now() - t0) / (i + 1)).toFixed(0)} ms/frame)`);
      }
      return { jitter, series };
    };
    const eyes = async () => {
      const t0 = Date.now();
      let photoMesh = null;
      const ear = async (file, paint) => {
        const m = await hu.mesh(file, paint);
        if (!m) return null;
        if (!paint && file === photo) photoMesh = m.mesh;
        return { ear: meshEar(m.mesh), right: meshEyeAspect(m.mesh, 'right'), left: meshEyeAspect(m.mesh, 'left'), faceScore: m.faceScore };
      };
      // The control first (it also finds the face on the photo, whose box the frames reuse): the
      // eyes are painted over where the mesh found them on the photo.
      const control = { photo: await ear(photo) };
      if (!photoMesh) throw new Error(`Human finds no face in ${photo}`);
      control.painted = await ear(photo, meshEyePaint(photoMesh));
      control.photoAgain = await ear(photo);
      const { blink, open } = eyeFrames(poses, openEyeFrames);
      const measured = new Map();
      for (const i of [...blink, ...open].sort((a, b) => a - b)) measured.set(i, await ear(join(dir, frames[i])));
      log(`Human: control + ${measured.size} frames in ${Date.now() - t0} ms`);
      return { control, blink, open, measured };
    };
    const [m, e] = await Promise.all([mouth(), eyes()]);
    const restOpening = mouthOpening(still.points);
    const restTolerance = Math.max(0.01, 2 * Math.max(...m.jitter.map((v) => Math.abs(v - restOpening))));
    return {
      photo,
      frames: m.series.length,
      descriptorFrames: withDescriptor.size,
      restOpening,
      restTolerance,
      series: m.series,
      ...figures(m.series, restOpening, restTolerance),
      ...eyeFigures(e, poses),
    };
  } finally {
    await hu.stop();
    await fa.stop();
    await browser?.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Eye figures from Human's measures: open EAR = median over the open-eye frames; each
 * commanded blink frame's EAR over it (null ratio: the face was lost there); the control. */
export function eyeFigures({ control, blink, open, measured }, poses) {
  const openEars = open.map((i) => measured.get(i)).filter(Boolean).map((v) => v.ear);
  const lostOpen = open.filter((i) => !measured.get(i));
  const openEar = openEars.length ? median(openEars) : NaN;
  const openFound = open.map((i) => measured.get(i)).filter(Boolean);
  const openRight = openFound.length ? median(openFound.map((v) => v.right)) : NaN;
  const openLeft = openFound.length ? median(openFound.map((v) => v.left)) : NaN;
  const blinkRatios = blink.map((i) => {
    const v = measured.get(i);
    return {
      frame: i,
      blink: poses[i].blink,
      ratio: v ? v.ear / openEar : null,
      // Each eye against its own open median (the subject's right eye is the image's left).
      right: v ? v.right / openRight : null,
      left: v ? v.left / openLeft : null,
      faceScore: v?.faceScore ?? 0,
    };
  });
  const ratio = (v) => (v ? v.ear / openEar : null);
  const photoEar = control.photo?.ear;
  return {
    openEar,
    openEyeFrames: open.length,
    lostOpen,
    blinkRatios,
    control: {
      photoEar: photoEar ?? null,
      photoEyes: control.photo ? [control.photo.right, control.photo.left] : null,
      paintedEyes: control.painted ? [control.painted.right, control.painted.left] : null,
      photoAgainEar: control.photoAgain?.ear ?? null,
      paintedEar: control.painted?.ear ?? null,
      // The photo against the video's open eyes (~1 when the renderer keeps the eyes as drawn).
      photoOverOpen: ratio(control.photo),
      // The painted-over eyes against the photo's (the measure must see closed eyes: < 0.4).
      paintedOverPhoto: control.painted && photoEar ? control.painted.ear / photoEar : null,
    },
  };
}

/** The figures the issue asks for, from the per-frame series. */
export function figures(series, restOpening, restTolerance) {
  const opening = series.map((s) => s.opening);
  const open = series.map((s) => s.open);
  // Best lag within ±1 frame: measured[i] against commanded[i - lag].
  let best = { r: -Infinity, lag: 0 };
  for (const lag of [-1, 0, 1]) {
    const a = [];
    const b = [];
    for (let i = 0; i < series.length; i++) {
      const j = i - lag;
      if (j >= 0 && j < series.length) {
        a.push(opening[i]);
        b.push(open[j]);
      }
    }
    const r = pearson(a, b);
    if (r > best.r) best = { r, lag };
  }
  // After the speech: the first frame from which the commanded opening stays 0, and how many
  // frames later the measured opening is (and stays) within the tolerance of the photo's.
  let lastSpoken = -1;
  open.forEach((v, i) => {
    if (v > 1e-3) lastSpoken = i;
  });
  const closedAt = lastSpoken + 1;
  let restFrames = null;
  if (closedAt < series.length) {
    let settled = series.length;
    for (let i = series.length - 1; i >= closedAt; i--) {
      if (Math.abs(opening[i] - restOpening) > restTolerance) break;
      settled = i;
    }
    restFrames = settled < series.length ? settled - closedAt : null;
  }
  const tailFrames = series.length - closedAt;
  const maxDistance = Math.max(...series.filter((s) => s.distance !== null).map((s) => s.distance));
  return { r: best.r, lag: best.lag, closedAt, tailFrames, restFrames, maxDistance };
}

/** One line per figure, for logs and docs. */
export function summary(m) {
  const f = (v) => (v === null || v === undefined ? 'lost' : v.toFixed(3));
  const c = m.control;
  return [
    `photo ${m.photo.split('/').pop()}, ${m.frames} frames`,
    `mouth: Pearson r ${m.r.toFixed(3)} at lag ${m.lag} frame(s)`,
    `rest: commanded closed from frame ${m.closedAt} (${m.tailFrames} frames of tail), measured back within ${m.restTolerance.toFixed(3)} of the photo's ${m.restOpening.toFixed(3)} after ${m.restFrames ?? 'never'} frames`,
    `blinks (Human face mesh): open EAR ${f(m.openEar)} (median of ${m.openEyeFrames} open-eye frames${m.lostOpen.length ? `, face lost in ${m.lostOpen.join(', ')}` : ''}); ` +
      `EAR / open EAR in frames with blink >= 0.9: ${m.blinkRatios.map((b) => `frame ${b.frame} (blink ${b.blink.toFixed(2)}) ${f(b.ratio)} (right eye ${f(b.right)}, left ${f(b.left)}, face score ${b.faceScore})`).join(', ')}`,
    `eye control: photo EAR ${f(c.photoEar)} (again after the painted one ${f(c.photoAgainEar)}), photo / open ${f(c.photoOverOpen)}; ` +
      `eyes painted over EAR ${f(c.paintedEar)}, painted / photo ${f(c.paintedOverPhoto)} ` +
      `(right / left eye: photo ${c.photoEyes?.map(f).join(' / ') ?? 'lost'}, painted ${c.paintedEyes?.map(f).join(' / ') ?? 'lost'})`,
    `identity: max descriptor distance to the photo ${m.maxDistance.toFixed(3)} (${m.descriptorFrames} of ${m.frames} frames)`,
  ].join('\n');
}
