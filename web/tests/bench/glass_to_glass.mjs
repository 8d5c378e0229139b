// Benchmark: glass-to-glass latency as a viewer feels it, in headless Chromium with the real page
// and the real server: Enter pressed in the prompt box → (a) speech audible in the page's audio
// (the video element's audio, analysed with Web Audio) and (b) the mouth open in decoded frames
// (every presented frame via requestVideoFrameCallback, dark mouth-interior pixels counted in the
// mouth region); then, a second into each answer, Interrupt clicked → the voice silent. Prints
// median and p95 over N prompts. Not a test: numbers go to
// docs/benchmarks.md.
//
//   npm --prefix web run build && cargo build --release -p talkstream
//   node web/tests/bench/glass_to_glass.mjs [prompts=10] [transport]
//
// Env: TALKSTREAM_BIN (default ../target/release/talkstream from web/), CHROMIUM_PATH,
// WARMUP_MS (idle time before the first prompt, default 10000), LOCAL_TTS_ENGINE (default auto:
// Piper when installed, as the server's default).
// `transport` (webrtc or hls) is appended as ?transport=… to the page URL (default: the page's
// own choice, WebRTC).

import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harness, installAvProbe, interruptWhileLoud, silenceAfter, webDir } from '../e2e/harness.mjs';

const N = Number(process.argv[2] || 10);
const transport = process.argv[3] || '';
process.env.TALKSTREAM_BIN ||= resolve(webDir, '../target/release/talkstream');

// Long enough to be still speaking when the benchmark presses Interrupt.
const PROMPTS = [
  'Hello! How are you today? I hope the weather is kind to you and the coffee is strong.',
  'Open the window, please. The room is warm and a little fresh air would do us both good.',
  'What a lovely morning it is. The birds are singing and the sun is already over the hills.',
  'I am happy to help you. Ask me anything at all and I will do my very best to answer it.',
  'Tell me about your day. Did anything surprise you, or was it a quiet one from start to end?',
];

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.round((s.length - 1) * p))];
  return { median: at(0.5), p95: at(0.95), min: s[0], max: s[s.length - 1] };
}

const h = new Harness();
// The product's default voice (Piper when installed); LOCAL_TTS_ENGINE=espeak for the other.
await h.start({ env: { PROMPTS_PER_MINUTE: '0', LOG_LEVEL: 'warn', LOCAL_TTS_ENGINE: process.env.LOCAL_TTS_ENGINE || 'auto' } });
const page = h.page;
try {
  await page.goto(`${h.baseUrl}/${transport ? `?transport=${transport}` : ''}`);
  await h.waitInPage('hello', () => !!window.__talkstream?.sessionId, undefined, 20000);
  await h.waitInPage('playback', () => document.querySelector('video').currentTime > 1, undefined, 30000);
  // Probes: audio level of what the video element plays, and mouth darkness of presented frames.
  await installAvProbe(page);
  // Warm-up: a new WebRTC viewer's browser takes ~10 s to settle its audio jitter buffer and
  // line voice and lips up (two sender reports of each track); the first answers come later.
  await sleep(Number(process.env.WARMUP_MS ?? 10000));

  const audio = [];
  const lips = [];
  const silence = [];
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
    // A second into the answer, press Interrupt while the voice is loud: how long until silence?
    await sleep(1000);
    const clickedAt = await interruptWhileLoud(h);
    await h.waitInPage('the turn to finish', (m) => window.__talkstream.metrics.length > m, before.m, 30000);
    await sleep(2500);
    silence.push(await silenceAfter(h, clickedAt));
  }
  const engine = await page.evaluate(() => (window.__talkstream.hls ? 'hls.js' : document.querySelector('video').srcObject ? 'webrtc' : 'native'));
  const fmt = (s) => `median ${s.median.toFixed(0)} ms, p95 ${s.p95.toFixed(0)} ms (min ${s.min.toFixed(0)}, max ${s.max.toFixed(0)})`;
  console.log(`${N} prompts over ${engine}:`);
  console.log(`  Enter -> speech audible:  ${fmt(stats(audio))}`);
  console.log(`  Enter -> mouth moving:    ${fmt(stats(lips))}`);
  console.log(`  Interrupt -> silence:     ${fmt(stats(silence))}`);
} finally {
  await h.stop();
}
