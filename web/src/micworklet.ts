// The AudioWorklet processor that turns the microphone's audio into the server's format: it runs
// on the audio thread, feeds each 128-frame render quantum to MicConverter (micaudio.ts) and
// posts every finished 512-sample 16 kHz s16le frame (an ArrayBuffer, transferred) to the page.
// Built by Vite as its own file (imported with `?worker&url` in miccapture.ts).

import { MIC_PROCESSOR, MicConverter } from './micaudio';

// The AudioWorkletGlobalScope is not in TypeScript's DOM library.
declare const sampleRate: number;
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
}
declare function registerProcessor(name: string, ctor: new () => AudioWorkletProcessor): void;

class MicProcessor extends AudioWorkletProcessor {
  private readonly converter = new MicConverter(sampleRate);
  private running = true;

  constructor() {
    super();
    this.port.onmessage = (e: MessageEvent) => {
      if (e.data === 'stop') this.running = false;
    };
  }

  process(inputs: Float32Array[][]): boolean {
    const input = inputs[0];
    if (input && input.length > 0) {
      for (const frame of this.converter.push(input)) this.port.postMessage(frame, [frame]);
    }
    return this.running;
  }
}

registerProcessor(MIC_PROCESSOR, MicProcessor);
