// Audio for one call: the microphone (with its level), 16 kHz capture for the WebSocket
// transport, and the bot's voice (a WebRTC track, or PCM chunks scheduled back to back).

// The bot's input rate (bot/stt.py SAMPLE_RATE); tests/unit/test_contract_facts.py pins the two.
export const CAPTURE_RATE = 16000;
const FRAME_SAMPLES = CAPTURE_RATE / 50; // 20 ms
const MAX_QUEUE_SECONDS = 30; // never let queued bot speech grow without bound

// Echo cancellation matters most: without it the bot hears itself on laptop speakers and
// interrupts its own answers.
export const MIC_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

export async function openMicrophone(deviceId) {
  if (!navigator.mediaDevices?.getUserMedia) {
    const error = new Error("insecure context");
    error.name = "InsecureContextError";
    throw error;
  }
  const audio = { ...MIC_CONSTRAINTS };
  if (deviceId) audio.deviceId = { exact: deviceId };
  return navigator.mediaDevices.getUserMedia({ audio, video: false });
}

export async function listMicrophones() {
  if (!navigator.mediaDevices?.enumerateDevices) return [];
  const devices = await navigator.mediaDevices.enumerateDevices();
  // Labels stay empty until the page has been granted the microphone once.
  return devices.filter((d) => d.kind === "audioinput" && d.deviceId !== "communications");
}

// 0..1 from an RMS amplitude: -60 dBFS and below is 0, full scale is 1.
function levelOf(analyser, buffer) {
  analyser.getFloatTimeDomainData(buffer);
  let sum = 0;
  for (const v of buffer) sum += v * v;
  const rms = Math.sqrt(sum / buffer.length);
  if (rms <= 0) return 0;
  return Math.max(0, Math.min(1, (20 * Math.log10(rms) + 60) / 60));
}

export class CallAudio {
  // Create it inside the click handler: Safari only lets an AudioContext start (or resume) in
  // a user gesture, and Chrome's autoplay policy is the same for pages without prior interaction.
  constructor({ onLevels }) {
    // No sampleRate: the device's own rate (see capture-worklet.js for why).
    this.context = new AudioContext({ latencyHint: "interactive" });
    this.context.resume().catch(() => {});
    this.onLevels = onLevels;
    this.micAnalyser = this.#analyser();
    this.botAnalyser = this.#analyser();
    this.micSource = null;
    this.capture = null;
    this.remoteSource = null;
    this.playbackGain = null;
    this.playing = new Set();
    this.playhead = 0;
    this.buffer = new Float32Array(this.micAnalyser.fftSize);
    // Every 20 ms: the meters, and the page's own measure of the latency heard (latency.js).
    this.timer = setInterval(() => this.#measure(), 20);
  }

  #analyser() {
    const analyser = this.context.createAnalyser();
    analyser.fftSize = 1024;
    analyser.smoothingTimeConstant = 0;
    return analyser;
  }

  #measure() {
    this.onLevels(
      levelOf(this.micAnalyser, this.buffer),
      levelOf(this.botAnalyser, this.buffer),
    );
  }

  /** Use this microphone stream (again, after a device change): level meter and capture. */
  useMicrophone(stream) {
    if (this.micSource) this.micSource.disconnect();
    this.micSource = this.context.createMediaStreamSource(stream);
    this.micSource.connect(this.micAnalyser);
    if (this.capture) this.micSource.connect(this.capture);
  }

  /** 16 kHz s16 mono frames of 20 ms, for the WebSocket transport. */
  async startCapture(onFrame) {
    // AudioWorklet: Chrome 66+, Firefox 76+, Safari 14.1+. Only on secure contexts.
    await this.context.audioWorklet.addModule("/static/capture-worklet.js");
    this.capture = new AudioWorkletNode(this.context, "capture-16k", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions: { targetRate: CAPTURE_RATE, frameSamples: FRAME_SAMPLES },
    });
    this.capture.port.onmessage = (event) => onFrame(event.data);
    // A node must reach the destination to be pulled in every browser; a muted gain keeps the
    // microphone out of the speakers.
    const sink = this.context.createGain();
    sink.gain.value = 0;
    this.capture.connect(sink).connect(this.context.destination);
    if (this.micSource) this.micSource.connect(this.capture);
    return CAPTURE_RATE;
  }

  /** The bot's WebRTC track: played by the <audio> element, measured by an analyser. */
  playRemoteStream(stream, element) {
    // Chrome only feeds a remote WebRTC stream to Web Audio while a media element plays it,
    // so the element does the playing (it also gets the browser's jitter buffer and echo
    // cancellation reference) and Web Audio only listens.
    element.srcObject = stream;
    // Allowed without a fresh gesture: the call started from a click, and Safari also lets a
    // page that is capturing the microphone play audio.
    element.play().catch(() => {});
    if (this.remoteSource) this.remoteSource.disconnect();
    this.remoteSource = this.context.createMediaStreamSource(stream);
    this.remoteSource.connect(this.botAnalyser);
  }

  /** One chunk of the bot's PCM (s16le mono) over WebSocket, played right after the last. */
  playPcm(samples, sampleRate) {
    if (!this.playbackGain) {
      this.playbackGain = this.context.createGain();
      this.playbackGain.connect(this.botAnalyser);
      this.playbackGain.connect(this.context.destination);
    }
    if (samples.length === 0) return;
    // AudioBuffers at 24 kHz play fine in a 44.1/48 kHz context: the browser resamples.
    const buffer = this.context.createBuffer(1, samples.length, sampleRate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
    const now = this.context.currentTime;
    if (this.playhead < now) this.playhead = now + 0.05; // a little cushion after a gap
    if (this.playhead - now > MAX_QUEUE_SECONDS) return;
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.playbackGain);
    source.onended = () => this.playing.delete(source);
    source.start(this.playhead);
    this.playing.add(source);
    this.playhead += buffer.duration;
  }

  /** The bot was interrupted: drop everything queued. */
  clearPlayback() {
    for (const source of this.playing) {
      try {
        source.stop();
      } catch {
        // already stopped
      }
    }
    this.playing.clear();
    this.playhead = 0;
  }

  close() {
    clearInterval(this.timer);
    this.clearPlayback();
    this.onLevels(0, 0);
    this.context.close().catch(() => {});
  }
}
