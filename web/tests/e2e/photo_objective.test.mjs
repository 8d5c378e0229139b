// The objective check of a photo avatar (issue 14): a fixture photo speaks ~9 s through
// `talkstream render --pose-log`, every decoded frame is measured with face-api in Chromium
// (tests/tools/photo_objective.mjs), and the video must follow what the renderer commanded:
// the measured mouth opening correlates with the commanded jaw (Pearson r >= 0.85 at a lag
// within ±1 frame), the mouth is back at the photo's rest within 3 frames after the speech,
// eyes close to < 40% of their open aspect ratio in commanded blinks, and every frame stays the
// same person (descriptor distance < 0.4; face-api's same-person threshold is 0.6).
// Needs the talkstream binary (TALKSTREAM_BIN), ffmpeg, Chromium and web/node_modules; any
// missing one fails the test. Takes a few minutes (face-api runs on the CPU backend).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { measurePhotoVideo, summary } from '../tools/photo_objective.mjs';

test('a photo avatar’s video follows the commanded mouth, blinks and keeps the identity', { timeout: 30 * 60_000 }, async () => {
  const m = await measurePhotoVideo({ log: (l) => console.log(l) });
  console.log(summary(m));
  const blinks = m.blinkRatios;
  assert.ok(blinks.length > 0, 'the pose log has no frame with blink >= 0.9: render a longer text');
  assert.ok(m.tailFrames > 3, `only ${m.tailFrames} frames after the speech: the rest check needs more`);
  assert.ok(m.r >= 0.85, `mouth opening vs commanded open: Pearson r ${m.r.toFixed(3)} (best lag ${m.lag}) < 0.85`);
  assert.ok(m.restFrames !== null && m.restFrames <= 3,
    `the mouth is back at rest ${m.restFrames ?? 'never'} frames after the commanded close (at most 3)`);
  const open = blinks.filter((b) => b.ratio >= 0.4);
  assert.equal(open.length, 0,
    `eyes not closed in commanded blinks (EAR / open EAR >= 0.4): ${open.map((b) => `frame ${b.frame}: ${b.ratio.toFixed(2)}`).join(', ')}`);
  assert.ok(m.maxDistance < 0.4, `a frame drifts from the photo's identity: descriptor distance ${m.maxDistance.toFixed(3)} >= 0.4`);
});
