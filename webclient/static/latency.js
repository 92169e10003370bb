// The latency panel: one stacked bar per turn (the bot's own measurement, split into stages),
// the call's median and p95 over user turns, and the figures as a JSON download.

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

export class LatencyPanel {
  constructor({ list, greeting, median: medianEl, p95, count, download }) {
    this.el = { list, greeting, median: medianEl, p95, count, download };
    this.turns = [];
    this.greeting = null;
    this.call = {};
    download.addEventListener("click", () => this.download());
  }

  /** A new call: clear the bars; `call` describes it in the download. */
  reset(call) {
    this.turns = [];
    this.greeting = null;
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
      this.#scale();
      this.#stats();
    }
    this.el.download.disabled = false;
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
    const mid = median(totals);
    const p95 = percentile(totals, 95);
    this.el.median.textContent = mid === null ? "–" : ms(mid);
    this.el.p95.textContent = p95 === null ? "–" : ms(p95);
    this.el.count.textContent = String(totals.length);
  }

  summary() {
    const of = (pick) => {
      const values = this.turns.map(pick);
      return { median: median(values), p95: percentile(values, 95) };
    };
    const stats = { total_ms: of((t) => t.total_ms) };
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
