// face-api (@vladmandic/face-api, 68 landmarks + face descriptor) running in headless Chromium,
// for the photo fixtures tool and the objective video check. The library and its model weights
// come from web/node_modules and are served to the page through page.route on a made-up origin
// (no server, no network). Not a test file itself.
//
// Env: CHROMIUM_PATH (default /usr/bin/chromium), FACEAPI_BACKEND (default cpu: exact and the
// same on every machine; webgl is faster where Chromium has a GL).

import { existsSync, readFileSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const webDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const faceApiDir = join(webDir, 'node_modules/@vladmandic/face-api');
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ORIGIN = 'http://faceapi.test';

const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const TYPES = { '.js': 'text/javascript', '.json': 'application/json', '.bin': 'application/octet-stream', '.jpg': 'image/jpeg', '.png': 'image/png', '.html': 'text/html' };

/**
 * A new page in `context` on the made-up `origin`, whose requests are answered from local files
 * only: `/` is an empty page titled `title`, any other path goes to `resolve(path)` (a local file
 * path, or null for 404). The page's console and errors go to `log`.
 */
export async function openRoutedPage(context, origin, title, resolve, log) {
  const page = await context.newPage();
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  await page.route(`${origin}/**`, async (route) => {
    const path = decodeURIComponent(new URL(route.request().url()).pathname);
    if (path === '/') {
      return route.fulfill({ status: 200, contentType: 'text/html', body: `<!doctype html><title>${title}</title>` });
    }
    const file = resolve(path);
    if (!file || file.includes('..') || !existsSync(file)) return route.fulfill({ status: 404, body: 'not found' });
    return route.fulfill({ status: 200, contentType: TYPES[extname(file)] || 'application/octet-stream', body: readFileSync(file) });
  });
  await page.goto(`${origin}/`);
  return page;
}

/** Fails with a clear message when a tool the check needs is missing (never skips). */
export function requireTools() {
  const missing = [];
  if (!existsSync(join(faceApiDir, 'dist/face-api.esm.js'))) missing.push(`${faceApiDir} (run npm ci in web/)`);
  if (!existsSync(chromiumPath)) missing.push(`Chromium at ${chromiumPath} (set CHROMIUM_PATH)`);
  if (missing.length) throw new Error(`missing: ${missing.join('; ')}`);
}

/**
 * A Chromium page with face-api and its models loaded. `files` maps URL paths under /files/ to
 * local files the page may read (images, frames).
 */
export class FaceApiPage {
  browser = null;
  page = null;
  log = [];
  /** @type {(name: string) => string | null} resolves /files/<name> to a local path */
  resolveFile = () => null;

  /** `browser`: a Chromium to open the page in (from launchChromium; stays open on stop). */
  async start({ backend = process.env.FACEAPI_BACKEND || 'cpu', browser = null } = {}) {
    requireTools();
    if (browser) {
      this.shared = browser;
    } else {
      this.browser = await launchChromium({ webgl: backend === 'webgl' });
    }
    const context = await (this.shared || this.browser).newContext();
    this.context = context;
    this.page = await openRoutedPage(context, ORIGIN, 'face-api', (path) => {
      if (path.startsWith('/lib/')) return join(faceApiDir, 'dist', path.slice(5));
      if (path.startsWith('/model/')) return join(faceApiDir, 'model', path.slice(7));
      if (path.startsWith('/files/')) return this.resolveFile(path.slice(7));
      return null;
    }, this.log);
    const info = await this.page.evaluate(async (backend) => {
      const faceapi = await import('/lib/face-api.esm.js');
      await faceapi.tf.setBackend(backend);
      await faceapi.tf.ready();
      await faceapi.nets.ssdMobilenetv1.loadFromUri('/model');
      await faceapi.nets.faceLandmark68Net.loadFromUri('/model');
      await faceapi.nets.faceRecognitionNet.loadFromUri('/model');
      window.faceapi = faceapi;
      const opts = (minConfidence) => new faceapi.SsdMobilenetv1Options({ minConfidence, maxResults: 100 });
      const pack = (d) => ({
        score: d.detection.score,
        box: { x: d.detection.box.x, y: d.detection.box.y, width: d.detection.box.width, height: d.detection.box.height },
        points: d.landmarks.positions.map((p) => [p.x, p.y]),
        descriptor: d.descriptor ? Array.from(d.descriptor) : null,
      });
      // Every face in an image, with landmarks and descriptors.
      window.detectAll = async (url, minConfidence = 0.5) => {
        const img = await faceapi.fetchImage(url);
        const found = await faceapi.detectAllFaces(img, opts(minConfidence)).withFaceLandmarks().withFaceDescriptors();
        return { width: img.naturalWidth, height: img.naturalHeight, faces: found.map(pack) };
      };
      // The most confident face of an image (null if none).
      window.detectOne = async (url, minConfidence = 0.3) => {
        const img = await faceapi.fetchImage(url);
        const d = await faceapi.detectSingleFace(img, opts(minConfidence)).withFaceLandmarks().withFaceDescriptor();
        return d ? pack(d) : null;
      };
      // Landmarks and descriptor of the face inside a known box (a face that does not move:
      // detected once, measured on every frame without the costly detector).
      window.measureInBox = async (url, box) => {
        const img = await faceapi.fetchImage(url);
        const rect = new faceapi.Rect(box.x, box.y, box.width, box.height);
        const [crop] = await faceapi.extractFaces(img, [rect]);
        const lm = await faceapi.nets.faceLandmark68Net.detectLandmarks(crop);
        const points = lm.positions.map((p) => [p.x * rect.width / crop.width + rect.x, p.y * rect.height / crop.height + rect.y]);
        let descriptor = null;
        if (box.descriptor) {
          const dims = { width: img.naturalWidth, height: img.naturalHeight };
          const relative = points.map(([x, y]) => new faceapi.Point(x / dims.width, y / dims.height));
          const shifted = new faceapi.FaceLandmarks68(relative, dims);
          const [aligned] = await faceapi.extractFaces(img, [shifted.align()]);
          descriptor = Array.from(await faceapi.computeFaceDescriptor(aligned));
        }
        return { points, descriptor };
      };
      return { backend: faceapi.tf.getBackend(), version: faceapi.version };
    }, backend);
    this.backend = info.backend;
    this.version = info.version;
    return info;
  }

  /** All faces of a local image file. */
  detectAll(file, minConfidence) {
    return this.evalOn(file, 'detectAll', minConfidence);
  }

  /** The most confident face of a local image file, or null. */
  detectOne(file, minConfidence) {
    return this.evalOn(file, 'detectOne', minConfidence);
  }

  /** Landmarks (and with `box.descriptor` the descriptor) of the face in `box` of a file. */
  measureInBox(file, box) {
    return this.evalOn(file, 'measureInBox', box);
  }

  async evalOn(file, method, arg) {
    const name = encodeURIComponent(file);
    const prev = this.resolveFile;
    this.resolveFile = (n) => (n === file ? file : prev(n));
    try {
      return await this.page.evaluate(([m, url, a]) => window[m](url, a), [method, `/files/${name}`, arg]).catch((e) => {
        throw new Error(`face-api on ${file}: ${e.message}\n${this.log.slice(-20).join('\n')}`);
      });
    } finally {
      this.resolveFile = prev;
    }
  }

  async stop() {
    await this.context?.close().catch(() => {});
    await this.browser?.close().catch(() => {});
  }
}

/**
 * A headless Chromium for pages of this module and of human.mjs (one browser, one page each:
 * face-api and Human bundle their own TensorFlow.js, which must not share a page's globals).
 * `webgl`: ask for Chromium's software GL (SwiftShader), needed for the webgl backend without a GPU.
 */
export function launchChromium({ webgl = false } = {}) {
  if (!existsSync(chromiumPath)) throw new Error(`missing: Chromium at ${chromiumPath} (set CHROMIUM_PATH)`);
  const gl = webgl ? ['--use-angle=swiftshader', '--enable-unsafe-swiftshader'] : [];
  return chromium.launch({ executablePath: chromiumPath, args: [...CHROMIUM_ARGS, ...gl] });
}

/** Euclidean distance of two face descriptors (face-api: < 0.6 means the same person). */
export function descriptorDistance(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

/** Mean of a list of [x, y] points. */
function mean(pts) {
  const n = pts.length;
  return [pts.reduce((s, p) => s + p[0], 0) / n, pts.reduce((s, p) => s + p[1], 0) / n];
}

const dist = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1]);

/** Distance between the eye centres (points 36-41 and 42-47). */
export function interocular(points) {
  return dist(mean(points.slice(36, 42)), mean(points.slice(42, 48)));
}

/** Mouth opening: the mean inner-lip gap (61-67, 62-66, 63-65) over the interocular distance. */
export function mouthOpening(points) {
  const gap = (dist(points[61], points[67]) + dist(points[62], points[66]) + dist(points[63], points[65])) / 3;
  return gap / interocular(points);
}

/** Eye aspect ratio (Soukupová & Čech 2016) of the eye whose six points start at `k`. */
export function eyeAspect(points, k) {
  const p = points.slice(k, k + 6);
  return (dist(p[1], p[5]) + dist(p[2], p[4])) / (2 * dist(p[0], p[3]));
}
