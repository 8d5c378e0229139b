// The face detector's weights for "Use my photo" (src/facedetect.ts), copied from the
// @vladmandic/face-api package into dist/models/ so talkstream serves them itself (no CDN, no
// binaries in git): the SSD MobileNet v1 detector and the 68-point landmark net, nothing else.
// `npm run dev` serves the same files from node_modules. (Plain JS: the page's tsconfig has no
// Node types.)

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const FACE_MODELS = [
  'ssd_mobilenetv1_model-weights_manifest.json',
  'ssd_mobilenetv1_model.bin',
  'face_landmark_68_model-weights_manifest.json',
  'face_landmark_68_model.bin',
];

/** @returns {import('vite').Plugin} */
export function faceModels() {
  const dir = join(dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')), 'model');
  return {
    name: 'talkstream-face-models',
    generateBundle() {
      for (const name of FACE_MODELS) {
        this.emitFile({ type: 'asset', fileName: `models/${name}`, source: readFileSync(join(dir, name)) });
      }
    },
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const name = req.url?.match(/^\/models\/([^/?]+)/)?.[1];
        if (!name || !FACE_MODELS.includes(name)) return next();
        res.setHeader('content-type', name.endsWith('.json') ? 'application/json' : 'application/octet-stream');
        res.end(readFileSync(join(dir, name)));
      });
    },
  };
}
