// "Use my photo", the page's side of the conversation with the server, against the real server
// with the portrait messages answered by the test: the WebSocket is routed through Playwright,
// hello gets `"portraits":"session"` and the page's `portrait` / `portrait_reset` messages are
// answered here (checking → refused, then checking → applied with notes, then reset) instead of
// reaching the server. What the server does with a photo is photo.test.mjs's part.
//
//   npm run build && node --test tests/e2e/photo_page.test.mjs

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Harness, webDir } from './harness.mjs';

const SAMPLE = join(webDir, 'node_modules/@vladmandic/face-api/demo/sample6.jpg');
const DETECT_TIMEOUT_MS = 180000;
const NOTE = 'The mouth is open in the photo: its teeth are reused.';

const h = new Harness();
let page;
const sent = [];
/** what hello says about portraits on the next connection */
let mode = 'session';
/** the answers to the next `portrait` messages, in turn */
const answers = [
  [{ state: 'checking' }, { state: 'refused', reason: 'the lips cross each other' }],
  [{ state: 'checking' }, { state: 'applied', width: 512, height: 512, default: false, notes: [NOTE] }],
];

const photo = (expr) => page.evaluate(`window.__talkstream.photo.${expr}`);
const text = (sel) => page.locator(sel).textContent();

describe('"Use my photo" in the page (portrait answers scripted)', () => {
  before(async () => {
    await h.start();
    page = h.page;
    await page.routeWebSocket(/\/session/, (ws) => {
      const server = ws.connectToServer();
      const reply = (o) => ws.send(JSON.stringify({ type: 'portrait', ...o }));
      ws.onMessage((m) => {
        const o = typeof m === 'string' ? JSON.parse(m) : null;
        if (o) sent.push(o);
        if (o?.type === 'portrait') for (const a of answers.shift() ?? []) reply(a);
        else if (o?.type === 'portrait_reset') reply({ state: 'reset' });
        else server.send(m);
      });
      server.onMessage((m) => {
        if (typeof m === 'string') {
          const o = JSON.parse(m);
          if (o.type === 'hello') {
            o.portraits = mode;
            o.portrait_max_bytes = 1024 * 1024;
            m = JSON.stringify(o);
          }
        }
        ws.send(m);
      });
    });
    await page.goto(h.baseUrl);
    await h.waitInPage('hello (sessionId)', () => !!window.__talkstream?.sessionId, undefined, 20000);
  });

  after(() => h.stop());

  test('a refusal keeps the editor open with the reason; after applying, the status, notes and the way back', async () => {
    assert.ok(await page.locator('#photo-use').isVisible());
    await page.setInputFiles('#photo-file', SAMPLE);
    await h.waitInPage('detection', () => ['editing', 'failed'].includes(window.__talkstream.photo.state), undefined, DETECT_TIMEOUT_MS);
    assert.equal(await photo('state'), 'editing', await text('#photo-msg'));

    // Press point 8 (the chin) without moving: it becomes the arrow keys' point.
    await page.locator('#photo-canvas').scrollIntoViewIfNeeded();
    const before = await photo('points');
    const chin = (await photo('screenPoints()'))[8];
    await page.mouse.click(chin.x, chin.y);
    await page.keyboard.press('Shift+ArrowDown');
    await page.keyboard.press('ArrowLeft');
    const after = await photo('points');
    assert.deepEqual(after[8], [before[8][0] - 1, before[8][1] + 10], 'the arrow keys did not move the chin point');

    // A finger drags the left mouth corner (point 48) 8 px left, starting 12 px left of it (away
    // from the other lip points): within the touch hit radius (22 px), outside the mouse's (10 px).
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: true, maxTouchPoints: 1 });
    const m48 = (await photo('screenPoints()'))[48];
    const touch = (type, x, y) => cdp.send('Input.dispatchTouchEvent', { type, touchPoints: type === 'touchEnd' ? [] : [{ x, y }] });
    await touch('touchStart', m48.x - 12, m48.y);
    for (let i = 1; i <= 4; i++) await touch('touchMove', m48.x - 12 - 2 * i, m48.y);
    await touch('touchEnd');
    const k = 512 / (await page.locator('#photo-canvas').boundingBox()).width;
    const touched = await photo('points');
    assert.ok(Math.abs(touched[48][0] - (after[48][0] - 8 * k)) < 0.75, `touch: point 48 x ${touched[48][0]}, expected ${after[48][0] - 8 * k}`);
    assert.ok(Math.abs(touched[48][1] - after[48][1]) < 0.75, 'touch: point 48 moved vertically');
    await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: false });
    await cdp.detach();
    // the mouse at the same 12 px misses it
    const m48b = (await photo('screenPoints()'))[48];
    await page.mouse.move(m48b.x - 12, m48b.y);
    await page.mouse.down();
    await page.mouse.move(m48b.x - 30, m48b.y, { steps: 3 });
    await page.mouse.up();
    assert.deepEqual((await photo('points'))[48], touched[48], 'the mouse grabbed a point 12 px away');

    await page.click('#photo-apply');
    await h.waitInPage('the refusal in the editor', () => window.__talkstream.photo.messages.some((m) => m.state === 'refused') && window.__talkstream.photo.state === 'editing', undefined, 15000);
    assert.equal(await text('#photo-msg'), 'The server refused the photo: the lips cross each other');
    assert.ok(await page.locator('#photo-canvas').isVisible(), 'the editor closed on a refusal');
    assert.ok(await page.locator('#photo-apply').isEnabled(), '"Use this photo" stays disabled after a refusal');
    const kept = await photo('points');
    assert.deepEqual(kept[8], after[8], 'the points changed on a refusal');
    const first = sent.filter((m) => m.type === 'portrait')[0];
    assert.deepEqual(first.landmarks[8], [Math.round(after[8][0] * 100) / 100, Math.round(after[8][1] * 100) / 100]);

    await page.click('#photo-apply');
    await h.waitInPage('applied', () => window.__talkstream.photo.state === 'applied', undefined, 15000);
    assert.ok(await page.locator('#photo-editor').isHidden());
    assert.equal(await text('#photo-status'), 'Your photo is the avatar (512×512).');
    const warnings = await page.locator('#photo-warnings li').allTextContents();
    assert.ok(warnings.includes(NOTE), `the server's note is not shown: ${JSON.stringify(warnings)}`);
    assert.ok(warnings.some((w) => /faces found: using the largest/.test(w)), `the page's note is not shown: ${JSON.stringify(warnings)}`);
    assert.ok(await page.locator('#photo-reset').isVisible());

    await page.click('#photo-reset');
    await h.waitInPage('reset', () => window.__talkstream.photo.messages.some((m) => m.state === 'reset'), undefined, 10000);
    assert.deepEqual(sent.at(-1), { type: 'portrait_reset' });
    assert.equal(await text('#photo-status'), 'Back to the default avatar.');
    assert.ok(await page.locator('#photo-reset').isHidden());
    assert.ok(await page.locator('#photo-warnings').isHidden());
  });

  test('Cancel drops the photo; the button hides when the server turns photos off', async () => {
    const count = sent.filter((m) => m.type === 'portrait').length;
    await page.setInputFiles('#photo-file', SAMPLE);
    // (once warm, detection takes well under a second here: no chance to cancel it midway)
    await h.waitInPage('detection', () => ['editing', 'failed'].includes(window.__talkstream.photo.state), undefined, DETECT_TIMEOUT_MS);
    assert.equal(await page.locator('#photo-cancel').textContent(), 'Cancel');
    await page.click('#photo-cancel');
    assert.ok(await page.locator('#photo-editor').isHidden());
    assert.equal(await photo('state'), 'idle');
    assert.equal(sent.filter((m) => m.type === 'portrait').length, count);

    mode = 'off';
    const old = await page.evaluate(() => window.__talkstream.sessionId);
    await page.evaluate(() => window.__talkstream.debugCloseSocket());
    await h.waitInPage('a new session', (o) => !!window.__talkstream.sessionId && window.__talkstream.sessionId !== o, old, 20000);
    assert.ok(await page.locator('#photo-use').isHidden(), '"Use my photo" shown with portraits "off"');
  });
});
