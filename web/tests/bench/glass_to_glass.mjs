// Benchmark: glass-to-glass latency as a viewer feels it, in headless Chromium with the real page
// and the real server: Enter pressed in the prompt box → (a) speech audible in the page's audio
// (the video element's audio, analysed with Web Audio) and (b) the mouth open in decoded frames
// (every presented frame via requestVideoFrameCallback, dark mouth-interior pixels counted in the
// mouth region). Prints median and p95 over N prompts. Not a test: numbers go to
// docs/benchmarks.md.
//
//   npm --prefix web run build && cargo build --release -p talkstream
//   node web/tests/bench/glass_to_glass.mjs [prompts=10] [transport]
//
// Env: TALKSTREAM_BIN (default ../target/release/talkstream from web/), CHROMIUM_PATH.
// `transport` is appended as ?transport=… to the page URL (hls today; webrtc once it exists).

import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harness, webDir } from '../e2e/harness.mjs';

const N = Number(process.argv[2] || 10);
const transport = process.argv[3] || '';
process.env.TALKSTREAM_BIN ||= resolve(webDir, '../target/release/talkstream');

const PROMPTS = [
  'Hello! How are you today?',
  'Open the window, please.',
  'What a lovely morning it is.',
  'I am happy to help you.',
  'Tell me about your day.',
];

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.round((s.length - 1) * p))];
  return { median: at(0.5), p95: at(0.95), min: s[0], max: s[s.length - 1] };
}

const h = new Harness();
await h.start({ env: { PROMPTS_PER_MINUTE: '0', LOG_LEVEL: 'warn' } });
const page = h.page;
try {
  await page.goto(`${h.baseUrl}/${transport ? `?transport=${transport}` : ''}`);
  await h.waitInPage('hello', () => !!window.__talkstream?.sessionId, undefined, 20000);
  await h.waitInPage('playback', () => document.querySelector('video').currentTime > 1, undefined, 30000);
  // Probes: audio level of what the video element plays, and mouth darkness of presented frames.
  await page.evaluate(() => {
    const video = document.querySelector('video');
    const probe = { audioAt: [], lipsAt: [], idleDark: null };
    window.__probe = probe;
    const ctx = new AudioContext();
    const src = ctx.createMediaStreamSource(video.captureStream());
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 256;
    src.connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    let loud = false;
    setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const v of buf) sum += v * v;
      const rms = Math.sqrt(sum / buf.length);
      if (rms > 0.02 && !loud) probe.audioAt.push(performance.now());
      loud = rms > 0.02;
    }, 2);
    const canvas = document.createElement('canvas');
    const g = canvas.getContext('2d', { willReadFrequently: true });
    let open = false;
    const onFrame = (now) => {
      const w = video.videoWidth;
      const hgt = video.videoHeight;
      if (w && hgt) {
        canvas.width = w;
        canvas.height = hgt;
        g.drawImage(video, 0, 0);
        // The drawn avatar's mouth: centre ~ (0.5, 0.59) of the picture.
        const bw = Math.round(w * 0.16);
        const bh = Math.round(hgt * 0.1);
        const data = g.getImageData(Math.round(w * 0.5 - bw / 2), Math.round(hgt * 0.59 - bh / 2), bw, bh).data;
        let dark = 0;
        for (let i = 0; i < data.length; i += 4) {
          const y = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
          if (y < 90) dark++;
        }
        if (probe.idleDark === null) probe.idleDark = dark;
        const isOpen = dark > probe.idleDark + 40;
        if (isOpen && !open) probe.lipsAt.push(now);
        open = isOpen;
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  });
  await sleep(1500);

  const audio = [];
  const lips = [];
  for (let i = 0; i < N; i++) {
    const before = await page.evaluate(() => ({ a: window.__probe.audioAt.length, l: window.__probe.lipsAt.length, m: window.__talkstream.metrics.length }));
    await page.fill('#prompt', PROMPTS[i % PROMPTS.length]);
    const enterAt = await page.evaluate(() => {
      const t = performance.now();
      document.getElementById('prompt').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
      return t;
    });
    await h.waitInPage(
      'speech heard and lips seen',
      ([a, l]) => window.__probe.audioAt.length > a && window.__probe.lipsAt.length > l,
      [before.a, before.l],
      30000,
    );
    const r = await page.evaluate(([a, l]) => ({ audio: window.__probe.audioAt[a], lips: window.__probe.lipsAt[l] }), [before.a, before.l]);
    audio.push(r.audio - enterAt);
    lips.push(r.lips - enterAt);
    // Let the answer finish and the page return to idle before the next prompt.
    await h.waitInPage('the turn to finish', (m) => window.__talkstream.metrics.length > m, before.m, 30000);
    await sleep(2500);
  }
  const engine = await page.evaluate(() => (window.__talkstream.hls ? 'hls.js' : document.querySelector('video').srcObject ? 'webrtc' : 'native'));
  const fmt = (s) => `median ${s.median.toFixed(0)} ms, p95 ${s.p95.toFixed(0)} ms (min ${s.min.toFixed(0)}, max ${s.max.toFixed(0)})`;
  console.log(`${N} prompts over ${engine}:`);
  console.log(`  Enter -> speech audible:  ${fmt(stats(audio))}`);
  console.log(`  Enter -> mouth moving:    ${fmt(stats(lips))}`);
} finally {
  await h.stop();
}
