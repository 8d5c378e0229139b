// Benchmark: hls.js's own latency on the LL-HLS stream over a long run of alternating idle and
// speech, in headless Chromium with the real page and the real server: at the start and at the
// end (it must not creep), the stalls and hls.js errors on the way, and the spacing of parts as
// the page loads them. Not a test: numbers go to docs/benchmarks.md.
//
//   npm --prefix web run build && cargo build --release -p talkstream
//   node web/tests/bench/ll_latency.mjs [minutes=10]
//
// Env: TALKSTREAM_BIN (default ../target/release/talkstream from web/), CHROMIUM_PATH.

import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harness, webDir } from '../e2e/harness.mjs';

const MINUTES = Number(process.argv[2] || 10);
process.env.TALKSTREAM_BIN ||= resolve(webDir, '../target/release/talkstream');

const PROMPTS = [
  'Hello! How are you today? I hope the weather is kind to you.',
  'Open the window, please, and let the fresh air in.',
  'What a lovely morning it is for a walk in the park.',
  'I am happy to help you with anything you need.',
];

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.round((s.length - 1) * p))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, mean, median: at(0.5), p95: at(0.95), min: s[0], max: s[s.length - 1] };
}
const fmt = (o, d = 2) =>
  Object.entries(o)
    .map(([k, v]) => `${k} ${typeof v === 'number' && k !== 'n' ? v.toFixed(d) : v}`)
    .join(', ');

const h = new Harness();
await h.start({ env: { PROMPTS_PER_MINUTE: '0', LOG_LEVEL: 'warn' } });
const page = h.page;
try {
  await page.goto(`${h.baseUrl}/?transport=hls`);
  await h.waitInPage('hello', () => !!window.__talkstream?.sessionId, undefined, 20000);
  await h.waitInPage('an hls.js instance', () => !!window.__talkstream.hls);
  await page.evaluate(() => {
    const hls = window.__talkstream.hls;
    const seen = { hls, errors: [], partLoads: [], latency: [], target: [] };
    window.__bench = seen;
    hls.on('hlsError', (_e, d) => seen.errors.push(`${(performance.now() / 1000).toFixed(1)} s ${d.details} fatal=${d.fatal}`));
    hls.on('hlsFragLoaded', (_e, d) => {
      if (d.frag.type === 'main' && d.part) seen.partLoads.push(performance.now());
    });
    setInterval(() => {
      if (window.__talkstream.playingSince === null) return;
      seen.latency.push([performance.now(), hls.latency]);
      seen.target.push(hls.targetLatency);
    }, 1000);
  });
  await h.waitInPage('playback', () => document.querySelector('video').currentTime > 1, undefined, 30000);
  const t0 = Date.now();
  let prompts = 0;
  while (Date.now() - t0 < MINUTES * 60000) {
    await h.waitInPage('the Send button', () => !document.getElementById('send').disabled, undefined, 30000);
    const n = await page.evaluate(() => window.__talkstream.statuses.length);
    await page.locator('#prompt').fill(PROMPTS[prompts++ % PROMPTS.length]);
    await page.keyboard.press('Enter');
    await h.waitInPage(
      'the answer to finish',
      (k) => {
        const s = window.__talkstream.statuses.slice(k);
        return s.includes('speaking') && s.lastIndexOf('idle') > s.indexOf('speaking');
      },
      n,
      60000,
    );
    await sleep(8000); // idle
  }
  const r = await page.evaluate(() => ({
    sameHls: window.__bench.hls === window.__talkstream.hls,
    errors: window.__bench.errors,
    partLoads: window.__bench.partLoads,
    latency: window.__bench.latency,
    target: window.__bench.target,
    stalls: window.__talkstream.waitingEvents.filter((s) => !s.startup),
  }));
  const first = r.latency[0][0];
  const last = r.latency[r.latency.length - 1][0];
  const minuteOf = (from, to) => r.latency.filter(([t]) => t >= from && t < to).map(([, l]) => l);
  const gaps = r.partLoads.slice(1).map((t, i) => t - r.partLoads[i]);
  console.log(`${MINUTES} min, ${prompts} prompts, same hls.js instance throughout: ${r.sameHls}`);
  console.log(`hls.js latency, first minute: ${fmt(stats(minuteOf(first, first + 60000)))}`);
  console.log(`hls.js latency, last minute:  ${fmt(stats(minuteOf(last - 60000, last + 1)))}`);
  console.log(`hls.js target latency: start ${r.target[0]?.toFixed(2)} s, end ${r.target[r.target.length - 1]?.toFixed(2)} s`);
  console.log(`part loads: ${r.partLoads.length}, spacing ms: ${fmt(stats(gaps), 0)}`);
  console.log(`stalls after start: ${r.stalls.length} ${JSON.stringify(r.stalls.map((s) => Math.round(s.duration)))}`);
  console.log(`hls.js errors: ${r.errors.length} ${JSON.stringify(r.errors.slice(0, 10))}`);
} finally {
  const lag = h.serverOutput.split('\n').filter((l) => /falling behind/.test(l));
  console.log(`server "falling behind real time" warnings: ${lag.length}`);
  await h.stop();
}
