// End-to-end: start the real talkstream binary, open the page in Chromium, check live playback,
// reconnection and client log forwarding.
//
//   npm run build && npm run test:e2e
//
// Env: TALKSTREAM_BIN (default ../target/debug/talkstream from web/), CHROMIUM_PATH
// (default /usr/bin/chromium), SCREENSHOT_PATH (optional PNG of the playing page).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const webDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const distDir = join(webDir, 'dist');
const bin = process.env.TALKSTREAM_BIN
  ? resolve(process.env.TALKSTREAM_BIN)
  : resolve(webDir, '../target/debug/talkstream');
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

// eslint-disable-next-line no-control-regex
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

/** Everything the server printed (stdout + stderr, ANSI stripped). */
let serverOutput = '';
let server;
let hlsDir;
let baseUrl;
let browser;
let page;
const pageLog = [];

function tail(text, n = 60) {
  return text.split('\n').slice(-n).join('\n');
}

/** Context for failure messages: what the server and the page said. */
function diagnostics() {
  return `\n--- server output (tail) ---\n${tail(serverOutput)}\n--- page console (tail) ---\n${pageLog.slice(-40).join('\n')}`;
}

function startServer() {
  hlsDir = mkdtempSync(join(tmpdir(), 'talkstream-e2e-hls-'));
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--hls-dir', hlsDir, '--static-dir', distDir];
  server = spawn(bin, args, {
    cwd: webDir,
    env: { ...process.env, LOG_LEVEL: 'info', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolvePort, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`server did not print "listening on http://127.0.0.1:<port>" within 30 s${diagnostics()}`));
    }, 30000);
    const onData = (chunk) => {
      serverOutput += stripAnsi(chunk.toString());
      const m = serverOutput.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m && !baseUrl) {
        clearTimeout(timer);
        baseUrl = `http://127.0.0.1:${m[1]}`;
        resolvePort(baseUrl);
      }
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${bin}: ${e.message}${diagnostics()}`));
    });
    // 'close', not 'exit': by then all of the server's output has been read
    server.on('close', (code, signal) => {
      if (!baseUrl) {
        clearTimeout(timer);
        reject(new Error(`server exited early (code ${code}, signal ${signal})${diagnostics()}`));
      }
    });
  });
}

async function stopServer() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGINT');
  const killed = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
  if (!killed) {
    server.kill('SIGKILL');
    await exited;
  }
}

/** Wait until `fn` (run in the page) returns truthy; fail with diagnostics otherwise. */
async function waitInPage(what, fn, arg, timeout = 30000) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    const state = await page
      .evaluate(() => {
        const t = window.__talkstream;
        const v = document.querySelector('video');
        return JSON.stringify({
          state: t?.state,
          sessionId: t?.sessionId,
          playlist: t?.playlist,
          errors: t?.errors,
          fatalHlsErrors: t?.fatalHlsErrors,
          events: t?.events?.slice(-10),
          currentTime: v?.currentTime,
          readyState: v?.readyState,
          paused: v?.paused,
          videoError: v?.error?.message,
        });
      })
      .catch((err) => `(page state unavailable: ${err.message})`);
    throw new Error(`timed out waiting for ${what}: ${e.message}\npage state: ${state}${diagnostics()}`);
  }
}

const videoTime = () => page.evaluate(() => document.querySelector('video').currentTime);
const badgeText = () => page.evaluate(() => document.getElementById('status-badge').textContent.trim());

describe('talkstream page against the real server', () => {
  before(async () => {
    assert.ok(existsSync(join(distDir, 'index.html')), `${distDir}/index.html missing: run "npm run build" first`);
    assert.ok(existsSync(bin), `server binary ${bin} not found: build it (cargo build) or set TALKSTREAM_BIN`);
    await startServer();
    browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 900, height: 1000 } });
    page = await context.newPage();
    page.on('console', (m) => pageLog.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => pageLog.push(`[pageerror] ${e.message}`));
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopServer();
    if (hlsDir) rmSync(hlsDir, { recursive: true, force: true });
  });

  test('plays the live idle stream', async () => {
    await page.goto(baseUrl);
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

    if (process.env.SCREENSHOT_PATH) {
      await page.screenshot({ path: resolve(process.env.SCREENSHOT_PATH), fullPage: true });
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
    const lineWith = (token) => serverOutput.split('\n').find((l) => l.includes(token));
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
