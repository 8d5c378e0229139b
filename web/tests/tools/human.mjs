// Human (@vladmandic/human: BlazeFace + the 468-point MediaPipe face mesh refined by the iris
// model) in headless Chromium, for the eyelid part of the objective video check: face-api's
// 68 landmarks barely move when the eyes close, the face mesh's lid contours do. The library and
// its models come from web/node_modules and are served through page.route on a made-up origin
// (no server, no network). Not a test file itself.
//
// The face is found once, on the photo; the next frames reuse the box (Human's own cache: the
// detector is skipped and the mesh runs in the box the previous mesh gave). A frame where the
// mesh's confidence falls under the detector's minConfidence (0.2) has no face: it is returned
// as lost (null), never as a pass, and the next frame runs the detector again.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openRoutedPage, webDir } from './faceapi.mjs';

export const humanDir = join(webDir, 'node_modules/@vladmandic/human');
const ORIGIN = 'http://human.test';

/** Fails with a clear message when Human is not installed (never skips). */
export function requireHuman() {
  if (!existsSync(join(humanDir, 'dist/human.esm.js')) || !existsSync(join(humanDir, 'models/facemesh.json'))) {
    throw new Error(`missing: ${humanDir} with dist/ and models/ (run npm ci in web/)`);
  }
}

// Face mesh indices of the lid margins (MediaPipe's canonical mesh, Human's EyeUpper0 /
// EyeLower0 contours, which the iris model re-fits). Per eye: the two corners, and three
// upper/lower pairs facing each other across the eye: the middle of the lids and the points
// a quarter of the way in from each corner.
export const EYES = {
  // The subject's right eye (left in the image): outer corner 33, inner corner 133.
  right: { corners: [33, 133], pairs: [[160, 144], [159, 145], [158, 153]] },
  // The subject's left eye: outer corner 263, inner corner 362.
  left: { corners: [263, 362], pairs: [[387, 373], [386, 374], [385, 380]] },
};

// The lid margin contours, corner to corner (Human's EyeUpper0 + EyeLower0), for painting over.
const OUTLINE = {
  right: [33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7],
  left: [263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249],
};

/**
 * The control's paint: each eye's lid-margin outline from the mesh of the photo, grown by `grow`
 * around its centre, with a sample rectangle of the skin half an eye width below it to fill it
 * with. Grown 2x, the lashes and the dark rim under the lower lid go too; at 1.6x that rim stays
 * below the paint on sample6 and the mesh finds a slit in it (0.44 of open instead of 0.31).
 */
export function meshEyePaint(mesh, grow = 2) {
  return ['right', 'left'].map((eye) => {
    const pts = OUTLINE[eye].map((i) => mesh[i]);
    const c = [pts.reduce((s, p) => s + p[0], 0) / pts.length, pts.reduce((s, p) => s + p[1], 0) / pts.length];
    const xs = pts.map((p) => p[0]);
    const width = Math.max(...xs) - Math.min(...xs);
    const bottom = Math.max(...pts.map((p) => p[1]));
    return {
      polygon: pts.map(([x, y]) => [c[0] + (x - c[0]) * grow, c[1] + (y - c[1]) * grow]),
      sample: [Math.min(...xs), bottom + width * 0.5, width, width * 0.25],
    };
  });
}

const dist = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1]);

/** Eye aspect ratio of one eye of a face mesh: mean lid gap over the corner-to-corner width. */
export function meshEyeAspect(mesh, eye) {
  const { corners, pairs } = EYES[eye];
  const gap = pairs.reduce((s, [u, l]) => s + dist(mesh[u], mesh[l]), 0) / pairs.length;
  return gap / dist(mesh[corners[0]], mesh[corners[1]]);
}

/** Mean eye aspect ratio of both eyes. */
export function meshEar(mesh) {
  return (meshEyeAspect(mesh, 'right') + meshEyeAspect(mesh, 'left')) / 2;
}

/** A Chromium page (in a browser from launchChromium) with Human's face mesh and iris loaded. */
export class HumanPage {
  context = null;
  page = null;
  log = [];
  files = new Set();

  async start(browser, { backend = 'cpu' } = {}) {
    requireHuman();
    this.context = await browser.newContext();
    this.page = await openRoutedPage(this.context, ORIGIN, 'human', (path) => {
      if (path.startsWith('/lib/')) return join(humanDir, 'dist', path.slice(5));
      if (path.startsWith('/models/')) return join(humanDir, 'models', path.slice(8));
      if (path.startsWith('/files/') && this.files.has(path.slice(7))) return path.slice(7);
      return null;
    }, this.log);
    const info = await this.page.evaluate(async (backend) => {
      const { Human } = await import('/lib/human.esm.js');
      const off = { enabled: false };
      const human = new Human({
        backend,
        modelBasePath: '/models/',
        debug: false,
        warmup: 'none',
        // Any change between frames keeps the cached face box (the head does not move).
        cacheSensitivity: 1e9,
        filter: { enabled: false },
        gesture: off,
        body: off,
        hand: off,
        object: off,
        segmentation: off,
        face: {
          enabled: true,
          detector: { rotation: false, maxDetected: 1, skipFrames: 1e9, skipTime: 1e12, minConfidence: 0.2, return: false },
          mesh: { enabled: true },
          iris: { enabled: true },
          attention: off,
          emotion: off,
          description: off,
          antispoof: off,
          liveness: off,
        },
      });
      await human.load();
      await human.tf.ready();
      window.human = human;
      // `paint`: polygons to fill before measuring, each with the colour of a sample rectangle
      // of the image (the control: eyes painted over with the skin below them).
      window.humanMesh = async (url, paint) => {
        const img = new Image();
        img.src = url;
        await img.decode();
        let input = img;
        if (paint?.length) {
          input = document.createElement('canvas');
          input.width = img.naturalWidth;
          input.height = img.naturalHeight;
          const ctx = input.getContext('2d');
          ctx.drawImage(img, 0, 0);
          const colours = paint.map(({ sample: [x, y, w, h] }) => {
            const d = ctx.getImageData(Math.round(x), Math.round(y), Math.round(w), Math.round(h)).data;
            const c = [0, 0, 0];
            for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) c[k] += d[i + k];
            return c.map((v) => Math.round(v / (d.length / 4)));
          });
          paint.forEach(({ polygon }, i) => {
            ctx.fillStyle = `rgb(${colours[i].join(',')})`;
            ctx.beginPath();
            polygon.forEach(([x, y], j) => (j ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
            ctx.closePath();
            ctx.fill();
          });
        }
        const res = await human.detect(input);
        const f = res.face[0];
        if (!f) return null;
        return { faceScore: f.faceScore, boxScore: f.boxScore, box: f.box, mesh: f.mesh.map((p) => [p[0], p[1]]) };
      };
      return { version: human.version, backend: human.tf.getBackend() };
    }, backend);
    this.version = info.version;
    this.backend = info.backend;
    return info;
  }

  /** The face mesh (≥ 468 [x, y] points) of a local image, or null when the face is lost. */
  /** `paint`: [{ polygon: [[x, y]...], sample: [x, y, w, h] }] filled before measuring. */
  async mesh(file, paint = null) {
    this.files.add(file);
    try {
      return await this.page.evaluate(([url, p]) => window.humanMesh(url, p), [`/files/${encodeURIComponent(file)}`, paint]).catch((e) => {
        throw new Error(`Human on ${file}: ${e.message}\n${this.log.slice(-20).join('\n')}`);
      });
    } finally {
      this.files.delete(file);
    }
  }

  async stop() {
    await this.context?.close().catch(() => {});
  }
}
