// The page's microphone in headless Chromium against a scripted /session (no talkstream binary):
// Chromium's fake microphone plays a WAV (a 440 Hz tone, 0.6 s on / 0.6 s off), the test answers
// like the server (hello, user_speech, user_transcript, transcript, errors) and checks the `mic`
// messages, the binary frames (512 samples of 16 kHz s16le, carrying the tone), the state line,
// the history, push-to-talk by pointer and Space, the transport change, socket close, a server
// without speech recognition and an insecure origin. dist/ is served by a small static server
// with the real server's Content-Security-Policy, so the worklet must load under it.
// MIC_SCREENSHOT_PATH saves the page with the mic on and a conversation in the history.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, chromiumPath, distDir } from './harness.mjs';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json' };

/** A 48 kHz mono WAV: 440 Hz at half scale for 0.6 s, then 0.6 s of silence, 10 s. */
function toneWav(path) {
  const rate = 48000;
  const n = rate * 10;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0);
  buf.writeUInt32LE(36 + n * 2, 4);
  buf.write('WAVEfmt ', 8);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36);
  buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const v = t % 1.2 < 0.6 ? 0.5 * Math.sin(2 * Math.PI * 440 * t) : 0;
    buf.writeInt16LE(Math.round(v * 32767), 44 + i * 2);
  }
  writeFileSync(path, buf);
}

/** dist/ with the talkstream server's CSP; /api/access open; WHEP and HLS answer as told. */
function staticServer(state) {
  const csp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
    "media-src 'self' blob: data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'";
  return createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/api/access') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"token_required":false,"token_valid":null,"playback_token_required":false}');
      return;
    }
    if (url.pathname.startsWith('/whep/')) {
      // held until the test lets WebRTC fail (the page then plays HLS)
      state.whepHeld.push(() => {
        res.writeHead(503);
        res.end('no WebRTC here');
      });
      return;
    }
    const rel = normalize(url.pathname === '/' ? '/index.html' : url.pathname).replace(/^\/+/, '');
    const file = join(distDir, rel);
    if (!file.startsWith(distDir) || !existsSync(file)) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-security-policy': csp });
    res.end(readFileSync(file));
  });
}

const hello = (over = {}) => ({
  type: 'hello',
  session_id: 'feedc0de',
  playlist: '/hls/feedc0de/index.m3u8',
  whep: '/whep/feedc0de',
  version: '0.1.0',
  stream: { width: 512, height: 512, fps: 25, segment_ms: 1800, audio_sample_rate: 22050 },
  llm: 'none',
  tts: 'local',
  video_generator: 'builtin',
  stt: 'openai',
  vad: { silence_ms: 600, min_speech_ms: 160, barge_in_ms: 400, max_utterance_ms: 30000 },
  server_time_ms: Date.now(),
  ...over,
});

/** The frequency of a tone in 16 kHz samples, from upward zero crossings. */
function frequency(samples) {
  const c = [];
  for (let i = 1; i < samples.length; i++) if (samples[i - 1] < 0 && samples[i] >= 0) c.push(i);
  return c.length < 3 ? 0 : ((c.length - 1) * 16000) / (c[c.length - 1] - c[0]);
}

const state = { whepHeld: [], sockets: [], nextHello: hello };
let http;
let baseUrl;
let browser;
let page;
let tmp;
const pageLog = [];

/** Everything one mocked socket received: JSON messages and binary frames. */
function mockSession(ws) {
  const s = { ws, json: [], frames: [], closed: false };
  state.sockets.push(s);
  ws.onMessage((m) => {
    if (typeof m === 'string') s.json.push(JSON.parse(m));
    else s.frames.push(m);
  });
  ws.onClose(() => (s.closed = true));
  ws.send(JSON.stringify(state.nextHello()));
}

const current = () => state.sockets[state.sockets.length - 1];
const micMessages = (s = current()) => s.json.filter((m) => m.type === 'mic');
const send = (msg) => current().ws.send(JSON.stringify(msg));
const dbg = (expr) => page.evaluate(`window.__talkstream.${expr}`);

async function until(what, fn, timeout = 10000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) {
      const t = await page.evaluate(() => JSON.stringify({ mic: window.__talkstream.micState, errors: window.__talkstream.errors, sent: window.__talkstream.micMessages }));
      throw new Error(`timed out waiting for ${what}\npage: ${t}\nmic messages: ${JSON.stringify(micMessages())}\n${pageLog.slice(-20).join('\n')}`);
    }
    await sleep(50);
  }
}

before(async () => {
  assert.ok(existsSync(join(distDir, 'index.html')), `${distDir}/index.html missing: run "npm run build" first`);
  tmp = mkdtempSync(join(tmpdir(), 'talkstream-mic-'));
  const wav = join(tmp, 'tone.wav');
  toneWav(wav);
  http = staticServer(state);
  await new Promise((r) => http.listen(0, '0.0.0.0', r));
  baseUrl = `http://127.0.0.1:${http.address().port}`;
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [...CHROMIUM_ARGS, '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wav}`],
  });
  const context = await browser.newContext({ viewport: { width: 900, height: 1200 } });
  await context.grantPermissions(['microphone'], { origin: baseUrl });
  page = await context.newPage();
  page.on('console', (m) => pageLog.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => pageLog.push(`[pageerror] ${e.message}`));
  await page.routeWebSocket(/\/session/, mockSession);
});

after(async () => {
  await browser?.close().catch(() => {});
  http?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('hands-free: mic start, 16 kHz frames of the tone, states, history, transport change, off', async () => {
  await page.goto(baseUrl);
  await until('hello', () => dbg('sessionId'));
  assert.equal(await dbg('micState'), 'off');
  await page.click('#mic');
  await until('mic start', () => micMessages().length >= 1);
  assert.deepEqual(micMessages()[0], { type: 'mic', action: 'start', mode: 'hands_free', playback: 'webrtc' });
  await until('60 frames', () => current().frames.length >= 60);
  assert.equal(await dbg('micState'), 'listening');
  for (const f of current().frames) assert.equal(f.length, 1024, 'a frame is 512 samples of 16-bit');
  // The tone: its frequency in each loud stretch (median: a stretch may hold an edge of the tone).
  const samples = Buffer.concat(current().frames);
  const all = new Int16Array(samples.buffer.slice(samples.byteOffset, samples.byteOffset + samples.length));
  const found = [];
  for (let i = 0; i + 2048 <= all.length; i += 2048) {
    const win = all.subarray(i, i + 2048);
    if (win.reduce((m, v) => Math.max(m, Math.abs(v)), 0) > 3000) found.push(frequency(win));
  }
  assert.ok(found.length >= 3, `the tone is in the frames (${found.length} loud stretches)`);
  const hz = found.sort((a, b) => a - b)[found.length >> 1];
  assert.ok(Math.abs(hz - 440) < 3, `440 Hz arrives as ${hz.toFixed(1)} Hz at 16 kHz (${found.map((f) => f.toFixed(0)).join(' ')})`);
  await until('a level', async () => (await dbg('micLevelDb')) > -40);
  assert.ok((await dbg('micFramesSent')) >= 40);

  // The server hears, stops hearing, transcribes; the avatar answers.
  send({ type: 'user_speech', state: 'started' });
  await until('hearing', async () => (await dbg('micState')) === 'hearing');
  assert.equal(await page.textContent('#mic-state'), 'hearing you…');
  send({ type: 'user_speech', state: 'stopped', duration_ms: 1840 });
  await until('heard', async () => (await dbg('micState')) === 'heard');
  assert.equal(await page.textContent('#mic-state'), 'heard you — thinking…');
  send({ type: 'user_transcript', text: "What's the weather like on Mars?", turn: 1 });
  await until('listening again', async () => (await dbg('micState')) === 'listening');
  send({ type: 'status', stage: 'thinking' });
  send({ type: 'transcript', turn: 1, text: 'Cold and dusty,', start_ms: 0, end_ms: 900, start_pdt_ms: Date.now(), end_pdt_ms: Date.now() + 900 });
  send({ type: 'transcript', turn: 1, text: 'with thin air.', start_ms: 900, end_ms: 1800, start_pdt_ms: Date.now() + 900, end_pdt_ms: Date.now() + 1800 });
  await until('history', async () => (await dbg('history')).length === 2);
  assert.deepEqual(await dbg('history'), [
    { who: 'user', text: "What's the weather like on Mars?" },
    { who: 'avatar', text: 'Cold and dusty, with thin air.' },
  ]);
  assert.equal(await page.locator('#history-list > li').count(), 2);

  // An utterance the recognizer found nothing in: plain words, back to listening.
  send({ type: 'user_speech', state: 'started' });
  send({ type: 'user_speech', state: 'stopped', duration_ms: 300 });
  send({ type: 'error', code: 'nothing_heard', message: 'the recognizer returned no words' });
  await until('nothing_heard shown', async () => (await dbg('errors')).some((e) => e.startsWith('No words were recognized')));
  assert.equal(await dbg('micState'), 'listening');

  // A typed prompt goes into the history too.
  await page.fill('#prompt', 'And at night?');
  await page.click('#send');
  await until('typed in history', async () => (await dbg('history')).length === 3);

  if (process.env.MIC_SCREENSHOT_PATH) {
    send({ type: 'user_speech', state: 'started' });
    await until('hearing', async () => (await dbg('micState')) === 'hearing');
    await until('the tone in the meter', async () => (await dbg('micLevelDb')) > -20);
    await page.screenshot({ path: process.env.MIC_SCREENSHOT_PATH, fullPage: true });
    send({ type: 'user_speech', state: 'stopped', dropped: 'no speech' });
  }

  // WebRTC fails: the page plays HLS and tells the server.
  state.whepHeld.splice(0).forEach((fail) => fail());
  await until('mic start with hls', () => micMessages().some((m) => m.action === 'start' && m.playback === 'hls'));

  // Off: mic stop, no more frames.
  await page.click('#mic');
  await until('mic stop', () => micMessages().at(-1).action === 'stop');
  assert.equal(await dbg('micState'), 'off');
  await sleep(200);
  const n = current().frames.length;
  await sleep(400);
  assert.equal(current().frames.length, n, 'no frames after mic stop');
});

test('push-to-talk: frames only while held (pointer or Space), the mode is remembered', async () => {
  await page.check('input[name="mic-mode"][value="push_to_talk"]');
  assert.equal(await dbg('micMode'), 'push_to_talk');
  const before = micMessages().length;
  const box = await page.locator('#mic').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await until('ptt start', () => micMessages().length > before && micMessages().at(-1).action === 'start');
  assert.deepEqual(micMessages().at(-1), { type: 'mic', action: 'start', mode: 'push_to_talk', playback: 'hls' });
  const f0 = current().frames.length;
  await until('frames while held', () => current().frames.length > f0 + 10);
  await page.mouse.up();
  await until('ptt stop', () => micMessages().at(-1).action === 'stop');
  await sleep(200);
  const f1 = current().frames.length;
  await sleep(400);
  assert.equal(current().frames.length, f1, 'no frames while released');
  assert.equal(await page.isVisible('#mic-close'), true, 'the capture stays open between presses');
  assert.match(await page.textContent('#mic-state'), /hold/);

  // Space on the page talks; Space in the text box types.
  await page.click('h1');
  await page.keyboard.down(' ');
  await until('space start', () => micMessages().at(-1).action === 'start');
  await until('frames while Space is held', () => current().frames.length > f1 + 5);
  await page.keyboard.up(' ');
  await until('space stop', () => micMessages().at(-1).action === 'stop');
  const count = micMessages().length;
  await page.focus('#prompt');
  await page.keyboard.down(' ');
  await sleep(300);
  await page.keyboard.up(' ');
  assert.equal(micMessages().length, count, 'Space in the prompt box is a space');
  assert.equal(await page.inputValue('#prompt'), ' ');

  await page.click('#mic-close');
  assert.equal(await page.isVisible('#mic-meter'), false);
  await page.reload();
  await until('hello after reload', () => dbg('sessionId'));
  assert.equal(await dbg('micMode'), 'push_to_talk');
  assert.equal(await page.isChecked('input[name="mic-mode"][value="push_to_talk"]'), true);
  await page.check('input[name="mic-mode"][value="hands_free"]');
});

test('the mic turns off when the socket closes and works again after the reconnect', async () => {
  await page.click('#mic');
  await until('mic start', () => micMessages().some((m) => m.action === 'start'));
  await until('frames', () => current().frames.length > 5);
  const old = current();
  await old.ws.close({ code: 4000, reason: 'test' });
  await until('off after close', async () => (await dbg('micState')) === 'off');
  await until('reconnected', () => current() !== old && dbg('sessionId'));
  await sleep(500);
  assert.equal(micMessages().length, 0, 'not turned on again by itself');
  await page.click('#mic');
  await until('mic start after reconnect', () => micMessages().some((m) => m.action === 'start'));
  await until('frames after reconnect', () => current().frames.length > 5);
  await page.click('#mic');
});

test('Stop stream turns the mic off (its mic stop first); after Start it is off until clicked', async () => {
  await page.click('#mic');
  await until('mic start', () => micMessages().some((m) => m.action === 'start'));
  const s = current();
  await page.click('#stream-toggle');
  await until('control stop', () => s.json.some((m) => m.type === 'control' && m.action === 'stop'));
  const order = s.json.filter((m) => m.type === 'mic' || m.type === 'control').map((m) => `${m.type} ${m.action}`);
  assert.deepEqual(order.slice(-2), ['mic stop', 'control stop']);
  assert.equal(await dbg('micState'), 'off');
  assert.equal(await page.isDisabled('#mic'), true, 'no mic without a stream');
  const frames = s.frames.length;
  await sleep(400);
  assert.equal(s.frames.length, frames);
  await page.click('#stream-toggle');
  await until('control start', () => s.json.some((m) => m.type === 'control' && m.action === 'start'));
  s.ws.send(JSON.stringify(hello()));
  await until('mic usable again', async () => !(await page.isDisabled('#mic')));
  await sleep(300);
  assert.equal(micMessages(s).at(-1).action, 'stop', 'not started again by itself');
});

test('a server without speech recognition: the button explains instead of opening the mic', async () => {
  state.nextHello = () => hello({ stt: 'none', stt_note: 'set STT_BASE_URL (and STT_API_KEY) to an OpenAI-compatible server' });
  await page.reload();
  await until('hello', () => dbg('sessionId'));
  assert.match(await page.getAttribute('#mic', 'aria-label'), /unavailable/);
  assert.equal(await page.getAttribute('#mic', 'class'), 'btn btn-mic no-stt');
  await page.click('#mic');
  await until('explained', async () => (await dbg('errors')).some((e) => e.includes('set STT_BASE_URL')));
  await sleep(300);
  assert.equal(micMessages().length, 0);
  assert.equal(await dbg('micState'), 'off');
  state.nextHello = hello;
});

test('stt_not_configured from the server turns the mic off with plain words', async () => {
  await page.reload();
  await until('hello', () => dbg('sessionId'));
  await page.click('#mic');
  await until('mic start', () => micMessages().length > 0);
  send({ type: 'error', code: 'stt_not_configured', message: 'no speech recognizer: set STT_BASE_URL' });
  await until('off', async () => (await dbg('micState')) === 'off');
  assert.ok((await dbg('errors')).some((e) => e.startsWith('This server cannot listen')));
});

test('over plain http on another address the page says why the mic cannot open', async (t) => {
  const ip = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
  if (!ip) return t.skip('no non-loopback address');
  const url = `http://${ip}:${http.address().port}/`;
  await page.goto(url);
  await until('hello', () => dbg('sessionId'));
  await page.click('#mic');
  await until('insecure explained', async () => (await dbg('errors')).some((e) => e.includes("'Talking to the avatar over https'")));
  assert.equal(micMessages().length, 0);
});
