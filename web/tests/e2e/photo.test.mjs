// End-to-end "Use my photo" against the real server: a non-image file is refused with a clear
// message and the session goes on; a face-api demo photo (MIT, in node_modules) is chosen through
// the file input, its 68 landmarks are found in the page (face-api with the weights the server
// serves from dist/models), a mouth corner is dragged with the mouse and the sent landmarks
// follow; "Use this photo" sends it, the server applies it, the stream shows that face and its
// mouth moves while a prompt is spoken; "Back to the default avatar" undoes it.
//
//   npm run build && node --test tests/e2e/photo.test.mjs
//
// Env: PHOTO_SAMPLE (default sample2.jpg of @vladmandic/face-api/demo), PHOTO_SCREENSHOT_PATH (a
// PNG of the editor with the photo). PHOTO_E2E_ADVERTISE=1 adds `"portraits":"session"` to a
// hello that lacks it (a server from before the portrait protocol): only to try the page's part,
// the server then refuses the photo and the later steps fail.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Harness, webDir } from './harness.mjs';

const SAMPLE = join(webDir, 'node_modules/@vladmandic/face-api/demo', process.env.PHOTO_SAMPLE || 'sample2.jpg');
/** Detection in headless Chromium's software WebGL on a busy 2-core machine takes a while. */
const DETECT_TIMEOUT_MS = 180000;

const h = new Harness();
let page;
/** Every JSON message the page sent on /session, in order. */
const sent = [];

const photo = (expr) => page.evaluate(`window.__talkstream.photo.${expr}`);
const lastSent = (type) => sent.filter((m) => m.type === type).at(-1);

/**
 * Mean absolute luminance difference between the <video>'s current frame and the base64 image
 * `image`, over `box` (stream pixels); `image: null` compares with `window.__e2eFrame` instead.
 * With `keep`, the frame is kept as `window.__e2eFrame`.
 */
function frameDiff(image, box, keep = false, drawn = false) {
  return page.evaluate(
    async ({ image, box, keep, drawn }) => {
      const v = document.querySelector('video');
      const w = v.videoWidth;
      const hgt = v.videoHeight;
      const c = document.createElement('canvas');
      c.width = w;
      c.height = hgt;
      const g = c.getContext('2d', { willReadFrequently: true });
      g.drawImage(v, 0, 0);
      // `drawn`: the frame kept by keepDrawnFrame() (the drawn avatar, before the photo was sent).
      const frame = drawn ? window.__e2eDrawn : g.getImageData(0, 0, w, hgt);
      if (keep) window.__e2eFrame = frame;
      let ref;
      if (image) {
        const bytes = Uint8Array.from(atob(image), (ch) => ch.charCodeAt(0));
        const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/jpeg' }));
        g.drawImage(bmp, 0, 0, w, hgt);
        ref = g.getImageData(0, 0, w, hgt);
      } else {
        ref = window.__e2eFrame;
      }
      const sx = w / 512;
      const sy = hgt / 512;
      let sum = 0;
      let n = 0;
      for (let y = Math.round(box.y0 * sy); y < Math.round(box.y1 * sy); y++) {
        for (let x = Math.round(box.x0 * sx); x < Math.round(box.x1 * sx); x++) {
          const i = (y * w + x) * 4;
          const la = 0.299 * frame.data[i] + 0.587 * frame.data[i + 1] + 0.114 * frame.data[i + 2];
          const lb = 0.299 * ref.data[i] + 0.587 * ref.data[i + 1] + 0.114 * ref.data[i + 2];
          sum += Math.abs(la - lb);
          n++;
        }
      }
      return sum / n;
    },
    { image, box, keep, drawn },
  );
}

/** Keep the video's current frame (the drawn avatar) to compare the photo with later. */
function keepDrawnFrame() {
  return page.evaluate(() => {
    const v = document.querySelector('video');
    const c = document.createElement('canvas');
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0);
    window.__e2eDrawn = g.getImageData(0, 0, c.width, c.height);
  });
}

/** The bounding box of landmarks `from..to` (inclusive), grown by `pad` px. */
function boxOf(pts, from, to, pad) {
  const sel = pts.slice(from, to + 1);
  return {
    x0: Math.max(0, Math.min(...sel.map((p) => p[0])) - pad),
    y0: Math.max(0, Math.min(...sel.map((p) => p[1])) - pad),
    x1: Math.min(512, Math.max(...sel.map((p) => p[0])) + pad),
    y1: Math.min(512, Math.max(...sel.map((p) => p[1])) + pad),
  };
}

const mean = (pts, from, to) => {
  const sel = pts.slice(from, to + 1);
  return [sel.reduce((s, p) => s + p[0], 0) / sel.length, sel.reduce((s, p) => s + p[1], 0) / sel.length];
};

describe('"Use my photo"', () => {
  before(async () => {
    await h.start();
    page = h.page;
    await page.routeWebSocket(/\/session/, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((m) => {
        if (typeof m === 'string') sent.push(JSON.parse(m));
        server.send(m);
      });
      server.onMessage((m) => {
        if (typeof m === 'string' && process.env.PHOTO_E2E_ADVERTISE === '1') {
          const o = JSON.parse(m);
          if (o.type === 'hello' && o.portraits === undefined) {
            o.portraits = 'session';
            o.portrait_max_bytes = 2 * 1024 * 1024;
            m = JSON.stringify(o);
          }
        }
        ws.send(m);
      });
    });
    await page.goto(h.baseUrl);
    await h.waitInPage('hello (sessionId)', () => !!window.__talkstream?.sessionId, undefined, 20000);
    await h.waitInPage('the video to play', () => document.querySelector('video').currentTime > 0);
  });

  after(() => h.stop());

  test('the server offers photos and the button shows', async () => {
    const hello = await page.evaluate(() => window.__talkstream.events.find((e) => e?.type === 'hello'));
    assert.ok(['session', 'default'].includes(hello.portraits), `hello.portraits: ${JSON.stringify(hello.portraits)}`);
    assert.ok(Number.isInteger(hello.portrait_max_bytes) && hello.portrait_max_bytes > 0, `portrait_max_bytes: ${hello.portrait_max_bytes}`);
    assert.ok(await page.locator('#photo-use').isVisible(), '"Use my photo" is not shown');
    assert.ok(await page.locator('#photo-editor').isHidden(), 'the editor shows before a photo was chosen');
  });

  test('a file that is not an image gets a clear message and the session goes on', async () => {
    const session = await page.evaluate(() => window.__talkstream.sessionId);
    await page.setInputFiles('#photo-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a photo at all\n') });
    await h.waitInPage('the refusal', () => window.__talkstream.photo.state === 'failed', undefined, 10000);
    const msg = await page.locator('#photo-msg').textContent();
    assert.equal(msg, '"notes.txt" is not a JPEG, PNG or WebP image.');
    assert.ok(await page.locator('#photo-msg').isVisible());
    assert.ok(await page.locator('#photo-apply').isHidden(), '"Use this photo" offered for a refused file');
    assert.equal(await page.locator('#photo-cancel').textContent(), 'Close');
    await page.click('#photo-cancel');
    assert.ok(await page.locator('#photo-editor').isHidden());
    assert.equal(lastSent('portrait'), undefined, 'a portrait message was sent for a text file');

    // A JPEG header on garbage: sniffed as a photo, refused when it does not decode.
    const fake = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(200, 7)]);
    await page.setInputFiles('#photo-file', { name: 'broken.jpg', mimeType: 'image/jpeg', buffer: fake });
    await h.waitInPage('the refusal', () => window.__talkstream.photo.state === 'failed' && document.getElementById('photo-msg').textContent.includes('broken.jpg'), undefined, 10000);
    assert.equal(await page.locator('#photo-msg').textContent(), '"broken.jpg" could not be read as an image.');
    await page.click('#photo-cancel');

    // The session is the same and still answers.
    assert.equal(await page.evaluate(() => window.__talkstream.sessionId), session);
    const n = await page.evaluate(() => window.__talkstream.statuses.length);
    await page.fill('#prompt', 'Still here?');
    await page.press('#prompt', 'Enter');
    await h.waitInPage('the avatar to speak', (k) => window.__talkstream.statuses.slice(k).includes('speaking'), n, 20000);
    assert.deepEqual(await page.evaluate(() => window.__talkstream.errors), []);
  });

  test('finds the face, lets a point be dragged, sends photo and landmarks', async () => {
    await h.waitInPage('the avatar to be idle', () => window.__talkstream.stage === 'idle' || window.__talkstream.stage === 'complete', undefined, 30000);
    const stream = await page.evaluate(() => window.__talkstream.events.find((e) => e?.type === 'hello').stream);
    const W = stream.width;
    const H = stream.height;
    await page.setInputFiles('#photo-file', SAMPLE);
    await h.waitInPage('the progress line', () => document.getElementById('photo-progress-text').textContent !== '', undefined, 10000);
    await h.waitInPage('detection', () => ['editing', 'failed'].includes(window.__talkstream.photo.state), undefined, DETECT_TIMEOUT_MS);
    assert.equal(await photo('state'), 'editing', `detection failed: ${await page.locator('#photo-msg').textContent()}${h.diagnostics()}`);

    const pts = await photo('points');
    assert.equal(pts.length, 68);
    for (const [i, [x, y]] of pts.entries()) assert.ok(x >= 0 && x <= W - 1 && y >= 0 && y <= H - 1, `point ${i} (${x}, ${y}) outside the ${W}×${H} crop`);
    const eyeR = mean(pts, 36, 41);
    const eyeL = mean(pts, 42, 47);
    const mouth = mean(pts, 48, 67);
    const nose = pts[30];
    assert.ok(eyeR[0] < nose[0] && nose[0] < eyeL[0], `nose ${nose} not between the eyes ${eyeR} ${eyeL}`);
    assert.ok(Math.max(eyeR[1], eyeL[1]) < nose[1] && nose[1] < mouth[1], `eyes ${eyeR} ${eyeL}, nose ${nose}, mouth ${mouth}: not top to bottom`);
    const eyeLine = (eyeR[1] + eyeL[1]) / 2 / H;
    assert.ok(eyeLine > 0.34 && eyeLine < 0.46, `the eyes are at ${(eyeLine * 100).toFixed(0)} % of the crop, not about 40 %`);
    const jaw = Math.hypot(pts[16][0] - pts[0][0], pts[16][1] - pts[0][1]) / W;
    assert.ok(jaw > 0.4 && jaw < 0.6, `the face is ${(jaw * 100).toFixed(0)} % of the crop width, not about 50 %`);
    const notes = await page.locator('#photo-notes li').allTextContents();
    const faces = await photo('faces');
    if (faces > 1) assert.ok(notes.some((n) => n.includes(`${faces} faces found`)), `no note about ${faces} faces: ${JSON.stringify(notes)}`);

    // The overlay draws every point on the canvas where the debug hook says it is.
    const screen = await photo('screenPoints()');
    const rect = await page.locator('#photo-canvas').boundingBox();
    assert.equal(screen.length, 68);
    for (const p of screen) assert.ok(p.x >= rect.x && p.x <= rect.x + rect.width && p.y >= rect.y && p.y <= rect.y + rect.height, 'a point outside the canvas');
    const drawn = await page.evaluate(
      (idx) => {
        const c = document.getElementById('photo-canvas');
        const g = c.getContext('2d');
        return idx.map((i) => {
          const [x, y] = window.__talkstream.photo.points[i];
          return Array.from(g.getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3));
        });
      },
      [8, 30, 37, 44, 51, 57],
    );
    for (const rgb of drawn) assert.ok(rgb.every((v) => v > 200), `no point drawn at a landmark (pixel ${rgb})`);

    if (process.env.PHOTO_SCREENSHOT_PATH) await page.locator('#photo-editor').screenshot({ path: resolve(process.env.PHOTO_SCREENSHOT_PATH) });

    // Drag the right mouth corner (picture's right, point 54) 6 px right and 4 px down.
    await page.locator('#photo-canvas').scrollIntoViewIfNeeded();
    const detected = await photo('detected');
    const k = W / (await page.locator('#photo-canvas').boundingBox()).width; // crop pixels per CSS pixel
    const corner = (await photo('screenPoints()'))[54];
    await page.mouse.move(corner.x, corner.y);
    await page.mouse.down();
    await page.mouse.move(corner.x + 3, corner.y + 2, { steps: 3 });
    await page.mouse.move(corner.x + 6, corner.y + 4, { steps: 3 });
    await page.mouse.up();
    const moved = await photo('points');
    assert.ok(Math.abs(moved[54][0] - (detected[54][0] + 6 * k)) < 0.75, `point 54 x ${moved[54][0]}, expected ${detected[54][0] + 6 * k}`);
    assert.ok(Math.abs(moved[54][1] - (detected[54][1] + 4 * k)) < 0.75, `point 54 y ${moved[54][1]}, expected ${detected[54][1] + 4 * k}`);
    for (let i = 0; i < 68; i++) if (i !== 54) assert.deepEqual(moved[i], detected[i], `point ${i} moved too`);

    // The stream before the photo is sent (the server applies it within a frame or two).
    await keepDrawnFrame();
    await page.click('#photo-apply');
    await h.waitInPage('the portrait message', () => window.__talkstream.photo.sent !== null, undefined, 10000);
    const start = Date.now();
    while (!lastSent('portrait') && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 50));
    const msg = lastSent('portrait');
    assert.ok(msg, 'no portrait message on the socket');
    assert.deepEqual(Object.keys(msg).sort(), ['image', 'landmarks', 'type']);
    assert.equal(msg.landmarks.length, 68);
    assert.ok(Math.abs(msg.landmarks[54][0] - moved[54][0]) <= 0.005 && Math.abs(msg.landmarks[54][1] - moved[54][1]) <= 0.005, `sent point 54 ${msg.landmarks[54]} vs dragged ${moved[54]}`);
    assert.ok(Math.abs(msg.landmarks[48][0] - detected[48][0]) <= 0.005, 'the other mouth corner changed');
    const bytes = Buffer.from(msg.image, 'base64');
    assert.equal(bytes.toString('base64'), msg.image, 'not standard base64');
    assert.deepEqual([...bytes.subarray(0, 3)], [0xff, 0xd8, 0xff], 'the image is not a JPEG');
    const hello = await page.evaluate(() => window.__talkstream.events.find((e) => e?.type === 'hello'));
    assert.ok(bytes.length <= hello.portrait_max_bytes, `${bytes.length} bytes > portrait_max_bytes ${hello.portrait_max_bytes}`);
    const dims = await page.evaluate(async (b64) => {
      const bmp = await createImageBitmap(new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], { type: 'image/jpeg' }));
      return [bmp.width, bmp.height];
    }, msg.image);
    assert.deepEqual(dims, [W, H]);
  });

  test('the server applies the photo and the stream shows that face, speaking', async () => {
    const msg = lastSent('portrait');
    assert.ok(msg, 'the previous test sent no photo');
    const upper = boxOf(msg.landmarks, 17, 35, 6);
    const mouthBox = boxOf(msg.landmarks, 48, 67, 8);
    // the drawn avatar, kept just before the photo was sent
    const before = await frameDiff(msg.image, upper, false, true);

    // applied, or back in the editor with the server's refusal (or error) shown
    await h.waitInPage('the server to answer the photo', () => ['applied', 'editing'].includes(window.__talkstream.photo.state), undefined, 30000);
    const answers = await photo('messages');
    const shown = await page.locator('#photo-msg').textContent();
    assert.equal(await photo('state'), 'applied', `the photo was not applied: the page says "${shown}"; portrait answers ${JSON.stringify(answers)}`);
    assert.equal(answers.at(-1).state, 'applied', `the server answered ${JSON.stringify(answers)}`);
    assert.equal(answers[0].state, 'checking', `no "checking" first: ${JSON.stringify(answers)}`);
    assert.ok(await page.locator('#photo-editor').isHidden(), 'the editor is still open');
    assert.match(await page.locator('#photo-status').textContent(), /Your photo is the avatar/);
    assert.ok(await page.locator('#photo-reset').isVisible(), '"Back to the default avatar" is not shown');

    // The stream shows the sent face: its upper part (brows, eyes, nose) matches the crop.
    await h.waitInPage('frames of the photo', () => document.querySelector('video').currentTime > 0);
    let after = Infinity;
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline && after > 12) {
      after = await frameDiff(msg.image, upper);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(after < 12 && after < before / 2, `upper face: mean |Δ| ${after.toFixed(1)} to the photo now, ${before.toFixed(1)} before (the drawn avatar)`);

    // Speaking moves the mouth region (against a frame at rest) more than the nose, which only the
    // small head motion moves (the eyes are left out: they blink).
    const n = await page.evaluate(() => window.__talkstream.statuses.length);
    await frameDiff(null, mouthBox, true);
    await page.fill('#prompt', 'Hello there, this is my own face speaking now.');
    await page.press('#prompt', 'Enter');
    await h.waitInPage('speaking', (k) => window.__talkstream.statuses.slice(k).includes('speaking'), n, 20000);
    const noseBox = boxOf(msg.landmarks, 27, 35, 4);
    let mouthMax = 0;
    let noseMax = 0;
    const until = Date.now() + 6000;
    while (Date.now() < until) {
      mouthMax = Math.max(mouthMax, await frameDiff(null, mouthBox));
      noseMax = Math.max(noseMax, await frameDiff(null, noseBox));
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(mouthMax > 6, `the mouth region changed at most ${mouthMax.toFixed(1)} while speaking`);
    assert.ok(noseMax < mouthMax, `the nose changed as much (${noseMax.toFixed(1)}) as the mouth (${mouthMax.toFixed(1)})`);
  });

  test('"Back to the default avatar" returns to the drawn avatar', async () => {
    const msg = lastSent('portrait');
    assert.ok(await page.locator('#photo-reset').isVisible(), 'no "Back to the default avatar": the photo was not applied');
    await page.click('#photo-reset');
    await h.waitInPage('the reset', () => window.__talkstream.photo.messages.some((m) => m.state === 'reset'), undefined, 15000);
    assert.deepEqual(lastSent('portrait_reset'), { type: 'portrait_reset' });
    assert.ok(await page.locator('#photo-reset').isHidden());
    const upper = boxOf(msg.landmarks, 17, 35, 6);
    let diff = 0;
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline && diff < 24) {
      diff = await frameDiff(msg.image, upper);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(diff >= 24, `the stream still looks like the photo (mean |Δ| ${diff.toFixed(1)})`);
  });
});
