// Shared end-to-end harness: start the real talkstream binary on a free port, launch headless
// Chromium (playwright-core), and produce useful failure messages (server output + page console
// + page state). Not a test file itself (node --test only runs *.test.mjs).
//
// Env: TALKSTREAM_BIN (default ../target/debug/talkstream from web/), CHROMIUM_PATH
// (default /usr/bin/chromium).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const webDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const distDir = join(webDir, 'dist');
export const bin = process.env.TALKSTREAM_BIN
  ? resolve(process.env.TALKSTREAM_BIN)
  : resolve(webDir, '../target/debug/talkstream');
export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
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

export function tail(text, n = 60) {
  return text.split('\n').slice(-n).join('\n');
}

/** One server + one browser page. Call start() in before(), stop() in after(). */
export class Harness {
  /** Everything the server printed (stdout + stderr, ANSI stripped). */
  serverOutput = '';
  baseUrl = '';
  server = null;
  hlsDir = '';
  browser = null;
  page = null;
  pageLog = [];

  /** Context for failure messages: what the server and the page said. */
  diagnostics() {
    return `\n--- server output (tail) ---\n${tail(this.serverOutput)}\n--- page console (tail) ---\n${this.pageLog.slice(-40).join('\n')}`;
  }

  async start({ viewport = { width: 900, height: 1000 }, env = {}, chromiumArgs = [] } = {}) {
    assert.ok(existsSync(join(distDir, 'index.html')), `${distDir}/index.html missing: run "npm run build" first`);
    assert.ok(existsSync(bin), `server binary ${bin} not found: build it (cargo build) or set TALKSTREAM_BIN`);
    await this.startServer(env);
    this.browser = await chromium.launch({ executablePath: chromiumPath, args: [...CHROMIUM_ARGS, ...chromiumArgs] });
    const context = await this.browser.newContext({ viewport });
    this.page = await context.newPage();
    this.page.on('console', (m) => this.pageLog.push(`[${m.type()}] ${m.text()}`));
    this.page.on('pageerror', (e) => this.pageLog.push(`[pageerror] ${e.message}`));
  }

  async stop() {
    await this.browser?.close().catch(() => {});
    await this.stopServer();
    if (this.hlsDir) rmSync(this.hlsDir, { recursive: true, force: true });
  }

  startServer(env) {
    this.hlsDir = mkdtempSync(join(tmpdir(), 'talkstream-e2e-hls-'));
    const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--hls-dir', this.hlsDir, '--static-dir', distDir];
    const server = spawn(bin, args, {
      cwd: webDir,
      // Admission by measured load is tested on its own (crates/server/tests/admission.rs); here a
      // busy CI machine must not turn a page's session away.
      env: { ...process.env, LOG_LEVEL: 'info', NO_COLOR: '1', LOCAL_TTS_ENGINE: 'espeak', MAX_MEDIA_LOAD: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.server = server;
    return new Promise((resolvePort, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`server did not print "listening on http://127.0.0.1:<port>" within 30 s${this.diagnostics()}`));
      }, 30000);
      const onData = (chunk) => {
        this.serverOutput += stripAnsi(chunk.toString());
        const m = this.serverOutput.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
        if (m && !this.baseUrl) {
          clearTimeout(timer);
          this.baseUrl = `http://127.0.0.1:${m[1]}`;
          resolvePort(this.baseUrl);
        }
      };
      server.stdout.on('data', onData);
      server.stderr.on('data', onData);
      server.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot start ${bin}: ${e.message}${this.diagnostics()}`));
      });
      // 'close', not 'exit': by then all of the server's output has been read
      server.on('close', (code, signal) => {
        if (!this.baseUrl) {
          clearTimeout(timer);
          reject(new Error(`server exited early (code ${code}, signal ${signal})${this.diagnostics()}`));
        }
      });
    });
  }

  async stopServer() {
    const server = this.server;
    if (!server || server.exitCode !== null || server.signalCode !== null) return;
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGINT');
    const killed = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
    if (!killed) {
      server.kill('SIGKILL');
      await exited;
    }
  }

  /** A JSON summary of the page's state, for failure messages. */
  async pageState() {
    return this.page
      .evaluate(() => {
        const t = window.__talkstream;
        const v = document.querySelector('video');
        return JSON.stringify({
          state: t?.state,
          stage: t?.stage,
          sessionId: t?.sessionId,
          playlist: t?.playlist,
          errors: t?.errors,
          fatalHlsErrors: t?.fatalHlsErrors,
          statuses: t?.statuses,
          captionsShown: t?.captionsShown,
          captionsMissed: t?.captionsMissed,
          waitingEvents: t?.waitingEvents,
          metrics: t?.metrics,
          events: t?.events?.slice(-12),
          playingDate: t?.hls?.playingDate?.getTime?.() ?? null,
          currentTime: v?.currentTime,
          readyState: v?.readyState,
          paused: v?.paused,
          videoError: v?.error?.message,
        });
      })
      .catch((err) => `(page state unavailable: ${err.message})`);
  }

  /**
   * Video stalls (not initial buffering) that began at or after `since` (performance.now() ms)
   * and lasted longer than `maxMs`; a stall still in progress counts too.
   */
  async longStalls(since, maxMs) {
    const { stalls, stalledSince, now } = await this.page.evaluate(() => ({
      stalls: window.__talkstream.waitingEvents,
      stalledSince: window.__talkstream.stalledSince,
      now: performance.now(),
    }));
    const long = stalls.filter((s) => !s.startup && s.t >= since && s.duration > maxMs);
    if (stalledSince !== null && stalledSince >= since && now - stalledSince > maxMs) {
      long.push({ t: stalledSince, duration: now - stalledSince, ongoing: true });
    }
    return long;
  }

  /** Wait until `fn` (run in the page) returns truthy; fail with diagnostics otherwise. */
  async waitInPage(what, fn, arg, timeout = 30000) {
    try {
      return await this.page.waitForFunction(fn, arg, { timeout, polling: 100 });
    } catch (e) {
      throw new Error(`timed out waiting for ${what}: ${e.message}\npage state: ${await this.pageState()}${this.diagnostics()}`);
    }
  }
}

/**
 * Install sound and lip probes in the page (after the video plays): `window.__probe` records
 * the level of the audio the <video> plays (`levels`: [t, rms] every few ms; `audioAt`: when it
 * became loud) and the drawn avatar's mouth in every presented frame (`mouth`: [t, dark pixels];
 * `lipsAt`: when it opened). Times are the page's performance.now(). Works on both transports:
 * WebRTC's MediaStream is analysed directly, HLS through captureStream().
 */
export async function installAvProbe(page) {
  await page.evaluate(() => {
    const video = document.querySelector('video');
    const probe = { audioAt: [], lipsAt: [], levels: [], mouth: [], idleDark: null };
    window.__probe = probe;
    const ctx = new AudioContext();
    const stream = video.srcObject instanceof MediaStream ? video.srcObject : video.captureStream();
    const src = ctx.createMediaStreamSource(stream);
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
      const t = performance.now();
      probe.levels.push([t, rms]);
      if (probe.levels.length > 20000) probe.levels.splice(0, 5000);
      if (rms > 0.02 && !loud) probe.audioAt.push(t);
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
        probe.mouth.push([now, dark]);
        if (probe.mouth.length > 5000) probe.mouth.splice(0, 1000);
        const isOpen = dark > probe.idleDark + 40;
        if (isOpen && !open) probe.lipsAt.push(now);
        open = isOpen;
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  });
}

/**
 * With the probe installed: wait until the voice is loud, click Interrupt, and return the click's
 * `performance.now()`; `silenceAfter(h, t)` then says how long the voice went on after it.
 */
export async function interruptWhileLoud(h) {
  await h.waitInPage(
    'a loud moment',
    () => {
      const l = window.__probe.levels;
      return l.length > 0 && l[l.length - 1][1] > 0.02;
    },
    undefined,
    10000,
  );
  return h.page.evaluate(() => {
    const t = performance.now();
    document.getElementById('interrupt').click();
    return t;
  });
}

/** ms from `clickedAt` to the last loud audio sample after it (0 if none). */
export function silenceAfter(h, clickedAt) {
  return h.page.evaluate((t0) => {
    const loud = window.__probe.levels.filter(([t, rms]) => t >= t0 && rms > 0.02);
    return loud.length ? loud[loud.length - 1][0] - t0 : 0;
  }, clickedAt);
}
