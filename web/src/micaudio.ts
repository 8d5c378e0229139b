// Microphone audio conversion, pure: the capture (any rate, any channel count, float samples in
// blocks of any size) → 16 kHz mono signed 16-bit little-endian PCM in frames of exactly 512
// samples (32 ms), the format the server takes as binary WebSocket messages; and the level of a
// frame in dBFS. Used inside the AudioWorklet (micworklet.ts) and by the unit tests.

/** The rate the server wants. */
export const MIC_RATE = 16000;
/** Samples per frame the page sends (32 ms at 16 kHz). */
export const FRAME_SAMPLES = 512;
/** The name the AudioWorklet processor (micworklet.ts) registers under. */
export const MIC_PROCESSOR = 'talkstream-mic';
/** The level of digital silence (and anything quieter), dBFS. */
export const LEVEL_FLOOR_DB = -100;

/** Anti-alias filter: −6 dB at 0.45 × the output rate (7.2 kHz for 16 kHz; speech needs less)… */
const CUTOFF_FRACTION = 0.45;
/** …with a transition about 0.1 × the output rate wide (Hamming window: 3.3 × rate / taps). */
const TRANSITION_FRACTION = 0.1;

/** One float sample (nominally −1…1) as a signed 16-bit integer, clipped to the range. */
export function floatToI16(x: number): number {
  if (!(x > -1)) return x !== x ? 0 : -32768; // also catches NaN → 0
  if (x >= 1) return 32767;
  return Math.round(x < 0 ? x * 32768 : x * 32767) | 0; // | 0: no −0
}

/**
 * A Hamming-windowed sinc low-pass FIR with `count` taps (odd) and its −6 dB point at `cutoffHz`,
 * normalised to unity gain at DC.
 */
export function lowPassTaps(inputRate: number, cutoffHz: number, count: number): Float64Array {
  const taps = new Float64Array(count);
  const fc = cutoffHz / inputRate; // cycles per sample
  const mid = (count - 1) / 2;
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const n = i - mid;
    const sinc = n === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * n) / (Math.PI * n);
    const w = count === 1 ? 1 : 0.54 - 0.46 * Math.cos((2 * Math.PI * i) / (count - 1));
    taps[i] = sinc * w;
    sum += taps[i]!;
  }
  for (let i = 0; i < count; i++) taps[i]! /= sum;
  return taps;
}

/** Collects 16-bit samples into little-endian frames of `size` samples. */
export class FramePacker {
  private view: DataView;
  private fill = 0;

  constructor(readonly size: number = FRAME_SAMPLES) {
    this.view = new DataView(new ArrayBuffer(size * 2));
  }

  /** Samples waiting for the next frame. */
  get pending(): number {
    return this.fill;
  }

  /** Add one sample; returns the finished frame when this one completed it. */
  push(sample: number): ArrayBuffer | null {
    this.view.setInt16(this.fill * 2, sample, true);
    this.fill += 1;
    if (this.fill < this.size) return null;
    const done = this.view.buffer as ArrayBuffer;
    this.view = new DataView(new ArrayBuffer(this.size * 2));
    this.fill = 0;
    return done;
  }
}

/**
 * Streaming converter. Each `push` takes one block (planar channels of equal length) and returns
 * the frames it completed. Downmix = the mean of the channels; above 16 kHz the mono signal goes
 * through the low-pass FIR and is then resampled by linear interpolation (which handles any
 * ratio, 48 kHz → 16 kHz as well as 44.1 kHz → 16 kHz); below 16 kHz it is only interpolated.
 */
export class MicConverter {
  readonly inputRate: number;
  readonly outputRate: number;
  private readonly taps: Float64Array | null;
  /** the last taps−1 mono input samples, oldest first (filter memory) */
  private readonly memory: Float64Array;
  /** input samples per output sample */
  private readonly step: number;
  /** position of the next output sample, in input samples after `prev` */
  private t: number;
  /** the last filtered input sample of the previous block */
  private prev = 0;
  private readonly packer: FramePacker;
  private scratch = new Float64Array(0);
  private ext = new Float64Array(0);
  private out = new Float64Array(0);

  constructor(inputRate: number, opts: { outputRate?: number; frameSamples?: number } = {}) {
    if (!(inputRate > 0) || !Number.isFinite(inputRate)) throw new Error(`bad input rate ${inputRate}`);
    this.inputRate = inputRate;
    this.outputRate = opts.outputRate ?? MIC_RATE;
    this.step = inputRate / this.outputRate;
    this.packer = new FramePacker(opts.frameSamples ?? FRAME_SAMPLES);
    if (inputRate > this.outputRate) {
      let count = Math.ceil((3.3 * inputRate) / (TRANSITION_FRACTION * this.outputRate));
      if (count % 2 === 0) count += 1;
      this.taps = lowPassTaps(inputRate, CUTOFF_FRACTION * this.outputRate, count);
      this.memory = new Float64Array(count - 1);
    } else {
      this.taps = null;
      this.memory = new Float64Array(0);
    }
    this.t = 1; // the first output sample is the first input sample
  }

  /** Samples waiting for the next frame. */
  get pending(): number {
    return this.packer.pending;
  }

  push(channels: readonly Float32Array[]): ArrayBuffer[] {
    const frames: ArrayBuffer[] = [];
    const n = channels.length === 0 ? 0 : channels[0]!.length;
    if (n === 0) return frames;
    const mono = this.downmix(channels, n);
    const filtered = this.taps ? this.filter(mono, n) : mono;
    // seq = [prev, filtered[0..n)]; output at positions t, t+step, … while both neighbours exist.
    let t = this.t;
    while (t < n) {
      const i = Math.floor(t);
      const frac = t - i;
      const a = i === 0 ? this.prev : filtered[i - 1]!;
      const b = filtered[i]!;
      const frame = this.packer.push(floatToI16(a + (b - a) * frac));
      if (frame) frames.push(frame);
      t += this.step;
    }
    this.t = t - n;
    this.prev = filtered[n - 1]!;
    return frames;
  }

  private downmix(channels: readonly Float32Array[], n: number): Float64Array {
    if (this.scratch.length < n) this.scratch = new Float64Array(n);
    const mono = this.scratch;
    const k = channels.length;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += channels[c]![i] ?? 0;
      mono[i] = s / k;
    }
    return mono;
  }

  /** FIR over memory + block; keeps the last taps−1 inputs for the next block. */
  private filter(mono: Float64Array, n: number): Float64Array {
    const taps = this.taps!;
    const m = this.memory.length;
    if (this.ext.length < m + n) {
      this.ext = new Float64Array(m + n);
      this.out = new Float64Array(n);
    }
    const ext = this.ext;
    const out = this.out;
    ext.set(this.memory, 0);
    ext.set(mono.subarray(0, n), m);
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (let k = 0; k <= m; k++) acc += taps[k]! * ext[i + k]!;
      out[i] = acc;
    }
    this.memory.set(ext.subarray(n, n + m));
    return out;
  }
}

/** The samples of a little-endian 16-bit frame. */
export function frameSamples(frame: ArrayBuffer): Int16Array {
  const view = new DataView(frame);
  const out = new Int16Array(frame.byteLength >> 1);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true);
  return out;
}

/** RMS level of a frame in dBFS (full scale = 32768; a full-scale sine is about −3 dBFS). */
export function levelDb(frame: ArrayBuffer): number {
  const view = new DataView(frame);
  const n = frame.byteLength >> 1;
  if (n === 0) return LEVEL_FLOOR_DB;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const s = view.getInt16(i * 2, true) / 32768;
    sum += s * s;
  }
  const rms = Math.sqrt(sum / n);
  return rms > 0 ? Math.max(LEVEL_FLOOR_DB, 20 * Math.log10(rms)) : LEVEL_FLOOR_DB;
}
