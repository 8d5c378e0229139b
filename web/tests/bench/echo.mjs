#!/usr/bin/env node
// echo.mjs: does the avatar's own voice come back through the microphone, and does Chromium's
// echo canceller remove it, with WebRTC playback and with HLS playback?
//
//   node web/tests/bench/echo.mjs http://127.0.0.1:7860/ [--transports webrtc,hls] [--runs 1] [--answers 2] [--text "…"]
//                 [--no-hands-free] [--json [--frames]] [--chromium-arg --some-flag …]
//
// What it needs
// - A talkstream server at the URL. For the hands-free part the server must have a speech
//   recognizer configured (else the mic button only explains); a dead one is enough, since only
//   the voice activity events are watched: STT_BASE_URL=http://127.0.0.1:9/v1 talkstream serve.
// - Chromium (CHROMIUM, default /usr/bin/chromium) and playwright-core (web/node_modules).
// - PulseAudio with a loop from "speaker" to "microphone", so whatever Chromium plays is exactly
//   what its microphone hears (no real speaker or microphone involved):
//     mkdir -p /tmp/echo-pulse && chmod 700 /tmp/echo-pulse
//     XDG_RUNTIME_DIR=/tmp/echo-pulse pulseaudio -n --daemonize=yes --exit-idle-time=-1 \
//       -L "module-native-protocol-unix auth-anonymous=1 socket=/tmp/echo-pulse/native" \
//       -L "module-null-sink sink_name=speaker rate=48000" \
//       -L "module-remap-source master=speaker.monitor source_name=mic channels=1 channel_map=mono"
//     export PULSE_SERVER=unix:/tmp/echo-pulse/native
//     pactl set-default-sink speaker && pactl set-default-source mic
//   The remapped source is needed: Chromium does not list monitor sources as microphones.
//   Playwright starts Chromium with --mute-audio; this script removes that flag, and does not use
//   --use-fake-device-for-media-stream, so the real Pulse devices are used. It checks with
//   `pactl` that Chromium really plays into and records from Pulse while it measures.
//
// What it measures, per transport (?transport=webrtc / ?transport=hls), --answers times in a row
// (the first answer includes the echo canceller adapting; later ones are its steady state):
// 1. Levels: the page is loaded (its own mic off), then inside the page two microphone streams
//    are opened at once: "raw" (echoCancellation, noiseSuppression, autoGainControl all false:
//    the echo as it reaches the mic) and "page" (all true, as the page's own mic asks). An
//    AudioWorklet gives the RMS of each per 20 ms of the same audio clock. The avatar is made to
//    say --text; frames where raw > -50 dBFS are "speech", frames where raw < -70 dBFS "quiet".
//    Printed per stream: median, p95 and max dBFS during speech, the share of speech frames still
//    above -50 dBFS, and median and p95 while quiet (the floor).
// 2. Hands-free: a fresh page, the page's own mic turned on in hands-free mode (#mic), the avatar
//    made to say --text again; lists the server's user_speech messages while it talks (its voice
//    activity detector taking the echo for the user, and what it did with each utterance) and
//    whether the answer was interrupted (status note "interrupted": self-interruption).
// Control: --chromium-arg --disable-features=ChromeWideEchoCancellation turns off Chromium's
// echo cancelling of everything the browser plays, leaving only WebRTC-received audio as reference.
// Limits: the loop is perfect (no delay, no distortion, no room, no noise, no clock drift), so a
// real speaker and microphone are harder for the echo canceller than this; "cancelled" here is a
// best case, "not cancelled" is conclusive.

import { execFileSync } from 'node:child_process';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const base = args.find((a) => /^https?:\/\//.test(a));
if (!base) {
  console.error('usage: node echo.mjs http://127.0.0.1:PORT/ [--transports webrtc,hls] [--text "…"] [--no-hands-free] [--json]');
  process.exit(2);
}
const transports = opt('--transports', 'webrtc,hls').split(',');
const TEXT = opt(
  '--text',
  'Good afternoon. I am going to talk for a little while, so that we can hear whether my own voice comes back ' +
    'through the microphone. The quick brown fox jumps over the lazy dog, and then it runs across the field, ' +
    'past the old barn and the river, until the evening light fades behind the hills. Thank you for listening.',
);
const handsFree = !args.includes('--no-hands-free');
const ANSWERS = Number(opt('--answers', '2')); // the first includes the echo canceller adapting
const RUNS = Number(opt('--runs', '1'));
const asJson = args.includes('--json');
const dump = args.includes('--frames'); // with --json: every 20 ms level too

const { chromium } = await import('playwright-core');

const SPEECH_DB = -50;
/** Below this the loop is quiet: end of an answer, and the frames that give the floor (WebRTC
 * playback keeps a comfort-noise level near -83 dBFS between words, HLS is digital silence). */
const QUIET_DB = -70;
const log = (...a) => console.error('echo:', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pactl(...a) {
  try {
    return execFileSync('pactl', a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return null;
  }
}

/** Chromium's streams on the Pulse server now (application.name contains Chromium). */
function pulseStreams() {
  const count = (kind) => {
    const out = pactl('list', kind);
    if (out === null) return null;
    return out.split(/\n(?=\S)/).filter((b) => /application\.(name|process\.binary) = "chrom/i.test(b)).length;
  };
  return { sinkInputs: count('sink-inputs'), sourceOutputs: count('source-outputs') };
}

// In the page: open a microphone stream with the given processing and report RMS per 20 ms.
const WORKLET = `
class EchoRms extends AudioWorkletProcessor {
  constructor() { super(); this.block = Math.round(sampleRate / 50); this.n = 0; this.sum = 0; }
  // Blocks end on multiples of 20 ms of the context's clock, so two streams' blocks line up.
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) for (let i = 0; i < ch.length; i++) {
      this.sum += ch[i] * ch[i];
      this.n++;
      const end = currentFrame + i + 1;
      if (end % this.block === 0) {
        if (this.n === this.block) this.port.postMessage([end / this.block, this.sum / this.n]);
        this.n = 0; this.sum = 0;
      }
    }
    return true;
  }
}
registerProcessor('echo-rms', EchoRms);`;

async function openMeters(page, streams) {
  return page.evaluate(
    async ({ worklet, streams }) => {
      const ctx = new AudioContext();
      await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([worklet], { type: 'text/javascript' })));
      const out = {};
      const info = {};
      for (const [name, on] of Object.entries(streams)) {
        const [ec, rest] = on;
        const stream = await navigator.mediaDevices.getUserMedia({
          audio: { echoCancellation: ec, noiseSuppression: rest, autoGainControl: rest, channelCount: 1 },
        });
        const track = stream.getAudioTracks()[0];
        const s = track.getSettings();
        info[name] = { label: track.label, echoCancellation: s.echoCancellation, sampleRate: s.sampleRate };
        const node = new AudioWorkletNode(ctx, 'echo-rms', { numberOfOutputs: 0 });
        out[name] = [];
        node.port.onmessage = (e) => out[name].push(e.data);
        ctx.createMediaStreamSource(stream).connect(node);
      }
      if (ctx.state === 'suspended') await ctx.resume();
      window.__echo = { out, info, ctx };
      return info;
    },
    { worklet: WORKLET, streams },
  );
}

const db = (ms) => 10 * Math.log10(ms + 1e-12);

/** The newest raw frame: its index (20 ms blocks of the page's audio clock) and level (dBFS). */
const rawNow = (page) => page.evaluate(() => {
  const r = window.__echo.out.raw;
  return r.length ? [r[r.length - 1][0], 10 * Math.log10(r[r.length - 1][1] + 1e-12)] : [0, -120];
});

async function openPage(browser, transport) {
  // bypassCSP: the page's Content-Security-Policy (script-src 'self') refuses the blob: worklet.
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  page.on('pageerror', (e) => log('page error:', e.message));
  const url = new URL(base);
  url.searchParams.set('transport', transport);
  await page.goto(url.toString());
  await page.waitForFunction(
    (t) => window.__talkstream && window.__talkstream.state !== 'connecting' && window.__talkstream.state !== 'error' && window.__talkstream.transport === t,
    transport,
    { timeout: 60000 },
  );
  await page.waitForSelector('#send:not([disabled])', { timeout: 30000 });
  return { context, page };
}

async function say(page) {
  await page.fill('#prompt', TEXT);
  await page.press('#prompt', 'Enter');
}

/** Wait until the raw loop has carried speech and then been quiet for 3 s (or 90 s passed). */
async function waitSpoken(page, onTick) {
  const t0 = Date.now();
  let heard = false;
  let quietSince = null;
  while (Date.now() - t0 < 90000) {
    await sleep(250);
    if (onTick) await onTick();
    const [, level] = await rawNow(page);
    if (level > SPEECH_DB) {
      heard = true;
      quietSince = null;
    } else if (heard && level < QUIET_DB) {
      quietSince ??= Date.now();
      if (Date.now() - quietSince > 3000) return true;
    } else quietSince = null;
  }
  return heard;
}

function quantile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Levels of each stream over raw frames [from, to): during speech and during quiet. */
function summarize(out, from, to) {
  const res = {};
  for (const name of Object.keys(out)) {
    const byIndex = new Map(out[name].map(([i, ms]) => [i, db(ms)]));
    const speech = [];
    const quiet = [];
    for (const [i, ms] of out.raw) {
      if (i < from || i >= to) continue;
      const v = byIndex.get(i);
      if (v === undefined) continue;
      if (db(ms) > SPEECH_DB) speech.push(v);
      else if (db(ms) < QUIET_DB) quiet.push(v);
    }
    speech.sort((a, b) => a - b);
    quiet.sort((a, b) => a - b);
    res[name] = {
      speechFrames: speech.length,
      speechMedian: quantile(speech, 0.5),
      speechP95: quantile(speech, 0.95),
      speechMax: speech.length ? speech[speech.length - 1] : null,
      // share of speech frames the echo still reaches -50 dBFS (a voice detector could fire)
      speechOver50: speech.length ? speech.filter((v) => v > SPEECH_DB).length / speech.length : null,
      quietMedian: quantile(quiet, 0.5),
      quietP95: quantile(quiet, 0.95),
    };
  }
  return res;
}

/** Say TEXT `ANSWERS` times in the page; per answer: its raw frame range and what onTick saw. */
async function answers(page, onTick) {
  const out = [];
  for (let n = 0; n < ANSWERS; n++) {
    const [from] = await rawNow(page);
    const events = await page.evaluate(() => window.__talkstream.events.length);
    await say(page);
    const spoke = await waitSpoken(page, onTick && (() => onTick(n)));
    const [to] = await rawNow(page);
    out.push({ from, to, events, spoke });
  }
  return out;
}

async function measureLevels(browser, transport) {
  const { context, page } = await openPage(browser, transport);
  const info = await openMeters(page, { raw: [false, false], page: [true, true] });
  await sleep(2000); // some silence first: the floor
  let pulse = null;
  const said = await answers(page, async () => {
    if (!pulse) {
      const [, level] = await rawNow(page);
      if (level > SPEECH_DB) pulse = pulseStreams();
    }
  });
  const out = await page.evaluate(() => window.__echo.out);
  await context.close();
  return {
    transport,
    info,
    pulse,
    answers: said.map((a, n) => ({ n: n + 1, spoke: a.spoke, levels: summarize(out, n === 0 ? 0 : a.from, a.to) })),
    ...(dump ? { frames: out } : {}),
  };
}

async function measureHandsFree(browser, transport) {
  const { context, page } = await openPage(browser, transport);
  await openMeters(page, { raw: [false, false] });
  const stt = await page.evaluate(() => window.__talkstream.events.find((e) => e && e.type === 'hello')?.stt ?? null);
  if (!stt || stt === 'none') {
    await context.close();
    return { transport, skipped: 'the server has no speech recognizer (set STT_BASE_URL)' };
  }
  await page.click('#mic');
  await page.waitForFunction(() => window.__talkstream.micState === 'listening', null, { timeout: 15000 });
  await sleep(1000);
  const meters = Array.from({ length: ANSWERS }, () => []);
  const said = await answers(page, async (n) => {
    const [, raw] = await rawNow(page);
    if (raw > SPEECH_DB) meters[n].push(await page.evaluate(() => window.__talkstream.micLevelDb));
  });
  const res = [];
  for (let n = 0; n < said.length; n++) {
    const r = await page.evaluate(
      ([from, to]) => {
        const ev = window.__talkstream.events.slice(from, to ?? undefined).filter((e) => e && typeof e === 'object');
        return {
          speech: ev
            .filter((e) => e.type === 'user_speech')
            .map((e) => `${e.state}${e.duration_ms ? ` ${e.duration_ms}ms` : ''}${e.dropped ? ` (${e.dropped})` : ''}`),
          errors: ev.filter((e) => e.type === 'error').map((e) => e.code),
          interrupted: ev.some((e) => e.type === 'status' && e.note === 'interrupted'),
        };
      },
      [said[n].events, said[n + 1]?.events ?? null],
    );
    const m = meters[n].sort((a, b) => a - b);
    res.push({ n: n + 1, ...r, meterMedian: quantile(m, 0.5), meterP95: quantile(m, 0.95) });
  }
  await context.close();
  return { transport, answers: res };
}

const fmt = (v) => (v === null || v === undefined ? '   -  ' : v.toFixed(1).padStart(6));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  ignoreDefaultArgs: ['--mute-audio'],
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--use-fake-ui-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
    ...args.flatMap((a, i) => (args[i - 1] === '--chromium-arg' ? [a] : [])),
  ],
});
const version = browser.version();
const pulseInfo = pactl('info');
const defaults = pulseInfo
  ? `sink ${/Default Sink: (.*)/.exec(pulseInfo)?.[1]}, source ${/Default Source: (.*)/.exec(pulseInfo)?.[1]}`
  : 'pactl not answering (no Pulse server?)';
log(`Chromium ${version}; Pulse default ${defaults}`);

const results = { chromium: version, pulse: defaults, levels: [], handsFree: [] };
try {
  for (let run = 1; run <= RUNS; run++) {
    for (const t of transports) {
      log(`run ${run}, ${t}: levels…`);
      results.levels.push({ run, ...(await measureLevels(browser, t)) });
    }
    if (handsFree) {
      for (const t of transports) {
        log(`run ${run}, ${t}: hands-free…`);
        results.handsFree.push({ run, ...(await measureHandsFree(browser, t)) });
      }
    }
  }
} finally {
  await browser.close();
}

if (asJson) {
  console.log(JSON.stringify(results, null, 2));
} else {
  console.log(`Chromium ${version}; Pulse default ${defaults}`);
  console.log('Mic level in dBFS per 20 ms while the avatar speaks (raw > -50 dBFS) and while the loop is quiet (raw < -70).');
  console.log('raw: no processing, the echo as it reaches the mic. page: echoCancellation+noiseSuppression+autoGainControl, as the page asks.');
  console.log('">-50": share of speech frames still above -50 dBFS after processing.');
  console.log('transport run ans stream | speech median   p95    max  >-50 | quiet median   p95 | Chromium streams on Pulse');
  for (const r of results.levels) {
    const pulse = r.pulse ? `${r.pulse.sinkInputs} playing, ${r.pulse.sourceOutputs} recording` : 'not seen';
    for (const a of r.answers) {
      for (const [name, s] of Object.entries(a.levels)) {
        const over = s.speechOver50 === null ? '   - ' : `${(100 * s.speechOver50).toFixed(0).padStart(3)}%`;
        console.log(
          `${r.transport.padEnd(9)} ${String(r.run).padStart(3)} ${String(a.n).padStart(3)} ${name.padEnd(6)} |      ${fmt(s.speechMedian)} ${fmt(s.speechP95)} ${fmt(s.speechMax)} ${over} |    ${fmt(s.quietMedian)} ${fmt(s.quietP95)} | ` +
            `${name === 'raw' && a.n === 1 ? pulse : ''}${a.spoke ? '' : ' (no speech heard!)'}`,
        );
      }
    }
  }
  if (results.handsFree.length) {
    console.log("Hands-free: the page's own mic (#mic) on while the avatar speaks; what the server's voice detector made of it.");
    for (const h of results.handsFree) {
      if (h.skipped) {
        console.log(`${h.transport.padEnd(9)} ${String(h.run).padStart(3)}  skipped: ${h.skipped}`);
        continue;
      }
      for (const a of h.answers) {
        console.log(
          `${h.transport.padEnd(9)} ${String(h.run).padStart(3)} ${String(a.n).padStart(3)}  user_speech: ${a.speech.length ? a.speech.join(', ') : 'none'}; ` +
            `interrupted: ${a.interrupted ? 'YES' : 'no'}; page meter median ${fmt(a.meterMedian).trim()}, p95 ${fmt(a.meterP95).trim()} dBFS` +
            `${a.errors.length ? `; errors: ${a.errors.join(', ')}` : ''}`,
        );
      }
    }
  }
}
