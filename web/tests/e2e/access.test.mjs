// End-to-end: a server with ACCESS_TOKEN (and ACCESS_TOKEN_PLAYBACK) set. The page asks for the
// token, refuses a wrong one, plays and speaks with the right one (the player sends the token with
// every HLS request), takes a token from the URL fragment, breaks no rule of the server's
// Content-Security-Policy, and a page on another origin cannot open a session even with the token.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Harness } from './harness.mjs';

const TOKEN = 'e2e-token-7f3a9c1d52b8';
const h = new Harness();
let page;
const waitInPage = (...args) => h.waitInPage(...args);

describe('the page on a server with an access token', () => {
  before(async () => {
    await h.start({ env: { ACCESS_TOKEN: TOKEN, ACCESS_TOKEN_PLAYBACK: 'true' } });
    page = h.page;
    await page.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}:${e.columnNumber}`);
      });
    });
  });

  after(() => h.stop());

  test('asks for the token, refuses a wrong one, plays and speaks with the right one', async () => {
    await page.goto(h.baseUrl);
    await waitInPage('the token form', () => !document.getElementById('token-form').hidden);
    assert.equal(await page.evaluate(() => window.__talkstream.access), 'ask');
    assert.equal(await page.evaluate(() => window.__talkstream.sessionId), null, 'no session without a token');

    await page.fill('#token-input', 'not-the-right-token-123');
    await page.click('#token-submit');
    await waitInPage('the wrong-token answer', () => window.__talkstream.access === 'wrong');
    const err = await page.textContent('#token-error');
    assert.match(err, /not right/);

    await page.fill('#token-input', TOKEN);
    await page.click('#token-submit');
    await waitInPage('hello', () => !!window.__talkstream.sessionId, undefined, 20000);
    assert.equal(await page.evaluate(() => document.getElementById('token-form').hidden), true);
    await waitInPage('playback (HLS requests carry the token)', () => document.querySelector('video').currentTime > 0.5);

    await page.fill('#prompt', 'Hello with a token.');
    await page.press('#prompt', 'Enter');
    await waitInPage('the turn to finish', () => window.__talkstream.metrics.length > 0, undefined, 30000);
    assert.ok((await page.evaluate(() => window.__talkstream.statuses)).includes('speaking'));

    const violations = await page.evaluate(() => window.__cspViolations);
    assert.deepEqual(violations, [], `CSP violations: ${JSON.stringify(violations)}${h.diagnostics()}`);
    assert.ok(!h.serverOutput.includes(TOKEN), `the token appears in the server output${h.diagnostics()}`);
  });

  test('takes the token from the URL fragment and keeps it out of the address bar', async () => {
    const fresh = await h.browser.newPage();
    await fresh.goto(`${h.baseUrl}/#token=${TOKEN}`);
    await fresh.waitForFunction(() => !!window.__talkstream?.sessionId, undefined, { timeout: 20000 });
    assert.equal(new URL(fresh.url()).hash, '');
    await fresh.close();
  });

  test('a page on another origin cannot open a session, even with the token', async () => {
    // Another web site: a plain page served from another port is another origin.
    const evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>another site</title>');
    });
    await new Promise((r) => evil.listen(0, '127.0.0.1', r));
    const evilOrigin = `http://127.0.0.1:${evil.address().port}`;
    const port = new URL(h.baseUrl).port;
    const other = await h.browser.newPage();
    try {
      await other.goto(`${evilOrigin}/`);
      const outcome = await other.evaluate(
        ([p, token]) =>
          new Promise((resolve) => {
            const ws = new WebSocket(`ws://127.0.0.1:${p}/session?token=${token}`);
            ws.onopen = () => resolve('opened');
            ws.onerror = () => resolve('refused');
            setTimeout(() => resolve('timeout'), 10000);
          }),
        [port, TOKEN],
      );
      assert.equal(outcome, 'refused');
      const seen = new RegExp(`refused a session.*origin=${evilOrigin.replace(/[.]/g, '\\.')}`);
      for (let i = 0; i < 50 && !seen.test(h.serverOutput); i++) await sleep(100);
      assert.match(h.serverOutput, seen, 'the server refused it (not the browser)');
    } finally {
      await other.close();
      evil.close();
    }
  });
});
