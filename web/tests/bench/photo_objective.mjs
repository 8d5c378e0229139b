// Figures of the objective photo-avatar check for docs/benchmarks.md: renders speech with a
// fixture photo, measures the decoded frames with face-api (mouth, rest, identity) and Human's
// face mesh (eyelids, with the painted-eyes control) and prints r / lag, frames back to rest,
// per-blink-frame EAR ratios and the largest descriptor distance (no assertions; the test is
// tests/e2e/photo_objective.test.mjs).
//
// Run from web/: TALKSTREAM_BIN=<target>/debug/talkstream node tests/bench/photo_objective.mjs [photo.jpg]
// (--json prints the per-frame series too)

import { DEFAULT_PHOTO, measurePhotoVideo, summary } from '../tools/photo_objective.mjs';
import { resolve } from 'node:path';

const args = process.argv.slice(2);
const photo = args.find((a) => !a.startsWith('--'));
const started = Date.now();
const m = await measurePhotoVideo({ photo: photo ? resolve(photo) : DEFAULT_PHOTO, log: (l) => console.error(l) });
console.log(summary(m));
console.log(`took ${((Date.now() - started) / 1000).toFixed(0)} s`);
if (args.includes('--json')) console.log(JSON.stringify(m.series));
