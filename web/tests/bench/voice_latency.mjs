// Benchmark: end of the user's speech → the avatar audible, as a user feels it, in headless
// Chromium with the real page and the real server. Chromium's fake microphone loops a WAV of the
// built-in voice asking a question (1 s silence, the question, 7 s silence); the page streams it
// to the server (hands-free), whose voice activity detection ends the utterance after
// VAD_SILENCE_MS; a loopback recognizer and a loopback chat server answer at once, so what is
// measured is talkstream: VAD + the answer's way to the viewer.
//   - end of speech: the page's send time of the last microphone frame above -50 dBFS
//     before the silence (WebSocket.send is watched in the page);
//   - audible: the page's audio analyser hears the answer (the same probe as glass_to_glass.mjs).
// Prints median and p95 over N questions. Not a test: numbers go to docs/benchmarks.md.
//
//   npm --prefix web run build && cargo build --release -p talkstream
//   node web/tests/bench/voice_latency.mjs [questions=10] [webrtc|hls]
//
// Env: TALKSTREAM_BIN (set it to target/release/talkstream; the default is the debug build), VAD_SILENCE_MS and the
// other VAD_* settings are passed through to the server; WARMUP_MS (default 10000).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harness, bin, installAvProbe } from '../e2e/harness.mjs';

const N = Number(process.argv[2] || 10);
const transport = process.argv[3] || 'webrtc';

const QUESTION = 'Hello, how are you today?';
const ANSWER = 'I am very well, thank you for asking.';

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.round((s.length - 1) * p))];
  return { median: at(0.5), p95: at(0.95), min: s[0], max: s[s.length - 1] };
}

/** A loopback server answering transcriptions with QUESTION and chats with ANSWER, at once. */
function loopback() {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url.endsWith('/audio/transcriptions')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ text: QUESTION }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: ANSWER } }] })}\n\n`);
      res.end('data: [DONE]\n\n');
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

const dir = mkdtempSync(join(tmpdir(), 'talkstream-voice-bench-'));
const mp4 = join(dir, 'q.mp4');
const wav = join(dir, 'q.wav');
assert.equal(spawnSync(bin, ['render', '--text', QUESTION, '-o', mp4]).status, 0, 'talkstream render');
const ff = ['-v', 'error', '-y', '-i', mp4, '-vn', '-af', 'adelay=1000,apad=pad_dur=7', '-ar', '48000', '-ac', '1', '-c:a', 'pcm_s16le', wav];
assert.equal(spawnSync('ffmpeg', ff).status, 0, 'ffmpeg');

const api = await loopback();
const base = `http://127.0.0.1:${api.address().port}/v1`;
const vad = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('VAD_') || k === 'BARGE_IN_MS'));
const h = new Harness();
await h.start({
  env: { STT_BASE_URL: base, OPENAI_BASE_URL: base, OPENAI_MODEL: 'loopback', PROMPTS_PER_MINUTE: '0', LOG_LEVEL: 'warn', ...vad },
  chromiumArgs: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wav}`],
});
const page = h.page;
try {
  // Watch the microphone frames the page sends: [send time, RMS].
  await page.addInitScript(() => {
    window.__micFrames = [];
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      if (data instanceof ArrayBuffer) {
        const s = new Int16Array(data);
        let sum = 0;
        for (const v of s) sum += v * v;
        window.__micFrames.push([performance.now(), Math.sqrt(sum / Math.max(1, s.length)) / 32768]);
        if (window.__micFrames.length > 20000) window.__micFrames.splice(0, 5000);
      }
      return send.call(this, data);
    };
  });
  await page.goto(`${h.baseUrl}/?transport=${transport}`);
  await h.waitInPage('playback', () => window.__talkstream?.playingSince != null && document.querySelector('video').currentTime > 1, undefined, 30000);
  await installAvProbe(page);
  await sleep(Number(process.env.WARMUP_MS ?? 10000));
  await page.click('#mic');

  const latencies = [];
  const vadToAudible = [];
  for (let i = 0; i < N; i++) {
    const before = await page.evaluate(() => ({ users: window.__talkstream.history.filter((e) => e.who === 'user').length, audio: window.__probe.audioAt.length }));
    await h.waitInPage('a question heard', (n) => window.__talkstream.history.filter((e) => e.who === 'user').length > n, before.users, 30000);
    const heardAt = await page.evaluate(() => performance.now());
    await h.waitInPage('the answer audible', ([a, t]) => window.__probe.audioAt.some((x, j) => j >= a && x > t), [before.audio, heardAt - 5000], 30000);
    const r = await page.evaluate(([a, heard]) => {
      // The last loud frame before the transcript came back: the end of the question.
      const loud = window.__micFrames.filter(([t, rms]) => t < heard && rms > 0.00316);
      const end = loud[loud.length - 1][0];
      const audible = window.__probe.audioAt.find((x, j) => j >= a && x > end);
      return { end, audible, heard };
    }, [before.audio, heardAt]);
    latencies.push(r.audible - r.end);
    vadToAudible.push(r.audible - r.heard);
    // Let the answer finish before the file loops to the next question.
    await h.waitInPage('idle again', () => window.__talkstream.stage === 'idle', undefined, 30000);
  }
  const fmt = (s) => `median ${s.median.toFixed(0)} ms, p95 ${s.p95.toFixed(0)} ms (min ${s.min.toFixed(0)}, max ${s.max.toFixed(0)})`;
  console.log(`${N} spoken questions over ${transport}, VAD ${JSON.stringify(vad)} (defaults otherwise):`);
  console.log(`  end of speech -> answer audible:      ${fmt(stats(latencies))}`);
  console.log(`  transcript in page -> answer audible:  ${fmt(stats(vadToAudible))}`);
} finally {
  await h.stop();
  api.close();
  rmSync(dir, { recursive: true, force: true });
}
