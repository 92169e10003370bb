// What the person sees: connection state, the speaking indicator, alerts, the conversation log,
// level meters. Observable state is mirrored in data-* attributes on <body>.

export const $ = (id) => document.getElementById(id);

const ACTIVITY_WORDS = {
  "": "Press Connect to start talking",
  listening: "Listening. Go ahead and talk",
  hearing: "Hearing you…",
  thinking: "Thinking…",
  speaking: "{bot} is speaking",
  muted: "Microphone muted",
};

export class View {
  constructor() {
    this.botName = "Miss Harper";
    this.alerts = new Map(); // key → {text, reconnect}
    this.userLine = null;
    this.botLine = null;
    this.botSegments = new Set();
    this.peaks = { mic: 0, bot: 0 };
  }

  /** state: idle | connecting | connected | lost; words: what #state says. */
  setState(state, words) {
    document.body.dataset.state = state;
    $("state").textContent = words;
    const inCall = state === "connecting" || state === "connected";
    const focused = document.activeElement;
    $("connect").hidden = inCall;
    $("connect").disabled = inCall;
    $("disconnect").hidden = !inCall;
    $("mute").disabled = state !== "connected";
    $("settings-fields").disabled = inCall;
    if (!inCall) this.setActivity("");
    // Keep keyboard users in place when the button they pressed goes away.
    if (focused?.hidden || focused?.disabled || focused?.closest?.("[hidden]")) {
      (inCall ? $("disconnect") : $("connect")).focus();
    }
  }

  setTransport(name) {
    document.body.dataset.transport = name || "";
    const badge = $("transport-badge");
    badge.hidden = !name;
    badge.textContent = name === "websocket" ? "WebSocket" : name === "webrtc" ? "WebRTC" : "";
  }

  setActivity(activity) {
    document.body.dataset.activity = activity;
    $("activity").dataset.activity = activity;
    $("activity-text").textContent = ACTIVITY_WORDS[activity].replace("{bot}", this.botName);
  }

  setMuted(muted) {
    const button = $("mute");
    button.setAttribute("aria-pressed", String(muted));
    button.textContent = muted ? "Unmute" : "Mute";
  }

  // ---- alerts --------------------------------------------------------------------------

  /** Show `text` under `key` (one alert per key); reconnect: offer the Reconnect button. */
  alert(key, text, { reconnect = false } = {}) {
    this.alerts.set(key, { text, reconnect });
    this.#renderAlerts();
  }

  clearAlert(key) {
    if (key === undefined) this.alerts.clear();
    else this.alerts.delete(key);
    this.#renderAlerts();
  }

  #renderAlerts() {
    const box = $("alert");
    const text = $("alert-text");
    text.replaceChildren(
      ...[...this.alerts.values()].map(({ text: line }) => {
        const p = document.createElement("span");
        p.className = "alert-line";
        p.textContent = line;
        return p;
      }),
    );
    box.hidden = this.alerts.size === 0;
    $("reconnect").hidden = ![...this.alerts.values()].some((a) => a.reconnect);
  }

  // ---- conversation log ----------------------------------------------------------------

  #line(kind, who, text) {
    const log = $("log");
    log.querySelector(".empty")?.remove();
    const item = document.createElement("li");
    item.className = kind;
    if (who) {
      const label = document.createElement("span");
      label.className = "who";
      label.textContent = who;
      item.append(label);
    }
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    item.append(body);
    log.append(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  notice(text) {
    this.#line("notice", "", text);
  }

  /**
   * The user's words. One line per turn: final pieces add up, an interim result shows after
   * them until it is final. The line closes when the bot answers.
   */
  userText(text, final) {
    if (!text?.trim()) return;
    if (!this.userLine) {
      this.userLine = this.#line("user", "You", "");
      this.userLine.dataset.final = "";
    }
    const line = this.userLine;
    const committed = line.dataset.final;
    const joined = `${committed} ${text.trim()}`.trim();
    if (final) line.dataset.final = joined;
    line.querySelector(".text").textContent = joined;
    line.classList.toggle("interim", !final);
    $("log").scrollTop = $("log").scrollHeight;
  }

  /** What the user says next starts a new line. */
  userDone() {
    this.userLine = null;
  }

  /** One piece of what the bot says, as it is spoken. */
  botText(text, segmentId) {
    if (!text?.trim()) return;
    this.userDone(); // the bot answers: the user's turn is over
    if (segmentId !== undefined && segmentId !== null) {
      if (this.botSegments.has(segmentId)) return;
      this.botSegments.add(segmentId);
    }
    if (!this.botLine) this.botLine = this.#line("bot", this.botName, "");
    const body = this.botLine.querySelector(".text");
    body.textContent = `${body.textContent} ${text.trim()}`.trim();
    $("log").scrollTop = $("log").scrollHeight;
  }

  /** The bot stopped speaking: its next words start a new line. */
  botDone() {
    this.botLine = null;
  }

  /** Cut the bot's current line short, visibly. */
  botInterrupted() {
    const line = this.botLine;
    this.botLine = null;
    if (!line || line.classList.contains("interrupted")) return;
    line.classList.add("interrupted");
    const mark = document.createElement("span");
    mark.className = "mark";
    mark.textContent = "interrupted";
    line.append(mark);
  }

  /** A new call: fresh lines, segment ids and level peaks (ids restart with each bot). */
  startCall() {
    this.endCall();
    this.peaks = { mic: 0, bot: 0 };
    $("mic-level").dataset.peak = "0";
    $("bot-level").dataset.peak = "0";
  }

  endCall() {
    this.userLine = null;
    this.botLine = null;
    this.botSegments.clear();
  }

  // ---- meters --------------------------------------------------------------------------

  levels(mic, bot) {
    for (const [name, value] of [["mic", mic], ["bot", bot]]) {
      const meter = $(`${name}-level`);
      meter.value = value;
      meter.textContent = `${Math.round(value * 100)}%`;
      if (value > this.peaks[name]) {
        this.peaks[name] = value;
        meter.dataset.peak = value.toFixed(2);
      }
    }
  }
}
