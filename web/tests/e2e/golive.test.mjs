// End-to-end: going live in the page. The real server publishes each session to a real nginx
// with Debian's RTMP module (started here on loopback); the page shows ON AIR, then "Not live:
// retrying" with the reason when nginx is killed, and ON AIR again once it is back, while its own
// stream keeps playing. The stream key (the session id here) never reaches the page.
// GOLIVE_SCREENSHOT_PATH saves the page while live.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Harness } from './harness.mjs';

const NGINX = '/usr/sbin/nginx';
const RTMP_MODULE = '/usr/lib/nginx/modules/ngx_rtmp_module.so';

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** nginx-rtmp in its own folder on `port`; resolves once it accepts connections. */
async function startNginx(dir, port) {
  assert.ok(existsSync(NGINX) && existsSync(RTMP_MODULE), 'needs nginx + libnginx-mod-rtmp (scripts/test.sh installs them)');
  mkdirSync(join(dir, 'logs'), { recursive: true });
  writeFileSync(
    join(dir, 'nginx.conf'),
    `load_module ${RTMP_MODULE};\ndaemon off;\nmaster_process off;\nworker_processes 1;\n` +
      `error_log ${dir}/logs/error.log info;\npid ${dir}/nginx.pid;\nevents { worker_connections 64; }\n` +
      `rtmp { server { listen 127.0.0.1:${port}; application live { live on; } } }\n`,
  );
  const child = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
  const deadline = Date.now() + 10000;
  for (;;) {
    const up = await new Promise((resolve) => {
      const s = new Socket();
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
      s.connect(port, '127.0.0.1');
    });
    if (up) return child;
    assert.ok(child.exitCode === null, 'nginx exited at start');
    assert.ok(Date.now() < deadline, 'nginx did not listen within 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopNginx(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

describe('going live (RTMP publishing) in the page', () => {
  const h = new Harness();
  const dir = mkdtempSync(join(tmpdir(), 'talkstream-e2e-nginx-'));
  let nginx = null;
  let port = 0;

  before(async () => {
    port = await freePort();
    nginx = await startNginx(dir, port);
    await h.start({ env: { RTMP_PUBLISH_URL: `rtmp://127.0.0.1:${port}/live/{session_id}` } });
  });
  after(async () => {
    await h.stop();
    await stopNginx(nginx);
    rmSync(dir, { recursive: true, force: true });
  });

  test('ON AIR while nginx takes the stream, retrying with the reason when it goes, ON AIR again when it is back', async () => {
    const { page } = h;
    await page.goto(`${h.baseUrl}/`);
    await h.waitInPage('hello', () => !!window.__talkstream?.sessionId, undefined, 20000);
    await h.waitInPage('the ON AIR badge', () => document.getElementById('publish')?.textContent === 'ON AIR', undefined, 15000);
    const live = await page.evaluate(() => ({
      hidden: document.getElementById('publish').hidden,
      title: document.getElementById('publish').title,
      id: window.__talkstream.sessionId,
    }));
    assert.equal(live.hidden, false);
    assert.equal(live.title, `Publishing to rtmp://127.0.0.1:${port}/live`);
    if (process.env.GOLIVE_SCREENSHOT_PATH) await page.screenshot({ path: process.env.GOLIVE_SCREENSHOT_PATH });

    // The page plays its own stream before the ingest goes away.
    await h.waitInPage('the page playing', () => window.__talkstream.playingSince !== null, undefined, 20000);
    await stopNginx(nginx);
    await h.waitInPage('the retrying badge', () => document.getElementById('publish').dataset.state === 'retrying', undefined, 15000);
    const retrying = await page.evaluate(() => ({
      text: document.getElementById('publish').textContent,
      title: document.getElementById('publish').title,
      playing: window.__talkstream.playingSince !== null,
      errors: window.__talkstream.errors,
    }));
    assert.match(retrying.text, /^Not live: retrying in \d+ s$/);
    assert.ok(retrying.title.length > `rtmp://127.0.0.1:${port}/live`.length, retrying.title);
    assert.equal(retrying.playing, true, 'the page keeps playing its own stream');
    assert.deepEqual(retrying.errors, [], 'an ingest outage is not an error of the session');

    nginx = await startNginx(dir, port);
    await h.waitInPage('ON AIR again', () => document.getElementById('publish').dataset.state === 'live', undefined, 40000);
    const messages = await page.evaluate(() => JSON.stringify(window.__talkstream.publish));
    assert.ok(!messages.includes(live.id), `the stream key reached the page: ${messages}`);
  });
});
