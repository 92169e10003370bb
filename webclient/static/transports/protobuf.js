// Pipecat's WebSocket frames (ProtobufFrameSerializer), encoded and decoded by hand:
//
//   message AudioRawFrame { uint64 id = 1; string name = 2; bytes audio = 3; uint32 sample_rate = 4;
//                           uint32 num_channels = 5; optional uint64 pts = 6; }
//   message MessageFrame { string data = 1; }
//   message InterruptionFrame { uint64 id = 1; string name = 2; }
//   message TextFrame { uint64 id = 1; string name = 2; string text = 3; }
//   message TranscriptionFrame { uint64 id = 1; string name = 2; string text = 3; string user_id = 4;
//                                string timestamp = 5; }
//   message Frame { oneof frame { TextFrame text = 1; AudioRawFrame audio = 2;
//                   TranscriptionFrame transcription = 3; MessageFrame message = 4;
//                   InterruptionFrame interruption = 5; } }
//
// Only two wire types carry data here: varints (0) and length-delimited fields (2).

const VARINT = 0;
const FIXED64 = 1;
const BYTES = 2;
const FIXED32 = 5;
const FRAME_FIELDS = { 1: "text", 2: "audio", 3: "transcription", 4: "message", 5: "interruption" };
const encoder = new TextEncoder();
const decoder = new TextDecoder();

class Writer {
  constructor() {
    this.parts = [];
    this.length = 0;
  }

  #push(bytes) {
    this.parts.push(bytes);
    this.length += bytes.length;
  }

  varint(value) {
    const bytes = [];
    let v = value; // numbers up to 2^53 are exact; plenty for ids and sample rates
    while (v > 0x7f) {
      bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    bytes.push(v);
    this.#push(Uint8Array.from(bytes));
    return this;
  }

  tag(field, wireType) {
    return this.varint(field * 8 + wireType);
  }

  uint(field, value) {
    return value ? this.tag(field, VARINT).varint(value) : this; // proto3 omits zero
  }

  bytes(field, bytes) {
    this.tag(field, BYTES).varint(bytes.length);
    this.#push(bytes);
    return this;
  }

  string(field, text) {
    return this.bytes(field, encoder.encode(text));
  }

  finish() {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const part of this.parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
}

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
  }

  done() {
    return this.pos >= this.bytes.length;
  }

  varint() {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= this.bytes.length) throw new Error("truncated varint");
      const byte = this.bytes[this.pos++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
    }
  }

  bytesField() {
    const length = this.varint();
    const end = this.pos + length;
    if (end > this.bytes.length) throw new Error("truncated field");
    const out = this.bytes.subarray(this.pos, end);
    this.pos = end;
    return out;
  }

  skip(wireType) {
    if (wireType === VARINT) this.varint();
    else if (wireType === BYTES) this.bytesField();
    else if (wireType === FIXED64) this.pos += 8;
    else if (wireType === FIXED32) this.pos += 4;
    else throw new Error(`unsupported wire type ${wireType}`);
  }

  /** Every field of one message as {field: value}; varints as numbers, the rest as bytes. */
  fields() {
    const out = {};
    while (!this.done()) {
      const key = this.varint();
      const field = Math.floor(key / 8);
      const wireType = key % 8;
      if (wireType === VARINT) out[field] = this.varint();
      else if (wireType === BYTES) out[field] = this.bytesField();
      else this.skip(wireType);
    }
    return out;
  }
}

/** Frame{audio}: s16le mono PCM (an Int16Array) from the microphone. */
export function encodeAudio(samples, sampleRate) {
  const pcm = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
  const audio = new Writer().bytes(3, pcm).uint(4, sampleRate).uint(5, 1).finish();
  return new Writer().bytes(2, audio).finish();
}

/** Frame{message}: an RTVI message, as a JSON string. */
export function encodeMessage(message) {
  const inner = new Writer().string(1, JSON.stringify(message)).finish();
  return new Writer().bytes(4, inner).finish();
}

/**
 * One binary WebSocket frame → {kind: "audio", samples, sampleRate, channels}
 * | {kind: "message", message} | {kind: "interruption"} | {kind: "text"|"transcription", text}
 * | null for frames this page does not use.
 */
export function decodeFrame(buffer) {
  const outer = new Reader(new Uint8Array(buffer)).fields();
  for (const [field, kind] of Object.entries(FRAME_FIELDS)) {
    const body = outer[field];
    if (!(body instanceof Uint8Array)) continue;
    const f = new Reader(body).fields();
    switch (kind) {
      case "audio": {
        const raw = f[3] instanceof Uint8Array ? f[3] : new Uint8Array(0);
        // Copy to an aligned buffer; s16le read as the platform's order (little-endian
        // on every browser platform).
        const samples = new Int16Array(raw.slice().buffer, 0, raw.length >> 1);
        return { kind, samples, sampleRate: f[4] || 16000, channels: f[5] || 1 };
      }
      case "message":
        return { kind, message: JSON.parse(f[1] ? decoder.decode(f[1]) : "null") };
      case "interruption":
        return { kind };
      default:
        return { kind, text: f[3] ? decoder.decode(f[3]) : "" };
    }
  }
  return null;
}
