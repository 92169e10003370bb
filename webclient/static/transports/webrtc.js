// WebRTC to the bot: a plain RTCPeerConnection, the SDP offer POSTed to /api/offer, RTVI
// messages on the "chat" data channel, the bot's voice as a remote audio track.

import { CallError } from "./errors.js";

const GATHER_LIMIT_MS = 2000; // host candidates are enough on a LAN; don't wait on slow STUN
const OFFER_TIMEOUT_MS = 15000;
const DISCONNECTED_GRACE_MS = 4000; // "disconnected" often heals by itself (Wi-Fi roaming)

function waitForIceGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_LIMIT_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

export class WebRTCTransport {
  name = "webrtc";

  /**
   * handlers: onMessage(rtvi), onRemoteStream(stream), onLost(CallError).
   * timeoutMs: how long ICE + DTLS may take before the call counts as unreachable this way.
   */
  constructor({ iceServers, timeoutMs, onMessage, onRemoteStream, onLost }) {
    this.iceServers = iceServers || [];
    this.timeoutMs = timeoutMs;
    this.onMessage = onMessage;
    this.onRemoteStream = onRemoteStream;
    this.onLost = onLost;
    this.pc = null;
    this.channel = null;
    this.sender = null;
    this.closed = false;
    this.connected = false;
    this.graceTimer = null;
  }

  async connect(track, requestData) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    this.sender = pc.addTransceiver(track, { direction: "sendrecv" }).sender;
    pc.addTransceiver("video", { direction: "recvonly" }); // the bot expects m-line 1 for video
    const channel = pc.createDataChannel("chat", { ordered: true });
    this.channel = channel;

    pc.ontrack = (event) => {
      if (event.track.kind !== "audio") return;
      this.onRemoteStream(event.streams[0] || new MediaStream([event.track]));
    };
    channel.onmessage = (event) => this.#receive(event.data);

    const opened = new Promise((resolve, reject) => {
      channel.onopen = () => {
        channel.send(JSON.stringify(clientReady()));
        resolve();
      };
      // iceConnectionState rather than connectionState: the same states in every browser.
      pc.oniceconnectionstatechange = () => {
        const state = pc.iceConnectionState;
        if (state === "failed" && !this.connected) {
          reject(new CallError("no-route", "WebRTC could not connect (ICE failed)"));
        }
        this.#watch(state);
      };
      channel.onclose = () => {
        if (this.connected) this.#lost("the bot closed the call");
      };
    });

    opened.catch(() => {}); // awaited below; a failure before then is not "unhandled"

    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc);
    if (this.closed) throw new CallError("cancelled", "cancelled");

    let response;
    try {
      response = await fetch("/api/offer", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer", requestData }),
        signal: timeoutSignal(OFFER_TIMEOUT_MS),
      });
    } catch (error) {
      throw new CallError("unreachable", error.message);
    }
    const body = await response.json().catch(() => ({}));
    if (response.status === 400) throw new CallError("refused", body.error || "the bot refused the call");
    if (response.status === 503) throw new CallError("busy", body.error || "the bot is not ready");
    if (!response.ok) throw new CallError("unreachable", body.error || `the bot answered HTTP ${response.status}`);
    this.pcId = body.pc_id;
    // Where this call's later requests go: the bot process that holds it, behind a proxy too.
    this.callUrl = body.call_url || "/api/offer";
    await pc.setRemoteDescription({ sdp: body.sdp, type: body.type });

    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new CallError("no-route", `WebRTC did not connect within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
    });
    try {
      await Promise.race([opened, timeout]);
    } finally {
      clearTimeout(timer);
    }
    this.connected = true;
  }

  #receive(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    if (message.label === "rtvi-ai") this.onMessage(message);
    else if (message.type === "signalling" && message.message?.type === "peerLeft") {
      this.#lost("the bot ended the call");
    }
  }

  #watch(state) {
    clearTimeout(this.graceTimer);
    if (!this.connected || this.closed) return;
    if (state === "failed" || state === "closed") this.#lost(`the connection ${state}`);
    else if (state === "disconnected") {
      this.graceTimer = setTimeout(() => this.#lost("the connection dropped"), DISCONNECTED_GRACE_MS);
    }
  }

  #lost(reason) {
    if (this.closed) return;
    this.close();
    this.onLost(new CallError("lost", reason));
  }

  /** Another microphone, without renegotiating. */
  async setTrack(track) {
    if (this.sender) await this.sender.replaceTrack(track);
  }

  /** Hang up. Returns a promise, settled once the bot has heard of an offer given up on. */
  close() {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    clearTimeout(this.graceTimer);
    if (this.channel) this.channel.onclose = null;
    if (this.pc) {
      this.pc.oniceconnectionstatechange = null;
      this.pc.close();
    }
    // A bot that never saw media cannot tell the offer was given up: say so, and its place is
    // free for the WebSocket fallback at once (keepalive: it goes out even as the page unloads).
    if (!this.pcId || this.connected) return Promise.resolve();
    return fetch(this.callUrl, {
      method: "DELETE",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ pc_id: this.pcId }),
      keepalive: true,
    }).then(
      () => {},
      () => {},
    );
  }
}

/** AbortSignal.timeout, also where it is missing (Safari before 16). */
export function timeoutSignal(ms) {
  if (AbortSignal.timeout) return AbortSignal.timeout(ms);
  const controller = new AbortController();
  setTimeout(() => controller.abort(new DOMException("timed out", "TimeoutError")), ms);
  return controller.signal;
}

export function clientReady() {
  return {
    label: "rtvi-ai",
    type: "client-ready",
    id: crypto.randomUUID?.() ?? `ready-${Date.now()}`, // randomUUID: secure contexts only
    data: { version: "2.2.0", about: { library: "offgrid-webclient", library_version: "1.0" } },
  };
}
