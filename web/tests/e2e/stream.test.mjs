// End-to-end: start the real talkstream binary, open the page in Chromium, check live playback,
// reconnection and client log forwarding, over HLS (`?transport=hls`; WebRTC: webrtc.test.mjs).
//
//   npm run build && npm run test:e2e
//
// Env: TALKSTREAM_BIN (default ../target/debug/talkstream from web/), CHROMIUM_PATH
// (default /usr/bin/chromium), IDLE_SCREENSHOT_PATH (optional PNG of the playing idle page;
// SCREENSHOT_PATH belongs to speech.test.mjs, the page while the avatar speaks).

import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harness } from './harness.mjs';

const h = new Harness();
let page;
const diagnostics = () => h.diagnostics();
const waitInPage = (...args) => h.waitInPage(...args);

const videoTime = () => page.evaluate(() => document.querySelector('video').currentTime);
const badgeText = () => page.evaluate(() => document.getElementById('status-badge').textContent.trim());

describe('talkstream page against the real server', () => {
  before(async () => {
    await h.start();
    page = h.page;
  });

  after(() => h.stop());

  test('plays the live idle stream', async () => {
    await page.goto(`${h.baseUrl}/?transport=hls`);
    await waitInPage('hello (sessionId)', () => !!window.__talkstream?.sessionId, undefined, 20000);
    const hello = await page.evaluate(() => window.__talkstream.events.find((e) => e?.type === 'hello'));
    assert.equal(typeof hello.session_id, 'string');
    assert.match(hello.playlist, /\.m3u8$/, 'hello.playlist should point at an m3u8');

    await waitInPage('video to start playing (currentTime > 0)', () => document.querySelector('video').currentTime > 0);
    const t0 = await videoTime();
    await sleep(10500);
    const t1 = await videoTime();
    assert.ok(t1 - t0 >= 8, `playback advanced only ${(t1 - t0).toFixed(2)} s in 10.5 s (from ${t0} to ${t1})${diagnostics()}`);

    const fatal = await page.evaluate(() => window.__talkstream.fatalHlsErrors);
    assert.deepEqual(fatal, [], `fatal hls.js errors: ${JSON.stringify(fatal)}${diagnostics()}`);

    const decoded = await page.evaluate(() => {
      const v = document.querySelector('video');
      return {
        hasAudioCounter: 'webkitAudioDecodedByteCount' in v,
        hasVideoCounter: 'webkitVideoDecodedByteCount' in v,
        audio: v.webkitAudioDecodedByteCount,
        video: v.webkitVideoDecodedByteCount,
      };
    });
    assert.ok(decoded.hasAudioCounter && decoded.hasVideoCounter, 'Chromium decode counters missing');
    assert.ok(decoded.audio > 0, `no audio decoded: ${JSON.stringify(decoded)}`);
    assert.ok(decoded.video > 0, `no video decoded: ${JSON.stringify(decoded)}`);

    assert.equal(await badgeText(), 'idle');

    if (process.env.IDLE_SCREENSHOT_PATH) {
      await page.screenshot({ path: resolve(process.env.IDLE_SCREENSHOT_PATH), fullPage: true });
    }
  });

  test('reconnects after the socket drops', async () => {
    const first = await page.evaluate(() => window.__talkstream.sessionId);
    assert.ok(first, 'no session before the drop (test 1 must run first)');
    await page.evaluate(() => {
      window.__e2eOldHls = window.__talkstream.hls;
      window.__talkstream.debugCloseSocket();
    });
    await waitInPage(
      'a new hello with a different session id',
      (old) => !!window.__talkstream.sessionId && window.__talkstream.sessionId !== old,
      first,
      20000,
    );
    const second = await page.evaluate(() => window.__talkstream.sessionId);
    const hellos = await page.evaluate(() => window.__talkstream.events.filter((e) => e?.type === 'hello').length);
    assert.ok(hellos >= 2, `expected two hellos, saw ${hellos}`);
    assert.notEqual(second, first);
    assert.notEqual(await page.evaluate(() => window.__talkstream.playlist), null);

    await waitInPage(
      'the new stream to play',
      () =>
        !!window.__talkstream.hls &&
        window.__talkstream.hls !== window.__e2eOldHls &&
        document.querySelector('video').currentTime > 0,
    );
    const t0 = await videoTime();
    await sleep(4000);
    const t1 = await videoTime();
    assert.ok(t1 - t0 >= 3, `playback after reconnect advanced only ${(t1 - t0).toFixed(2)} s in 4 s${diagnostics()}`);
    const fatal = await page.evaluate(() => window.__talkstream.fatalHlsErrors);
    assert.deepEqual(fatal, [], `fatal hls.js errors: ${JSON.stringify(fatal)}`);
    assert.equal(await badgeText(), 'idle');
  });

  test('hls.js errors are forwarded to the server log', async () => {
    await waitInPage('an open session', () => !!window.__talkstream.sessionId);
    const direct = `e2e-direct-log-${Date.now()}`;
    const viaHls = `e2e-hls-error-${Date.now()}`;
    await page.evaluate(
      ([a, b]) => {
        // the hook the forwarding code itself uses
        window.__talkstream.sendLog('warn', a);
        // and the real path: an hls.js ERROR event (non-fatal, so no recovery kicks in)
        window.__talkstream.hls.trigger('hlsError', { type: 'otherError', details: 'unknown', fatal: false, reason: b });
      },
      [direct, viaHls],
    );
    const lineWith = (token) => h.serverOutput.split('\n').find((l) => l.includes(token));
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline && !(lineWith(direct) && lineWith(viaHls))) await sleep(100);
    for (const token of [direct, viaHls]) {
      const line = lineWith(token);
      assert.ok(line, `server output never mentioned ${token}${diagnostics()}`);
      assert.match(line, /client log/, `the line with ${token} does not say "client log": ${line}`);
    }
    assert.match(lineWith(viaHls), /otherError/, 'forwarded hls.js error should carry its type');
    const fatal = await page.evaluate(() => window.__talkstream.fatalHlsErrors);
    assert.deepEqual(fatal, []);
  });
});
