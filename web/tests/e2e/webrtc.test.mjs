// End-to-end: WebRTC playback (WHEP) in Chromium with the real page and server. The page plays
// over WebRTC by default (getStats: frames decoded and audio packets keep growing), the voice is
// heard and the mouth moves, Interrupt cuts the voice off (how fast is measured by
// tests/bench/glass_to_glass.mjs, not asserted here: the goal is 200 ms), and when WebRTC cannot connect
// (its UDP address unreachable, or WEBRTC=off) the page plays HLS by itself and says so.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Harness, installAvProbe, interruptWhileLoud, silenceAfter } from './harness.mjs';

const LONG_PROMPT =
  'Once upon a time there was a small lighthouse on a rocky island. Every night its keeper climbed the stairs to light the lamp. ' +
  'Ships far out at sea looked for its beam and steered safely home.';
/** RMS of the received audio above which the voice is audible (silence is exactly 0). */
const LOUD = 0.02;

async function openPage(h, query = '') {
  await h.page.goto(`${h.baseUrl}/${query}`);
  await h.waitInPage('hello', () => !!window.__talkstream?.sessionId, undefined, 20000);
}

async function typePrompt(h, text) {
  await h.page.locator('#prompt').click();
  await h.page.keyboard.type(text, { delay: 0 });
  await h.page.keyboard.press('Enter');
}

const stats = (h) => h.page.evaluate(() => window.__talkstream.webrtcStats());

describe('WebRTC playback', () => {
  const h = new Harness();
  before(() => h.start());
  after(() => h.stop());

  test('plays over WebRTC by default: frames and audio keep arriving, the tag says WebRTC', async () => {
    await openPage(h);
    await h.waitInPage('the WebRTC picture', () => window.__talkstream.transport === 'webrtc' && window.__talkstream.playingSince !== null, undefined, 15000);
    await h.waitInPage('getStats', () => window.__talkstream.webrtcStats().framesDecoded > 0, undefined, 5000);
    const a = await stats(h);
    await h.page.waitForTimeout(2000);
    const b = await stats(h);
    assert.ok(b.framesDecoded - a.framesDecoded >= 25, `frames decoded in 2 s: ${a.framesDecoded} → ${b.framesDecoded}`);
    assert.ok(b.audioPacketsReceived - a.audioPacketsReceived >= 50, `audio packets in 2 s: ${a.audioPacketsReceived} → ${b.audioPacketsReceived}`);
    const page = await h.page.evaluate(() => ({
      tag: document.getElementById('transport').textContent,
      hidden: document.getElementById('transport').hidden,
      hls: window.__talkstream.hls,
      srcObject: document.querySelector('video').srcObject instanceof MediaStream,
      tracks: document.querySelector('video').srcObject?.getTracks().map((t) => t.kind).sort(),
    }));
    assert.deepEqual(page, { tag: 'WebRTC', hidden: false, hls: null, srcObject: true, tracks: ['audio', 'video'] });
    assert.match(h.serverOutput, /WHEP viewer stream=/);
  });

  test('the voice is heard, the mouth moves, and Interrupt cuts the voice off for good', async () => {
    const { page } = h;
    await installAvProbe(page);
    // Idle: silence and a closed mouth.
    await page.waitForTimeout(1000);
    const idle = await page.evaluate(() => ({
      loud: window.__probe.levels.filter(([, rms]) => rms > 0.02).length,
      levels: window.__probe.levels.length,
      mouth: window.__probe.mouth.map(([, d]) => d),
    }));
    assert.ok(idle.levels > 100, `audio level samples: ${idle.levels}`);
    assert.equal(idle.loud, 0, 'loud audio while idle');
    const before = await page.evaluate(() => ({ a: window.__probe.audioAt.length, l: window.__probe.lipsAt.length, m: window.__talkstream.metrics.length }));

    await typePrompt(h, LONG_PROMPT);
    await h.waitInPage(
      'the voice heard and the mouth open',
      ([a, l]) => window.__probe.audioAt.length > a && window.__probe.lipsAt.length > l,
      [before.a, before.l],
      15000,
    );
    // Let the avatar speak a while, then interrupt it mid-sentence while it is loud.
    await page.waitForTimeout(1500);
    const clickedAt = await interruptWhileLoud(h);
    await h.waitInPage('the interrupted turn', (m) => window.__talkstream.metrics.slice(m).some((x) => x.interrupted), before.m, 5000);
    // The answer had many seconds left: after the cut, the voice and the mouth stay still.
    await page.waitForTimeout(3000);
    const r = await page.evaluate((t0) => {
      const after = window.__probe.levels.filter(([t]) => t >= t0);
      const spoke = window.__probe.mouth.filter(([t]) => t < t0).map(([, d]) => d);
      // The browser delays the picture to match the voice's playout (its audio device's latency
      // included), so the last frames of speech show a little after the voice stops.
      const later = window.__probe.mouth.filter(([t]) => t > t0 + 2000).map(([, d]) => d);
      return {
        samples: after.length,
        mouthRange: [Math.min(...spoke), Math.max(...spoke)],
        mouthLater: Math.max(...later),
        idleDark: window.__probe.idleDark,
      };
    }, clickedAt);
    r.silentAfterMs = await silenceAfter(h, clickedAt);
    assert.ok(r.samples > 100, `audio samples after the click: ${r.samples}`);
    assert.ok(r.mouthRange[1] > r.idleDark + 40, `the mouth did not open: ${JSON.stringify(r)}`);
    // A generous bound that only a missing cut can break (the answer went on for seconds).
    assert.ok(r.silentAfterMs <= 1000, `the voice went on ${r.silentAfterMs.toFixed(0)} ms after Interrupt (LOUD=${LOUD})`);
    assert.ok(r.mouthLater <= r.idleDark + 40, `the mouth still moves two seconds after Interrupt: ${JSON.stringify(r)}`);
    console.log(`WebRTC: silent ${r.silentAfterMs.toFixed(0)} ms after Interrupt; mouth dark pixels ${r.mouthRange.join('..')} (idle ${r.idleDark})`);
    assert.deepEqual(await h.page.evaluate(() => window.__talkstream.errors), []);
  });

  test('a closed page frees its WebRTC viewer on the server', async () => {
    // Freed by whichever comes first: the page's DELETE, the browser's DTLS close, or the end of
    // the session's stream (its socket closes with the page).
    const freed = /WebRTC viewer (ended|removed)|WebRTC output closed/g;
    const count = () => (h.serverOutput.match(freed) ?? []).length;
    const before = count();
    await h.page.goto('about:blank');
    const deadline = Date.now() + 10000;
    while (count() <= before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(count() > before, `the viewer was not freed (no ${freed} in the server log)${h.diagnostics()}`);
  });
});

describe('falling back to HLS', () => {
  test('when WebRTC cannot connect (its UDP address unreachable), the page plays HLS and says why', async () => {
    const h = new Harness();
    // TEST-NET-1: an address no packet reaches, as behind a firewall that drops UDP.
    await h.start({ env: { WEBRTC_PUBLIC_IP: '192.0.2.1' } });
    try {
      await openPage(h);
      await h.waitInPage('HLS to play after the WebRTC attempt', () => window.__talkstream.transport === 'hls' && window.__talkstream.playingSince !== null, undefined, 20000);
      const t = await h.page.evaluate(() => ({
        transports: window.__talkstream.transports.filter((x) => x !== null),
        reason: window.__talkstream.transportReason,
        tag: document.getElementById('transport').textContent,
        title: document.getElementById('transport').title,
        errors: window.__talkstream.errors,
      }));
      assert.deepEqual(t.transports, ['webrtc', 'hls']);
      assert.match(t.reason, /WebRTC did not connect|connection failed/);
      assert.equal(t.tag, 'HLS');
      assert.match(t.title, /HLS \(/);
      assert.deepEqual(t.errors, []);
      const t0 = await h.page.evaluate(() => document.querySelector('video').currentTime);
      await h.page.waitForTimeout(1500);
      const t1 = await h.page.evaluate(() => document.querySelector('video').currentTime);
      assert.ok(t1 > t0, `HLS does not advance: ${t0} → ${t1}`);
    } finally {
      await h.stop();
    }
  });

  test('with WEBRTC=off the page plays HLS at once; ?transport=webrtc cannot change that', async () => {
    const h = new Harness();
    await h.start({ env: { WEBRTC: 'off' } });
    try {
      await openPage(h, '?transport=webrtc');
      await h.waitInPage('HLS to play', () => window.__talkstream.transport === 'hls' && window.__talkstream.playingSince !== null, undefined, 20000);
      const t = await h.page.evaluate(() => ({ transports: window.__talkstream.transports.filter((x) => x !== null), reason: window.__talkstream.transportReason }));
      assert.deepEqual(t, { transports: ['hls'], reason: 'WebRTC is off on the server' });
      const hello = await h.page.evaluate(() => window.__talkstream.events.find((e) => e?.type === 'hello'));
      assert.equal(hello.whep, undefined, 'no WHEP endpoint in hello');
    } finally {
      await h.stop();
    }
  });
});
