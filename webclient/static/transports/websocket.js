// WebSocket to the bot's /ws: a JSON "start" message with the settings, then Pipecat's protobuf
// frames both ways (protobuf.js): 16 kHz PCM up, the bot's PCM and RTVI messages down.
// For networks where WebRTC's UDP cannot get through; it rides on the page's own TCP port.

import { CallError } from "./errors.js";
import { decodeFrame, encodeAudio, encodeMessage } from "./protobuf.js";
import { clientReady } from "./webrtc.js";

const POLICY_VIOLATION = 1008; // the bot refused the settings
const TRY_AGAIN_LATER = 1013; // the bot is loading, or every line is in use
const MAX_BUFFERED_BYTES = 32 * 1024; // about 1 s of 16 kHz audio: drop mic frames beyond

export function socketUrl(path = "/ws") {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

export class WebSocketTransport {
  name = "websocket";

  /**
   * handlers: onMessage(rtvi), onAudio(samples Int16Array, sampleRate), onInterruption(),
   * onLost(CallError).
   */
  constructor({ onMessage, onAudio, onInterruption, onLost, timeoutMs = 15000 }) {
    this.onMessage = onMessage;
    this.onAudio = onAudio;
    this.onInterruption = onInterruption;
    this.onLost = onLost;
    this.timeoutMs = timeoutMs;
    this.socket = null;
    this.connected = false;
    this.closed = false;
    this.refusal = "";
  }

  /** Resolves once the bot has accepted the settings (its first frame has arrived). */
  connect(requestData) {
    return new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new WebSocket(socketUrl());
      } catch (error) {
        reject(new CallError("unreachable", error.message));
        return;
      }
      this.socket = socket;
      socket.binaryType = "arraybuffer";
      const timer = setTimeout(() => {
        reject(new CallError("unreachable", "the bot did not answer on /ws"));
        this.close();
      }, this.timeoutMs);
      const accepted = () => {
        if (this.connected) return;
        this.connected = true;
        clearTimeout(timer);
        resolve();
      };

      socket.onopen = () => {
        socket.send(JSON.stringify({ type: "start", ...requestData }));
        this.send(clientReady());
      };
      socket.onmessage = (event) => {
        if (typeof event.data === "string") {
          this.#control(event.data);
          return;
        }
        accepted();
        this.#frame(event.data);
      };
      socket.onclose = (event) => {
        clearTimeout(timer);
        if (this.closed) return;
        this.closed = true;
        if (event.code === POLICY_VIOLATION || event.code === TRY_AGAIN_LATER) {
          const text = this.refusal || event.reason || "the bot refused the settings";
          const error = new CallError(event.code === TRY_AGAIN_LATER ? "busy" : "refused", text);
          if (this.connected) this.onLost(error);
          else reject(error);
        } else if (!this.connected) {
          reject(new CallError("unreachable", event.reason || `the WebSocket closed (code ${event.code})`));
        } else {
          this.onLost(new CallError("lost", event.reason || `the WebSocket closed (code ${event.code})`));
        }
      };
    });
  }

  #control(text) {
    try {
      const message = JSON.parse(text);
      if (message.type === "error") this.refusal = message.error || "";
    } catch {
      // not JSON: ignore
    }
  }

  #frame(buffer) {
    let frame;
    try {
      frame = decodeFrame(buffer);
    } catch (error) {
      console.warn("Undecodable frame from the bot:", error);
      return;
    }
    if (!frame) return;
    if (frame.kind === "audio") this.onAudio(frame.samples, frame.sampleRate);
    else if (frame.kind === "message" && frame.message?.label === "rtvi-ai") this.onMessage(frame.message);
    else if (frame.kind === "interruption") this.onInterruption();
  }

  /** One 20 ms microphone frame. */
  sendAudio(samples, sampleRate) {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    // A slow link must not build up seconds of delay: drop audio rather than queue it.
    if (socket.bufferedAmount > MAX_BUFFERED_BYTES) return;
    socket.send(encodeAudio(samples, sampleRate));
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(encodeMessage(message));
  }

  close() {
    if (this.closed && !this.socket) return;
    this.closed = true;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000, "bye");
    this.socket = null;
  }
}
