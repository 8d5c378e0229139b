import { describe, expect, it } from 'vitest';
import {
  FRAME_SAMPLES,
  floatToI16,
  FramePacker,
  frameSamples,
  LEVEL_FLOOR_DB,
  levelDb,
  lowPassTaps,
  MicConverter,
} from '../../src/micaudio';

/** A sine of `hz` at `rate`, `seconds` long, amplitude `amp`. */
function sine(rate: number, hz: number, seconds: number, amp: number, phase = 0): Float32Array {
  const n = Math.round(rate * seconds);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = amp * Math.sin((2 * Math.PI * hz * i) / rate + phase);
  return out;
}

/** Deterministic pseudo-random block sizes (1…1000), like a browser might deliver. */
function* blockSizes(seed: number): Generator<number> {
  let x = seed;
  for (;;) {
    x = (x * 1103515245 + 12345) % 2147483648;
    yield 1 + (x % 1000);
  }
}

/** Feed `channels` in arbitrary blocks; return all frames. */
function convert(conv: MicConverter, channels: Float32Array[], seed = 7): ArrayBuffer[] {
  const frames: ArrayBuffer[] = [];
  const sizes = blockSizes(seed);
  const n = channels[0]!.length;
  for (let at = 0; at < n; ) {
    const len = Math.min(sizes.next().value as number, n - at);
    frames.push(...conv.push(channels.map((c) => c.subarray(at, at + len))));
    at += len;
  }
  return frames;
}

function joined(frames: ArrayBuffer[]): Int16Array {
  const out = new Int16Array(frames.length * FRAME_SAMPLES);
  frames.forEach((f, i) => out.set(frameSamples(f), i * FRAME_SAMPLES));
  return out;
}

/** Frequency from upward zero crossings (interpolated), Hz. */
function frequency(x: Int16Array, rate: number): number {
  const crossings: number[] = [];
  for (let i = 1; i < x.length; i++) {
    const a = x[i - 1]!;
    const b = x[i]!;
    if (a < 0 && b >= 0) crossings.push(i - 1 + -a / (b - a));
  }
  const span = crossings[crossings.length - 1]! - crossings[0]!;
  return ((crossings.length - 1) * rate) / span;
}

function peak(x: Int16Array): number {
  let m = 0;
  for (const v of x) m = Math.max(m, Math.abs(v));
  return m;
}

describe('MicConverter', () => {
  for (const rate of [48000, 44100]) {
    it(`turns a 1 kHz sine at ${rate} Hz into 1 kHz at 16 kHz with the same amplitude`, () => {
      const conv = new MicConverter(rate);
      const frames = convert(conv, [sine(rate, 1000, 2, 0.5)]);
      // 2 s in → 32000 samples out (give or take the one being interpolated)
      const expected = Math.floor(32000 / FRAME_SAMPLES);
      expect(frames.length).toBe(expected);
      for (const f of frames) expect(f.byteLength).toBe(FRAME_SAMPLES * 2);
      const out = joined(frames).subarray(400); // past the filter's start-up
      expect(frequency(out, 16000)).toBeCloseTo(1000, 0);
      expect(peak(out) / (0.5 * 32767)).toBeGreaterThan(0.98);
      expect(peak(out) / (0.5 * 32767)).toBeLessThan(1.02);
    });
  }

  it('makes frames of exactly 512 samples whatever the input block sizes, without gaps', () => {
    for (const seed of [1, 2, 3]) {
      const conv = new MicConverter(48000);
      const frames = convert(conv, [sine(48000, 440, 1, 0.8)], seed);
      expect(frames.length).toBe(31); // 16000 samples = 31 frames + 128 pending
      expect(conv.pending).toBe(16000 - 31 * 512);
      // continuous across frame boundaries: no step bigger than a 440 Hz sine can make
      const out = joined(frames).subarray(200);
      const maxStep = 0.8 * 32767 * 2 * Math.PI * (440 / 16000) * 1.05;
      for (let i = 1; i < out.length; i++) expect(Math.abs(out[i]! - out[i - 1]!)).toBeLessThan(maxStep);
    }
  });

  it('produces the same output for one big block as for many small ones', () => {
    const x = sine(44100, 1000, 0.5, 0.3);
    const a = joined(new MicConverter(44100).push([x]));
    const b = joined(convert(new MicConverter(44100), [x], 11));
    expect(b.length).toBe(a.length);
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(1);
  });

  it('averages channels: equal channels keep their level, opposite ones cancel', () => {
    const l = sine(48000, 1000, 0.5, 0.5);
    const inv = l.map((v) => -v);
    const same = joined(convert(new MicConverter(48000), [l, l])).subarray(400);
    expect(peak(same) / (0.5 * 32767)).toBeCloseTo(1, 1);
    const cancelled = joined(convert(new MicConverter(48000), [l, inv]));
    expect(peak(cancelled)).toBe(0);
    const four = joined(convert(new MicConverter(48000), [l, l, l, l])).subarray(400);
    expect(peak(four)).toBe(peak(same));
  });

  it('filters out what 16 kHz cannot carry instead of aliasing it', () => {
    for (const rate of [48000, 44100]) {
      // 12 kHz would fold to 4 kHz without the low-pass
      const out = joined(convert(new MicConverter(rate), [sine(rate, 12000, 1, 0.5)])).subarray(400);
      expect(peak(out) / (0.5 * 32767)).toBeLessThan(0.01);
    }
  });

  it('passes 16 kHz input through and interpolates lower rates up', () => {
    const x = sine(16000, 1000, 0.5, 0.5);
    const out = joined(new MicConverter(16000).push([x]));
    for (let i = 0; i < out.length; i++) expect(out[i]).toBe(floatToI16(x[i]!));
    const up = joined(convert(new MicConverter(8000), [sine(8000, 500, 1, 0.5)])).subarray(100);
    expect(frequency(up, 16000)).toBeCloseTo(500, 0);
  });

  it('clips loud input to the 16-bit range', () => {
    const out = joined(new MicConverter(16000).push([sine(16000, 1000, 0.1, 1.6)]));
    expect(Math.max(...out)).toBe(32767);
    expect(Math.min(...out)).toBe(-32768);
  });

  it('ignores empty blocks and rejects nonsense rates', () => {
    const conv = new MicConverter(48000);
    expect(conv.push([])).toEqual([]);
    expect(conv.push([new Float32Array(0)])).toEqual([]);
    expect(() => new MicConverter(0)).toThrow();
    expect(() => new MicConverter(NaN)).toThrow();
  });
});

describe('floatToI16', () => {
  it('scales, rounds and clips', () => {
    expect(floatToI16(0)).toBe(0);
    expect(floatToI16(1)).toBe(32767);
    expect(floatToI16(-1)).toBe(-32768);
    expect(floatToI16(0.5)).toBe(16384);
    expect(floatToI16(-0.5)).toBe(-16384);
    expect(floatToI16(3)).toBe(32767);
    expect(floatToI16(-3)).toBe(-32768);
    expect(floatToI16(Infinity)).toBe(32767);
    expect(floatToI16(-Infinity)).toBe(-32768);
    expect(floatToI16(NaN)).toBe(0);
  });
});

describe('FramePacker', () => {
  it('writes little-endian frames of the given size', () => {
    const p = new FramePacker(3);
    expect(p.push(1)).toBeNull();
    expect(p.push(-2)).toBeNull();
    const f = p.push(0x1234)!;
    expect(Array.from(new Uint8Array(f))).toEqual([1, 0, 0xfe, 0xff, 0x34, 0x12]);
    expect(p.pending).toBe(0);
    expect(p.push(5)).toBeNull();
    expect(p.pending).toBe(1);
  });
});

describe('lowPassTaps', () => {
  it('is symmetric with unity gain at DC', () => {
    const t = lowPassTaps(48000, 7200, 99);
    expect(t.length).toBe(99);
    expect(t.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    for (let i = 0; i < 49; i++) expect(t[i]).toBeCloseTo(t[98 - i]!, 15);
  });
});

describe('levelDb', () => {
  const frameOf = (x: Float32Array) => {
    const p = new FramePacker(x.length);
    let f: ArrayBuffer | null = null;
    for (const v of x) f = p.push(floatToI16(v));
    return f!;
  };
  it('is the RMS level in dBFS', () => {
    expect(levelDb(frameOf(sine(16000, 1000, 0.032, 1)))).toBeCloseTo(-3.01, 1);
    expect(levelDb(frameOf(sine(16000, 1000, 0.032, 0.5)))).toBeCloseTo(-9.03, 1);
    expect(levelDb(frameOf(sine(16000, 1000, 0.032, 0.01)))).toBeCloseTo(-43.0, 1);
  });
  it('has a floor for silence and empty frames', () => {
    expect(levelDb(frameOf(new Float32Array(512)))).toBe(LEVEL_FLOOR_DB);
    expect(levelDb(new ArrayBuffer(0))).toBe(LEVEL_FLOOR_DB);
  });
});
