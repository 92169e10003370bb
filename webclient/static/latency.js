// The latency panel: one stacked bar per turn (the bot's own measurement, split into stages),
// beside it the latency heard in this page (HeardClock), the call's median and p95 over user
// turns, and the figures as a JSON download.

export const STAGES = ["endpointing", "stt", "llm", "tts", "rest"];
export const STAGE_NAMES = {
  endpointing: "Turn detection",
  stt: "STT",
  llm: "LLM",
  tts: "TTS",
  rest: "Rest",
};

const ms = (value) => `${Math.round(value)} ms`;

/** The median, as Python's statistics.median (the bot's call summary uses the same). */
export function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Nearest-rank percentile, as bot/latency.py computes it. */
export function percentile(values, pct) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((pct / 100) * sorted.length));
  return sorted[rank - 1];
}

/**
 * The latency the user hears, measured in the page from the meters' levels (0..1): from the end
 * of their voice (the microphone) to the bot's first audible sound after it. Beyond the bot's
 * own figure it holds both network legs, the jitter buffers and the browser's playout.
 */
export class HeardClock {
  constructor({ voice = 0.35, sound = 0.25 } = {}) {
    this.voice = voice; // about -39 dBFS: speech, not the room
    this.sound = sound; // about -45 dBFS: the bot is audible
    this.lastVoice = null;
    this.botAudible = false;
  }

  /** The levels at `now` (ms); the heard latency (ms) when the bot answers, else null. */
  sample(now, mic, bot) {
    const audible = bot >= this.sound;
    let heard = null;
    if (audible && !this.botAudible && this.lastVoice !== null) {
      heard = now - this.lastVoice;
      this.lastVoice = null;
    }
    // While the bot is audible the microphone may still carry some of it (echo cancellation
    // leaves a trace): only voice over silence counts.
    if (!audible && mic >= this.voice) this.lastVoice = now;
    this.botAudible = audible;
    return heard;
  }
}

export class LatencyPanel {
  constructor({ list, greeting, median: medianEl, p95, count, download }) {
    this.el = { list, greeting, median: medianEl, p95, count, download };
    this.turns = [];
    this.greeting = null;
    this.heardPending = null; // heard before the bot's figure for the turn came
    this.call = {};
    download.addEventListener("click", () => this.download());
  }

  /** A new call: clear the bars; `call` describes it in the download. */
  reset(call) {
    this.turns = [];
    this.greeting = null;
    this.heardPending = null;
    this.call = { ...call, started_at: new Date().toISOString() };
    this.el.list.replaceChildren();
    this.el.greeting.hidden = true;
    this.el.download.disabled = true;
    this.#stats();
  }

  /** One `{"type": "latency", ...}` server message. */
  add(message) {
    const stages = Object.fromEntries(STAGES.map((s) => [s, Number(message.stages_ms?.[s]) || 0]));
    const entry = { turn: message.turn, kind: message.kind, total_ms: Number(message.total_ms) || 0, stages_ms: stages };
    if (entry.kind === "greeting") {
      this.greeting = entry;
      this.el.greeting.textContent = `Greeting: ${ms(entry.total_ms)} to its first sound (not in the statistics).`;
      this.el.greeting.hidden = false;
    } else {
      this.turns.push(entry);
      this.el.list.append(this.#bar(entry));
      if (this.heardPending !== null) this.heard(this.heardPending);
      this.#scale();
      this.#stats();
    }
    this.el.download.disabled = false;
  }

  /** The latency heard in the page for the latest turn (HeardClock), in ms. */
  heard(value) {
    const entry = this.turns.at(-1);
    if (!entry || entry.heard_ms !== undefined) {
      this.heardPending = value; // the turn's own figure is still on its way
      return;
    }
    this.heardPending = null;
    entry.heard_ms = value;
    const row = this.el.list.lastElementChild;
    row.dataset.heardMs = Math.round(value);
    const heard = document.createElement("span");
    heard.className = "bar-heard";
    heard.title = "From the end of your voice to Miss Harper's first sound, measured in this page";
    heard.textContent = `heard ${ms(value)}`;
    row.append(heard);
    this.#stats();
  }

  #bar(entry) {
    const row = document.createElement("li");
    row.className = "bar-row";
    row.dataset.turn = entry.turn;
    row.dataset.totalMs = Math.round(entry.total_ms);
    const label = document.createElement("span");
    label.className = "bar-label";
    label.textContent = `Turn ${entry.turn}`;
    const track = document.createElement("span");
    track.className = "bar-track";
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.setAttribute("role", "img");
    const parts = STAGES.map((s) => `${STAGE_NAMES[s]} ${ms(entry.stages_ms[s])}`);
    bar.setAttribute("aria-label", `Turn ${entry.turn}: ${ms(entry.total_ms)} voice to voice; ${parts.join(", ")}`);
    for (const stage of STAGES) {
      const segment = document.createElement("span");
      segment.className = `segment stage-${stage}`;
      segment.dataset.stage = stage;
      segment.dataset.ms = Math.round(entry.stages_ms[stage]);
      segment.title = `${STAGE_NAMES[stage]}: ${ms(entry.stages_ms[stage])}`;
      const share = entry.total_ms > 0 ? entry.stages_ms[stage] / entry.total_ms : 0;
      segment.style.flexGrow = String(share);
      bar.append(segment);
    }
    const total = document.createElement("span");
    total.className = "bar-total";
    total.textContent = ms(entry.total_ms);
    track.append(bar);
    row.append(label, track, total);
    return row;
  }

  /** Bars share one scale: the slowest turn fills the track. */
  #scale() {
    const longest = Math.max(...this.turns.map((t) => t.total_ms), 1);
    for (const row of this.el.list.children) {
      const width = (Number(row.dataset.totalMs) / longest) * 100;
      row.querySelector(".bar").style.width = `${Math.max(width, 2)}%`;
    }
  }

  #stats() {
    const totals = this.turns.map((t) => t.total_ms);
    const heard = this.turns.filter((t) => t.heard_ms !== undefined).map((t) => t.heard_ms);
    const show = (value, heardValue) =>
      value === null ? "–" : heardValue === null ? ms(value) : `${ms(value)} (heard ${ms(heardValue)})`;
    this.el.median.textContent = show(median(totals), median(heard));
    this.el.p95.textContent = show(percentile(totals, 95), percentile(heard, 95));
    this.el.count.textContent = String(totals.length);
  }

  summary() {
    const of = (pick) => {
      const values = this.turns.map(pick);
      return { median: median(values), p95: percentile(values, 95) };
    };
    const stats = { total_ms: of((t) => t.total_ms) };
    const heard = this.turns.filter((t) => t.heard_ms !== undefined).map((t) => t.heard_ms);
    stats.heard_ms = { median: median(heard), p95: percentile(heard, 95) };
    for (const stage of STAGES) stats[stage] = of((t) => t.stages_ms[stage]);
    return stats;
  }

  toJSON() {
    return {
      call: this.call,
      greeting: this.greeting,
      turns: this.turns,
      summary: { turns: this.turns.length, ...this.summary() },
    };
  }

  download() {
    const blob = new Blob([JSON.stringify(this.toJSON(), null, 2)], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    const stamp = (this.call.started_at || new Date().toISOString()).replace(/[:.]/g, "-");
    link.href = url;
    link.download = `voice-latency-${stamp}.json`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
}
