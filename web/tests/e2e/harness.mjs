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

  async start({ viewport = { width: 900, height: 1000 }, env = {} } = {}) {
    assert.ok(existsSync(join(distDir, 'index.html')), `${distDir}/index.html missing: run "npm run build" first`);
    assert.ok(existsSync(bin), `server binary ${bin} not found: build it (cargo build) or set TALKSTREAM_BIN`);
    await this.startServer(env);
    this.browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS });
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
      env: { ...process.env, LOG_LEVEL: 'info', NO_COLOR: '1', ...env },
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

  /** Wait until `fn` (run in the page) returns truthy; fail with diagnostics otherwise. */
  async waitInPage(what, fn, arg, timeout = 30000) {
    try {
      return await this.page.waitForFunction(fn, arg, { timeout, polling: 100 });
    } catch (e) {
      throw new Error(`timed out waiting for ${what}: ${e.message}\npage state: ${await this.pageState()}${this.diagnostics()}`);
    }
  }
}
