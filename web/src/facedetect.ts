// The face detector of "Use my photo": @vladmandic/face-api (TensorFlow.js) with the SSD
// MobileNet v1 detector and the 68-point landmark net, weights served by talkstream itself from
// models/ (the build copies them there, see vite.config.ts). photo.ts imports this module
// dynamically, so the page loads the 1.3 MB library only when the user picks a photo.
//
// SSD MobileNet v1 rather than the tiny detector: on the face-api demo photos (groups of 3–5
// people) it found every face with score ≥ 0.69, while the tiny detector missed faces in two of
// the six photos and placed looser boxes; it is slower (7–17 s a photo against 1–5 s in headless
// Chromium's software WebGL on a busy 2-core machine, the first one longer while the shaders
// compile; a real GPU takes a fraction of that) and 5.4 MB larger.

import * as faceapi from '@vladmandic/face-api';
import type { Box, Point } from './portrait';

export interface FoundFace {
  box: Box;
  score: number;
  /** 68 points, iBUG 300-W order, in the input's pixels */
  landmarks: Point[];
}

/** Files under models/ the page fetches (the build copies exactly these). */
export const MODEL_URL = 'models';

let loading: Promise<string> | null = null;

/** face-api re-exports TensorFlow.js, but its types leave these out. */
const tf = faceapi.tf as unknown as { ready(): Promise<void>; getBackend(): string };

/** Load TensorFlow.js and both nets once; resolves to the TensorFlow.js backend in use. */
export function loadModels(): Promise<string> {
  loading ??= (async () => {
    await tf.ready();
    const base = new URL(`${MODEL_URL}/`, document.baseURI).href.replace(/\/$/, '');
    await Promise.all([faceapi.nets.ssdMobilenetv1.loadFromUri(base), faceapi.nets.faceLandmark68Net.loadFromUri(base)]);
    return tf.getBackend();
  })();
  // a failed load (network) may be retried by the next photo
  loading.catch(() => {
    loading = null;
  });
  return loading;
}

/** Every face in `input` with its landmarks. */
export async function detectFaces(input: HTMLCanvasElement, minConfidence = 0.5): Promise<FoundFace[]> {
  const found = await faceapi.detectAllFaces(input, new faceapi.SsdMobilenetv1Options({ minConfidence })).withFaceLandmarks();
  return found.map((f) => {
    const b = f.detection.box;
    return {
      box: { x: b.x, y: b.y, width: b.width, height: b.height },
      score: f.detection.score,
      landmarks: f.landmarks.positions.map((p) => [p.x, p.y] as const),
    };
  });
}
