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
import { FaceApiPage, descriptorDistance, eyeAspect, mouthOpening, requireTools, webDir } from './faceapi.mjs';

export const bin = process.env.TALKSTREAM_BIN
  ? resolve(process.env.TALKSTREAM_BIN)
  : resolve(webDir, '../target/debug/talkstream');
export const photosDir = resolve(webDir, '../crates/avatar/tests/fixtures/photos');
export const DEFAULT_PHOTO = join(photosDir, 'sample6_x1065_y230.jpg');
export const DEFAULT_TEXT =
  'Hello there. My name is Anna, and I read the news for you every morning. ' +
  'Today the weather is warm and sunny, with a light breeze from the sea. Have a lovely day.';

/** Fails (throws) naming whatever is missing: the binary, ffmpeg, face-api, Chromium. */
export function requireAll() {
  if (!existsSync(bin)) throw new Error(`server binary ${bin} not found: build it (cargo build) or set TALKSTREAM_BIN`);
  try {
    execFileSync('ffmpeg', ['-version'], { stdio: 'ignore' });
  } catch (e) {
    throw new Error(`ffmpeg is needed on PATH to decode the video: ${e.message}`);
  }
  requireTools();
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

/**
 * Render `text` with `photo`, measure every frame, return the per-frame series and the figures.
 * `log` receives progress lines.
 */
export async function measurePhotoVideo({ photo = DEFAULT_PHOTO, text = DEFAULT_TEXT, log = () => {} } = {}) {
  requireAll();
  const dir = mkdtempSync(join(tmpdir(), 'talkstream-photo-objective-'));
  const fa = new FaceApiPage();
  try {
    const mp4 = join(dir, 'out.mp4');
    const poseLog = join(dir, 'pose.jsonl');
    const started = Date.now();
    const said = await run(bin, ['render', '--text', text, '-o', mp4, '--pose-log', poseLog], {
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

    const info = await fa.start();
    log(`face-api ${info.version} on ${info.backend}`);
    const found = await fa.detectOne(photo, 0.5);
    if (!found) throw new Error(`face-api finds no face in ${photo}`);
    const box = { ...found.box, descriptor: true };
    const still = await fa.measureInBox(photo, box);
    // The measurement's own noise on the still photo: the box moved by a pixel or two.
    const jitter = [];
    for (const [dx, dy] of [[-2, 0], [2, 0], [0, -2], [0, 2], [1, 1], [-1, -1]]) {
      const m = await fa.measureInBox(photo, { ...found.box, x: found.box.x + dx, y: found.box.y + dy });
      jitter.push(mouthOpening(m.points));
    }
    const restOpening = mouthOpening(still.points);
    const restTolerance = Math.max(0.01, 2 * Math.max(...jitter.map((v) => Math.abs(v - restOpening))));

    const series = [];
    const t0 = Date.now();
    for (let i = 0; i < frames.length; i++) {
      const m = await fa.measureInBox(join(dir, frames[i]), box);
      series.push({
        frame: i,
        open: poses[i].open,
        blink: poses[i].blink,
        opening: mouthOpening(m.points),
        ear: (eyeAspect(m.points, 36) + eyeAspect(m.points, 42)) / 2,
        distance: descriptorDistance(m.descriptor, still.descriptor),
      });
      if (i % 50 === 49) log(`measured ${i + 1}/${frames.length} frames (${((Date.now() - t0) / (i + 1)).toFixed(0)} ms/frame)`);
    }
    return { photo, frames: series.length, restOpening, restTolerance, series, ...figures(series, restOpening, restTolerance) };
  } finally {
    await fa.stop();
    rmSync(dir, { recursive: true, force: true });
  }
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
  // Eyes: open = median EAR where the eyes are commanded open; the ratio in commanded blinks.
  const openEar = median(series.filter((s) => s.blink === 0).map((s) => s.ear));
  const blinkRatios = series.filter((s) => s.blink >= 0.9).map((s) => ({ frame: s.frame, ratio: s.ear / openEar }));
  const maxDistance = Math.max(...series.map((s) => s.distance));
  return { r: best.r, lag: best.lag, closedAt, tailFrames, restFrames, openEar, blinkRatios, maxDistance };
}

/** One line per figure, for logs and docs. */
export function summary(m) {
  const ratios = m.blinkRatios.map((b) => b.ratio);
  return [
    `photo ${m.photo.split('/').pop()}, ${m.frames} frames`,
    `mouth: Pearson r ${m.r.toFixed(3)} at lag ${m.lag} frame(s)`,
    `rest: commanded closed from frame ${m.closedAt} (${m.tailFrames} frames of tail), measured back within ${m.restTolerance.toFixed(3)} of the photo's ${m.restOpening.toFixed(3)} after ${m.restFrames ?? 'never'} frames`,
    `blinks: ${ratios.length} frames with blink >= 0.9, EAR / open EAR (${m.openEar.toFixed(3)}) min ${Math.min(...ratios).toFixed(2)} max ${Math.max(...ratios).toFixed(2)}`,
    `identity: max descriptor distance to the photo ${m.maxDistance.toFixed(3)}`,
  ].join('\n');
}
