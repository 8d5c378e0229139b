// End-to-end: the avatar speaks what a user types. Real server, real Chromium, real typing.
// One suite, run over each transport by speech.test.mjs (WebRTC, the page's default) and
// speech_hls.test.mjs (HLS).
//
//   npm run build && TALKSTREAM_BIN=../target/debug/talkstream npm run test:e2e
//
// Env: see harness.mjs; SCREENSHOT_PATH (optional PNG of the page while the avatar speaks,
// with a caption visible).

import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Harness } from './harness.mjs';

const PROMPT = 'Hello there, this is a test of the talking avatar.';
const PROMPT_WORDS = 'test of the talking avatar';
const LONG_PROMPT =
  'Once upon a time there was a small lighthouse on a rocky island. Every night its keeper climbed the stairs to light the lamp. ' +
  'Ships far out at sea looked for its beam and steered safely home. One winter a great storm broke the windows of the tower. ' +
  'The keeper worked all night to keep the flame alive. In the morning the sea was calm and every ship had come home.';
const LONG_LAST_WORDS = 'every ship had come home';
const SECOND_PROMPT = 'Sorry to interrupt, tell me about the weather instead.';
const SECOND_WORDS = 'tell me about the weather';
/** a stall after playback started longer than this fails the test */
const MAX_STALL_MS = 250;

/** Define the suite for `transport` ('webrtc' or 'hls'). */
export function speechSuite(transport) {
  const h = new Harness();
  let page;

  const state = () => page.evaluate(() => window.__talkstream);
  const counts = () =>
    page.evaluate(() => ({
      statuses: window.__talkstream.statuses.length,
      metrics: window.__talkstream.metrics.length,
      captions: window.__talkstream.captionsShown.length,
      lines: window.__talkstream.captionLines.length,
      events: window.__talkstream.events.length,
      errors: window.__talkstream.errors.length,
    }));

  /** Wait for status "speaking" after `base`; an error shown in the page instead fails at once. */
  async function waitSpeaking(base, what) {
    await h.waitInPage(
      `status "speaking" after ${what}`,
      ([n, e]) => window.__talkstream.statuses.slice(n).includes('speaking') || window.__talkstream.errors.length > e,
      [base.statuses, base.errors],
      20000,
    );
    const errors = (await state()).errors.slice(base.errors);
    assert.deepEqual(errors, [], `the page showed errors after ${what}: ${await h.pageState()}${h.diagnostics()}`);
  }
  /** What shows that sound was received: decoded bytes (HLS), or audio energy (WebRTC getStats). */
  const audioBytes = () =>
    transport === 'hls' ? page.evaluate(() => document.querySelector('video').webkitAudioDecodedByteCount) : page.evaluate(() => ({ energy: window.__talkstream.webrtcStats().audioEnergy }));

  /** Open the page (if needed) and wait until the live stream plays. */
  async function ensurePlaying() {
    const ready = page.url().startsWith(h.baseUrl) && (await page.evaluate(() => !!window.__talkstream?.sessionId && window.__talkstream.playingSince !== null));
    if (!ready) {
      await page.goto(`${h.baseUrl}/?transport=${transport}`);
      await h.waitInPage('hello (sessionId)', () => !!window.__talkstream?.sessionId, undefined, 20000);
    }
    await h.waitInPage(
      'the video to play',
      () => window.__talkstream.playingSince !== null && document.querySelector('video').currentTime > 0 && !document.querySelector('video').paused,
    );
    await h.waitInPage('the Send button to be enabled', () => !document.getElementById('send').disabled);
    assert.equal(await page.evaluate(() => window.__talkstream.transport), transport, 'the page plays over the transport asked for');
  }

  /** Type into the prompt box like a user and press Enter. */
  async function typePrompt(text, delay = 10) {
    const box = page.locator('#prompt');
    await box.click();
    await page.keyboard.type(text, { delay });
    await page.keyboard.press('Enter');
    // the box clears when the prompt was sent
    await h.waitInPage('the prompt box to clear after Enter', () => document.getElementById('prompt').value === '', undefined, 5000);
  }

  /** index of `stage` in `list` at or after `start`, or -1 */
  const indexFrom = (list, stage, start = 0) => {
    for (let i = start; i < list.length; i++) if (list[i] === stage) return i;
    return -1;
  };


  describe(`the avatar speaks (${transport})`, () => {
    before(async () => {
      await h.start();
      page = h.page;
    });

    after(() => h.stop());

    test('the avatar speaks a typed prompt', async () => {
      await ensurePlaying();
      const playingSince = (await state()).playingSince;
      const base = await counts();

      await typePrompt(PROMPT, 15);
      const sentAt = await page.evaluate(() => performance.now());

      await waitSpeaking(base, 'the prompt');
      const audioAtSpeaking = await audioBytes();

      // The caption shows when the player reaches the words (a few seconds after the server's
      // "speaking"). Each transcript is one TTS chunk (the server cuts at ~24 characters), so the
      // words may span two captions: the page keeps the turn's captions together as one line.
      await h.waitInPage(
        `a caption line with "${PROMPT_WORDS}" on screen`,
        ([n, words]) => {
          const t = window.__talkstream;
          const el = document.getElementById('caption');
          return (
            t.captionLines.slice(n).some((c) => c.includes(words)) &&
            el.classList.contains('visible') &&
            el.textContent.includes(words)
          );
        },
        [base.lines, PROMPT_WORDS],
        30000,
      );
      // While the viewer hears the words, the badge says so (even if the server is already done).
      const badge = await page.evaluate(() => ({
        badge: document.getElementById('status-badge').textContent.trim(),
        stage: document.getElementById('stage-text').textContent.trim(),
      }));
      assert.deepEqual(badge, { badge: 'live', stage: 'speaking…' });
      if (process.env.SCREENSHOT_PATH) {
        await page.screenshot({ path: resolve(process.env.SCREENSHOT_PATH), fullPage: true });
      }

      await h.waitInPage(
        'status "idle" after "speaking"',
        (n) => {
          const s = window.__talkstream.statuses.slice(n);
          const i = s.indexOf('speaking');
          return i >= 0 && s.indexOf('idle', i + 1) > i;
        },
        base.statuses,
        60000,
      );
      await h.waitInPage('metrics for the turn', (n) => window.__talkstream.metrics.length > n, base.metrics, 10000);
      await h.waitInPage('the badge back to idle', () => document.getElementById('status-badge').textContent.trim() === 'idle', undefined, 15000);

      const t = await state();
      const statuses = t.statuses.slice(base.statuses);
      const iSpeaking = indexFrom(statuses, 'speaking');
      const iIdle = indexFrom(statuses, 'idle', iSpeaking + 1);
      assert.ok(iSpeaking >= 0 && iIdle > iSpeaking, `statuses after the prompt: ${statuses.join(' → ')}`);
      assert.equal(indexFrom(statuses, 'error'), -1, `an error status: ${statuses.join(' → ')}`);

      // Every caption of the turn was shown, in order, and each when the player had reached its
      // words, not when the message arrived.
      const shown = t.captionsShown.slice(base.captions);
      assert.ok(shown.join(' ').includes(PROMPT_WORDS), `captions shown: ${JSON.stringify(shown)}`);
      assert.equal(shown.join(' '), PROMPT, `captions shown: ${JSON.stringify(shown)}`);
      const log = t.captionLog.slice(base.captions);
      for (const c of log) {
        assert.ok(c.pdt !== null && c.startPdt !== null && c.pdt >= c.startPdt, `caption shown before its time: ${JSON.stringify(c)}`);
      }

      const turnMetrics = t.metrics.slice(base.metrics);
      const m = turnMetrics.find((x) => !x.interrupted);
      assert.ok(m, `no completed turn metrics: ${JSON.stringify(turnMetrics)}`);
      assert.equal(typeof m.first_segment_ms, 'number', `first_segment_ms missing: ${JSON.stringify(m)}`);
      assert.ok(m.first_segment_ms > 0, `first_segment_ms: ${m.first_segment_ms}`);
      assert.equal(typeof m.complete_ms, 'number', `complete_ms missing: ${JSON.stringify(m)}`);
      assert.equal(m.interrupted, false);
      const panel = await page.evaluate(() => document.querySelector('[data-metric="first_segment_ms"]').textContent);
      assert.match(panel, /\d+(\.\d)? ms/, `metrics panel shows ${panel}`);

      // The page told the server when the answer's first frame was on screen; the server answered
      // with the time from the prompt: after the frame was rendered, and over HLS after the first
      // segment's publication (a WebRTC viewer sees frames before their segment is complete).
      await h.waitInPage('on_screen for the turn', (turn) => window.__talkstream.onScreen.some((o) => o.turn === turn), m.turn, 10000);
      const seen = (await state()).onScreen.find((o) => o.turn === m.turn);
      assert.ok(seen.on_screen_ms > m.first_frame_ms, `on screen ${seen.on_screen_ms} ms, first frame ${m.first_frame_ms} ms`);
      if (transport === 'hls') {
        assert.ok(seen.on_screen_ms > m.first_segment_ms, `on screen ${seen.on_screen_ms} ms, first segment ${m.first_segment_ms} ms`);
      }
      const cell = await page.evaluate(() => document.querySelector('[data-metric="on_screen_ms"]').textContent);
      assert.match(cell, /\d[\d,]* ms/, `panel "on screen": ${cell}`);

      // Let the end of the speech play out, then check sound, clock and stalls.
      await page.waitForTimeout(1500);
      const audioAfter = await audioBytes();
      if (transport === 'hls') {
        assert.ok(audioAfter > audioAtSpeaking, `webkitAudioDecodedByteCount did not grow after speech started (${audioAtSpeaking} → ${audioAfter})`);
      } else {
        assert.ok(audioAfter.energy > audioAtSpeaking.energy, `the received audio's energy did not grow after speech started (${JSON.stringify([audioAtSpeaking, audioAfter])})`);
      }
      const after = await state();
      assert.equal(after.timeWentBackwards, false, `video.currentTime went backwards${h.diagnostics()}`);
      const stalls = await h.longStalls(playingSince, MAX_STALL_MS);
      assert.deepEqual(stalls, [], `stalls longer than ${MAX_STALL_MS} ms after playback started: ${JSON.stringify(stalls)} (all: ${JSON.stringify(after.waitingEvents)})`);
      assert.deepEqual(after.fatalHlsErrors, []);
      assert.deepEqual(after.errors, [], 'errors shown in the page');
      console.log(
        `turn timing: first_audio ${m.first_audio_ms?.toFixed(1)} ms, first_segment ${m.first_segment_ms.toFixed(1)} ms, complete ${m.complete_ms.toFixed(1)} ms; ` +
          `first caption shown ${(log[0].shownAt - sentAt).toFixed(0)} ms after Enter; captions ${JSON.stringify(shown)}`,
      );
    });

    test('a second prompt interrupts the first', async () => {
      await ensurePlaying();
      const playingSince = (await state()).playingSince;
      const base = await counts();

      await typePrompt(LONG_PROMPT, 0);
      await waitSpeaking(base, 'the long prompt');
      const firstTurn = await page.evaluate((n) => {
        const tr = window.__talkstream.events.slice(n).find((e) => e?.type === 'transcript');
        return tr ? tr.turn : null;
      }, base.events);
      assert.notEqual(firstTurn, null, 'no transcript for the long prompt before "speaking"');
      const mid = await counts();

      await typePrompt(SECOND_PROMPT, 5);

      await h.waitInPage(
        'metrics of the first turn',
        (turn) => window.__talkstream.metrics.some((m) => m.turn === turn),
        firstTurn,
        15000,
      );
      await h.waitInPage(
        'a caption line of the second prompt',
        ([n, words]) => window.__talkstream.captionLines.slice(n).some((c) => c.includes(words)),
        [mid.lines, SECOND_WORDS],
        30000,
      );
      await h.waitInPage(
        'metrics of the second turn',
        (turn) => window.__talkstream.metrics.some((m) => m.turn !== undefined && m.turn > turn),
        firstTurn,
        60000,
      );
      await h.waitInPage(
        'status "idle" after the second turn',
        (n) => {
          const s = window.__talkstream.statuses.slice(n);
          const i = s.indexOf('speaking');
          return i >= 0 && s.indexOf('idle', i + 1) > i;
        },
        mid.statuses,
        30000,
      );

      const t = await state();
      const m1 = t.metrics.find((m) => m.turn === firstTurn);
      const m2 = t.metrics.find((m) => m.turn !== undefined && m.turn > firstTurn);
      assert.equal(m1.interrupted, true, `first turn metrics: ${JSON.stringify(m1)}`);
      assert.equal(m2.interrupted, false, `second turn metrics: ${JSON.stringify(m2)}`);
      assert.equal(typeof m2.complete_ms, 'number', `second turn metrics: ${JSON.stringify(m2)}`);
      assert.equal(typeof m2.first_segment_ms, 'number', `second turn metrics: ${JSON.stringify(m2)}`);

      // The end of the long text was never spoken: its caption must not appear.
      const shown = t.captionsShown.slice(base.captions);
      assert.ok(!shown.some((c) => c.includes(LONG_LAST_WORDS)), `a caption of the interrupted speech was shown: ${JSON.stringify(shown)}`);
      assert.ok(t.captionLines.slice(mid.lines).some((c) => c.includes(SECOND_WORDS)));
      const statuses = t.statuses.slice(mid.statuses);
      assert.equal(indexFrom(statuses, 'error'), -1, `statuses after the second prompt: ${statuses.join(' → ')}`);
      assert.equal(t.timeWentBackwards, false, 'video.currentTime went backwards');
      const stalls = await h.longStalls(playingSince, MAX_STALL_MS);
      assert.deepEqual(stalls, [], `stalls longer than ${MAX_STALL_MS} ms: ${JSON.stringify(stalls)}`);
      assert.deepEqual(t.errors, [], 'errors shown in the page');
      console.log(`first turn: ${JSON.stringify(m1)}\nsecond turn: ${JSON.stringify(m2)}\ncaptions: ${JSON.stringify(shown)}`);
    });

    test('the Interrupt button stops the avatar mid-speech', async () => {
      await ensurePlaying();
      const base = await counts();
      await typePrompt(LONG_PROMPT, 0);
      await waitSpeaking(base, 'the long prompt');
      await h.waitInPage('the Interrupt button to be enabled', () => !document.getElementById('interrupt').disabled, undefined, 5000);
      await page.click('#interrupt');
      await h.waitInPage('metrics of the interrupted turn', (n) => window.__talkstream.metrics.length > n, base.metrics, 10000);
      await h.waitInPage(
        'status idle (interrupted)',
        (n) => window.__talkstream.events.slice(n).some((e) => e?.type === 'status' && e.stage === 'idle' && e.note === 'interrupted'),
        base.events,
        10000,
      );
      const m = (await state()).metrics.slice(base.metrics);
      assert.equal(m.length, 1, `metrics: ${JSON.stringify(m)}`);
      assert.equal(m[0].interrupted, true, `metrics: ${JSON.stringify(m)}`);
      // let the player play everything the server had published before the cut
      await h.waitInPage('the viewer to stop hearing speech', () => document.getElementById('status-badge').textContent.trim() === 'idle', undefined, 20000);
      const t = await state();
      const shown = t.captionLog.filter((c) => c.turn === m[0].turn).map((c) => c.text);
      assert.ok(shown.length > 0, 'no caption of the interrupted speech was shown at all');
      assert.ok(!shown.some((c) => c.includes(LONG_LAST_WORDS)), `a caption after the interruption was shown: ${JSON.stringify(shown)}`);
      assert.deepEqual(t.errors, []);
      console.log(`interrupted turn: ${JSON.stringify(m[0])}; captions shown ${JSON.stringify(shown)}; not shown (cut): ${t.events.filter((e) => e?.type === 'transcript' && e.turn === m[0].turn).length - shown.length}`);
    });

    test('a prompt over the server limit shows its error in the page', async () => {
      await ensurePlaying();
      const base = await counts();
      await page.fill('#prompt', 'word '.repeat(700)); // 3500 characters; the default limit is 2000
      await page.press('#prompt', 'Enter');
      await h.waitInPage('an error in the page', (n) => window.__talkstream.errors.length > n, base.errors, 10000);
      const t = await state();
      const err = t.events.slice(base.events).find((e) => e?.type === 'error');
      assert.equal(err?.code, 'prompt_too_long', `events: ${JSON.stringify(t.events.slice(base.events))}`);
      assert.match(await page.locator('#errors').textContent(), /prompt_too_long/);
      // the session goes on
      assert.equal(await page.evaluate(() => document.getElementById('send').disabled), false);
    });

    test('Stop stream ends the stream, Start stream plays a new one', async () => {
      await ensurePlaying();
      const first = await state();
      const base = await counts();
      const hellos = first.events.filter((e) => e?.type === 'hello').length;

      await page.click('#stream-toggle');
      // HLS plays out what was published (the video ends, or stalls at the end and the page
      // lets it go); WebRTC's picture goes a moment after.
      await h.waitInPage(
        'the stream to end in the page',
        () => (document.querySelector('video').ended || window.__talkstream.transport === null) && !document.getElementById('overlay').hidden,
        undefined,
        30000,
      );
      const stopped = await page.evaluate(() => ({
        toggle: document.getElementById('stream-toggle').textContent.trim(),
        send: document.getElementById('send').disabled,
        overlay: document.getElementById('overlay').hidden ? null : document.getElementById('overlay-text').textContent,
      }));
      assert.deepEqual(stopped, { toggle: 'Start stream', send: true, overlay: 'Stream stopped' });

      await page.click('#stream-toggle');
      await h.waitInPage('a new hello', (n) => window.__talkstream.events.filter((e) => e?.type === 'hello').length > n, hellos, 10000);
      const t = await state();
      assert.equal(t.sessionId, first.sessionId, 'stop + start keeps the session');
      assert.notEqual(t.playlist, first.playlist, 'stop + start should bring a new playlist');
      await h.waitInPage(
        'the new stream to play',
        () => window.__talkstream.playingSince !== null && document.querySelector('video').currentTime > 0 && !document.querySelector('video').paused,
        undefined,
        20000,
      );
      const t0 = await page.evaluate(() => document.querySelector('video').currentTime);
      await page.waitForTimeout(3000);
      const t1 = await page.evaluate(() => document.querySelector('video').currentTime);
      assert.ok(t1 - t0 >= 2, `the new stream advanced only ${(t1 - t0).toFixed(2)} s in 3 s`);
      const after = await state();
      assert.deepEqual(after.errors.slice(base.errors), [], 'errors shown in the page');
      assert.deepEqual(after.fatalHlsErrors, []);
      assert.equal(await page.evaluate(() => document.getElementById('stream-toggle').textContent.trim()), 'Stop stream');
    });
  });
}
