// End-to-end: the page plays the server's Low-Latency HLS in hls.js low-latency mode through
// idle → speech → idle: parts are loaded (not whole segments), playback stays about a second
// behind live, and there is no stall and no hls.js error on the way.
//
//   npm run build && TALKSTREAM_BIN=../target/debug/talkstream node --test tests/e2e/llhls.test.mjs
//
// Env: see harness.mjs.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harness } from './harness.mjs';

const PROMPT = 'Hello there, this is the low latency stream speaking a whole sentence for you.';
/** a stall after playback started longer than this fails the test (as in speech.test.mjs) */
const MAX_STALL_MS = 250;
/** hls.js's own latency (live edge − playhead), in seconds: never above MAX once it has caught
 * up after the start (the first START_S of playback), and a median under MEDIAN */
const MAX_LATENCY_S = 2.0;
const MEDIAN_LATENCY_S = 1.6;
const START_S = 3;

const h = new Harness();
let page;


describe('low-latency HLS in the page', () => {
  before(async () => {
    await h.start({ env: { PROMPTS_PER_MINUTE: '0' } });
    page = h.page;
  });

  after(() => h.stop());

  test('plays idle → speech → idle in low-latency mode without a stall or hls.js error', async () => {
    await page.goto(`${h.baseUrl}/?transport=hls`);
    await h.waitInPage('hello (sessionId)', () => !!window.__talkstream?.sessionId, undefined, 20000);
    await h.waitInPage('an hls.js instance', () => !!window.__talkstream.hls);
    // Watch hls.js itself: every error event, every loaded part and the latency it reports.
    await page.evaluate((startS) => {
      const hls = window.__talkstream.hls;
      const seen = { hls, errors: [], parts: 0, segments: 0, latency: [] };
      window.__ll = seen;
      hls.on('hlsError', (_e, d) => seen.errors.push(`${d.type}/${d.details} fatal=${d.fatal} ${d.error?.message ?? ''}`));
      hls.on('hlsFragLoaded', (_e, d) => {
        if (d.frag.type !== 'main') return;
        if (d.part) seen.parts++;
        else seen.segments++;
      });
      setInterval(() => {
        const playingSince = window.__talkstream.playingSince;
        if (playingSince !== null && performance.now() - playingSince > startS * 1000) seen.latency.push(hls.latency);
      }, 250);
    }, START_S);
    await h.waitInPage(
      'the video to play',
      () => window.__talkstream.playingSince !== null && document.querySelector('video').currentTime > 0,
    );
    const details = await page.evaluate(() => {
      const hls = window.__talkstream.hls;
      const d = hls.latestLevelDetails;
      return {
        lowLatencyMode: hls.config.lowLatencyMode,
        partTarget: d.partTarget,
        partHoldBack: d.partHoldBack,
        canBlockReload: d.canBlockReload,
        targetLatency: hls.targetLatency,
      };
    });
    assert.equal(details.lowLatencyMode, true, JSON.stringify(details));
    assert.ok(details.partTarget > 0 && details.canBlockReload, `not a low-latency playlist: ${JSON.stringify(details)}`);
    assert.ok(details.partHoldBack >= 3 * details.partTarget, JSON.stringify(details));
    const since = await page.evaluate(() => performance.now());
    const t0 = await page.evaluate(() => document.querySelector('video').currentTime);

    // Idle, then a spoken answer, then idle again.
    await sleep(4000);
    await h.waitInPage('the Send button to be enabled', () => !document.getElementById('send').disabled);
    const statusesBefore = await page.evaluate(() => window.__talkstream.statuses.length);
    await page.locator('#prompt').fill(PROMPT);
    await page.keyboard.press('Enter');
    await h.waitInPage(
      'status "speaking"',
      (n) => window.__talkstream.statuses.slice(n).includes('speaking'),
      statusesBefore,
      20000,
    );
    await h.waitInPage(
      'the answer to finish (status "idle" after "speaking")',
      (n) => window.__talkstream.statuses.slice(n).lastIndexOf('idle') > window.__talkstream.statuses.slice(n).indexOf('speaking'),
      statusesBefore,
      30000,
    );
    // The player is about a second behind: let it play the end of the answer and some idle.
    await sleep(4000);

    const result = await page.evaluate(() => ({
      sameHls: window.__ll.hls === window.__talkstream.hls,
      errors: window.__ll.errors,
      fatal: window.__talkstream.fatalHlsErrors,
      parts: window.__ll.parts,
      segments: window.__ll.segments,
      latency: window.__ll.latency,
      currentTime: document.querySelector('video').currentTime,
      now: performance.now(),
    }));
    const context = `${await h.pageState()}${h.diagnostics()}`;
    assert.ok(result.sameHls, `hls.js was torn down and reloaded during the test${context}`);
    assert.deepEqual(result.fatal, [], `fatal hls.js errors${context}`);
    assert.deepEqual(result.errors, [], `hls.js reported errors${context}`);
    const stalls = await h.longStalls(since, MAX_STALL_MS);
    assert.deepEqual(stalls, [], `playback stalled (> ${MAX_STALL_MS} ms)${context}`);
    // Parts, not segments: the low-latency path was really taken.
    assert.ok(result.parts >= 20, `only ${result.parts} parts loaded (${result.segments} segments)${context}`);
    // Playback kept up with the wall clock and stayed close to the live edge.
    const played = result.currentTime - t0;
    const wall = (result.now - since) / 1000;
    assert.ok(played > wall - 0.5, `played ${played.toFixed(2)} s in ${wall.toFixed(2)} s${context}`);
    const sorted = [...result.latency].sort((a, b) => a - b);
    const worst = sorted[sorted.length - 1];
    const median = sorted[Math.floor(sorted.length / 2)];
    assert.ok(
      result.latency.length > 20 && worst < MAX_LATENCY_S && median < MEDIAN_LATENCY_S,
      `hls.js latency median ${median?.toFixed(2)} s, up to ${worst?.toFixed(2)} s after the first ${START_S} s (target ${details.targetLatency}): ${result.latency.map((l) => l.toFixed(2)).join(' ')}${context}`,
    );
  });
});
