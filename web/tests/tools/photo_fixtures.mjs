// Makes the real-photo fixtures of the avatar crate's tests (crates/avatar/tests/fixtures/photos):
// face-api finds every face in its own demo photos (node_modules/@vladmandic/face-api/demo,
// MIT), the clearest frontal faces are cropped square (the face about half the width), scaled to
// 512x512 JPEG with ffmpeg, and their 68 landmarks detected again on the crop and written next to
// each as <name>.jpg.landmarks.json ({"points": [[x, y], ...68]}, iBUG 300-W order).
//
// Run from web/: node tests/tools/photo_fixtures.mjs [--count 4] [--out DIR]
// Needs ffmpeg on PATH and Chromium (CHROMIUM_PATH, default /usr/bin/chromium).

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FaceApiPage, faceApiDir, interocular, webDir } from './faceapi.mjs';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '4' },
    out: { type: 'string', default: resolve(webDir, '../crates/avatar/tests/fixtures/photos') },
  },
});
const COUNT = Number(values.count);
const OUT = resolve(values.out);
const SIZE = 512;
/** JPEG quality scale of ffmpeg's mjpeg encoder (2 best .. 31 worst); raised until small enough. */
const MAX_BYTES = 60_000;

const dist = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1]);

/** How frontal and upright a face is: 0 = perfectly, larger = turned or tilted. */
function offFrontal(p) {
  // Yaw: the nose tip's distances to the two jaw ends should match.
  const l = dist(p[30], p[0]);
  const r = dist(p[30], p[16]);
  const yaw = Math.abs(l - r) / (l + r);
  // Roll: the eye line's slope.
  const eyeL = p.slice(36, 42).reduce((s, q) => [s[0] + q[0] / 6, s[1] + q[1] / 6], [0, 0]);
  const eyeR = p.slice(42, 48).reduce((s, q) => [s[0] + q[0] / 6, s[1] + q[1] / 6], [0, 0]);
  const roll = Math.abs(Math.atan2(eyeR[1] - eyeL[1], eyeR[0] - eyeL[0]));
  return yaw + roll;
}

/** Lips closed at rest (the mesh warp animates from a closed mouth). */
function mouthClosed(p) {
  const gap = (dist(p[61], p[67]) + dist(p[62], p[66]) + dist(p[63], p[65])) / 3;
  return gap / interocular(p) < 0.08;
}

function ffmpeg(args) {
  try {
    execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error(`ffmpeg ${args.join(' ')} failed: ${e.stderr?.toString() || e.message}`);
  }
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  const fa = new FaceApiPage();
  await fa.start();
  try {
    const candidates = [];
    for (let i = 1; i <= 6; i++) {
      const file = join(faceApiDir, 'demo', `sample${i}.jpg`);
      const found = await fa.detectAll(file, 0.8);
      for (const face of found.faces) {
        const eyes = interocular(face.points);
        candidates.push({ file, sample: i, image: found, face, eyes, off: offFrontal(face.points), closed: mouthClosed(face.points) });
      }
      console.log(`sample${i}.jpg: ${found.faces.length} faces`);
    }
    // Clear faces: confident, big enough for 512 px, frontal, lips closed; the most frontal
    // first, at most two per photo.
    const good = candidates
      .filter((c) => c.face.score >= 0.9 && c.eyes >= 50 && c.closed)
      .sort((a, b) => a.off - b.off);
    const picked = [];
    for (const c of good) {
      if (picked.length >= COUNT) break;
      if (picked.filter((p) => p.sample === c.sample).length >= 2) continue;
      picked.push(c);
    }
    if (picked.length < COUNT) throw new Error(`only ${picked.length} clear frontal faces found`);

    const readme = [];
    for (const c of picked) {
      const p = c.face.points;
      // The face's width: the jaw's ends; the crop is twice that, centred a little above the
      // landmarks' centre (the landmarks stop at the brows, the head goes on).
      const faceW = dist(p[0], p[16]);
      const side = Math.round(Math.min(2 * faceW, c.image.width, c.image.height));
      const cx = p.reduce((s, q) => s + q[0], 0) / p.length;
      const cy = p.reduce((s, q) => s + q[1], 0) / p.length - 0.1 * side;
      const x = Math.round(Math.min(Math.max(cx - side / 2, 0), c.image.width - side));
      const y = Math.round(Math.min(Math.max(cy - side / 2, 0), c.image.height - side));
      const name = `sample${c.sample}_x${x}_y${y}`;
      const jpg = join(OUT, `${name}.jpg`);
      let q = 3;
      for (;;) {
        ffmpeg(['-i', c.file, '-vf', `crop=${side}:${side}:${x}:${y},scale=${SIZE}:${SIZE}:flags=lanczos`, '-map_metadata', '-1', '-q:v', String(q), '-frames:v', '1', jpg]);
        if (statSync(jpg).size <= MAX_BYTES || q >= 12) break;
        q += 1;
      }
      const again = await fa.detectOne(jpg, 0.5);
      if (!again) throw new Error(`no face found again in ${jpg}`);
      const points = again.points.map(([px, py]) => [Math.round(px * 100) / 100, Math.round(py * 100) / 100]);
      writeFileSync(`${jpg}.landmarks.json`, `${JSON.stringify({ points })}\n`);
      const kb = (statSync(jpg).size / 1024).toFixed(1);
      console.log(`${name}.jpg: ${kb} KB, score ${again.score.toFixed(3)}, eyes ${interocular(again.points).toFixed(1)} px, off-frontal ${c.off.toFixed(3)}`);
      readme.push(`| ${name}.jpg | demo/sample${c.sample}.jpg | ${side}x${side} at (${x}, ${y}) | ${again.score.toFixed(3)} |`);
    }
    const license = readFileSync(join(faceApiDir, 'LICENSE'), 'utf8');
    const copyright = license.split('\n').find((l) => l.startsWith('Copyright')) || 'Copyright (c) Vladimir Mandic';
    const pkg = JSON.parse(readFileSync(join(faceApiDir, 'package.json'), 'utf8'));
    writeFileSync(
      join(OUT, 'README.md'),
      `# Real photo fixtures

Faces cropped from the demo photos of the npm package \`${pkg.name}\` ${pkg.version}
(node_modules/${pkg.name}/demo/sampleN.jpg), licence **${pkg.license}**, ${copyright}.
The package's licence text applies to these derived images too:

\`\`\`
${license.trim()}
\`\`\`

Made by \`web/tests/tools/photo_fixtures.mjs\` (run from web/): face-api (ssd_mobilenetv1 +
face_landmark_68) finds the faces, the most frontal ones with closed lips are cropped square
(the face about half the width), scaled to ${SIZE}x${SIZE} with ffmpeg (metadata dropped), and
the 68 landmarks are detected again on the crop: \`<name>.jpg.landmarks.json\` is
\`{"points": [[x, y], ...68]}\` in the iBUG 300-W order, in pixels of the ${SIZE}x${SIZE} image.

| file | source | crop in the source | detection score on the crop |
|---|---|---|---|
${readme.join('\n')}
`,
    );
  } finally {
    await fa.stop();
  }
}

await main();
