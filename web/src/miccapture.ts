// Opening and closing the microphone: getUserMedia (echo cancellation, noise suppression, gain
// control, mono), an AudioContext at the device's rate and the converter worklet
// (micworklet.ts), whose 16 kHz frames arrive here. Browser-only; voice.ts decides when.

import workletUrl from './micworklet.ts?worker&url';
import { MIC_PROCESSOR } from './micaudio';

export interface CaptureEvents {
  /** one 512-sample 16 kHz s16le frame */
  frame(data: ArrayBuffer): void;
  /** the device went away (unplugged, revoked) */
  ended(): void;
}

/** A DOMException-like error for the page-side reasons the microphone cannot open. */
function named(name: string, message: string): Error {
  return Object.assign(new Error(message), { name });
}

export class MicCapture {
  private constructor(
    private readonly stream: MediaStream,
    private readonly ctx: AudioContext,
    private readonly node: AudioWorkletNode,
    /** the capture's rate and channel count, for the log */
    readonly sampleRate: number,
    readonly channels: number,
    readonly label: string,
  ) {}

  /**
   * Ask for the microphone and start converting. Call from a click (the AudioContext is created
   * before the permission prompt, while the click still counts as a user gesture).
   */
  static async open(events: CaptureEvents): Promise<MicCapture> {
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      throw named('InsecureContext', 'the page is not in a secure context');
    }
    if (typeof AudioWorkletNode === 'undefined') {
      throw named('NoAudioWorklet', 'this browser has no AudioWorklet');
    }
    const ctx = new AudioContext({ latencyHint: 'interactive' });
    let stream: MediaStream | null = null;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      });
      await ctx.audioWorklet.addModule(workletUrl);
      const source = ctx.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(ctx, MIC_PROCESSOR, {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        channelCountMode: 'max',
      });
      node.port.onmessage = (e: MessageEvent) => {
        if (e.data instanceof ArrayBuffer) events.frame(e.data);
      };
      source.connect(node);
      // The node's output is silence; connecting it keeps the graph pulling the microphone.
      node.connect(ctx.destination);
      if (ctx.state === 'suspended') await ctx.resume();
      const track = stream.getAudioTracks()[0];
      track?.addEventListener('ended', () => events.ended());
      const settings = track?.getSettings() ?? {};
      return new MicCapture(stream, ctx, node, ctx.sampleRate, settings.channelCount ?? source.channelCount, track?.label ?? '');
    } catch (e) {
      stream?.getTracks().forEach((t) => t.stop());
      void ctx.close().catch(() => {});
      throw e;
    }
  }

  /** Release the microphone (the browser's recording indicator goes off). */
  close(): void {
    this.node.port.onmessage = null;
    this.node.port.postMessage('stop');
    this.node.disconnect();
    this.stream.getTracks().forEach((t) => t.stop());
    void this.ctx.close().catch(() => {});
  }
}
