// AudioWorklet processor: the microphone at the context's own rate → 16 kHz mono s16 frames.
//
// The AudioContext runs at the device's native rate (44.1 or 48 kHz) on purpose: Firefox refuses
// to connect a MediaStream source to a context of another sample rate, so the page cannot simply
// open a 16 kHz context. Downsampling happens here instead, off the main thread.
//
// Each output sample is the mean of the input samples it covers (a box filter). That is a crude
// low-pass, but enough against aliasing for speech heading to Whisper, and it works for any ratio.

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, frameSamples } = options.processorOptions; // from audio.js
    this.step = sampleRate / targetRate; // input samples per output sample (e.g. 3 at 48 kHz)
    this.frameSamples = frameSamples;
    this.frame = new Int16Array(frameSamples);
    this.filled = 0;
    this.position = 0; // where the next output sample starts, in input samples from the block start
    this.sum = 0;
    this.count = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    // No input yet (or the track was swapped): keep the node alive.
    if (!channels || channels.length === 0) return true;
    const input = channels[0];
    for (let i = 0; i < input.length; i++) {
      this.sum += input[i];
      this.count += 1;
      if (i + 1 >= this.position + this.step) {
        this.emit(this.sum / this.count);
        this.position += this.step;
        this.sum = 0;
        this.count = 0;
      }
    }
    this.position -= input.length;
    return true;
  }

  emit(value) {
    const clamped = Math.max(-1, Math.min(1, value));
    this.frame[this.filled++] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    if (this.filled === this.frameSamples) {
      this.port.postMessage(this.frame, [this.frame.buffer]); // transferred: detached here
      this.frame = new Int16Array(this.frameSamples);
      this.filled = 0;
    }
  }
}

registerProcessor("capture-16k", CaptureProcessor);
