// The page's call: settings, microphone, transport (WebRTC first, WebSocket as the alternative),
// RTVI messages from the bot → the view. Plain modules, no build step, nothing from the internet.

import { CAPTURE_RATE, CallAudio, listMicrophones, openMicrophone } from "./audio.js";
import { HeardClock, LatencyPanel } from "./latency.js";
import { timeoutSignal, WebRTCTransport } from "./transports/webrtc.js";
import { WebSocketTransport } from "./transports/websocket.js";
import { $, View } from "./ui.js";

const config = JSON.parse($("kit-config").textContent);
const STORAGE_KEY = "offgrid-voice-kit.settings";
const THINKING_LIMIT_MS = 10000;
const SERVICE_NAMES = {
  llm: "The language model",
  tts: "The voice server (TTS)",
  stt: "Speech recognition",
  bot: "The bot",
};

const view = new View();
const latency = new LatencyPanel({
  list: $("bars"),
  greeting: $("greeting-latency"),
  median: $("stat-median"),
  p95: $("stat-p95"),
  count: $("stat-turns"),
  download: $("download"),
});

let call = null; // {id, audio, mic, transport, muted, botSpeaking, userSpeaking, thinkingTimer}
let calls = 0;
let voicesListed = false; // the bot could list its voices, so a choice can be checked

// ---- settings ------------------------------------------------------------------------

function stored() {
  try {
    return JSON.parse(localStorage.getItem(STORAGE_KEY)) || {};
  } catch {
    return {};
  }
}

function save() {
  const prompt = $("prompt").value;
  const values = {
    voice: $("voice").value,
    language: $("language").value,
    transport: $("transport").value,
    mic: $("mic").value,
    prompt: prompt === config.default_prompt ? undefined : prompt,
  };
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(values));
  } catch {
    // private browsing: settings just aren't remembered
  }
}

function setOptions(select, values, label = (v) => v) {
  select.replaceChildren(
    ...values.map((value) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label(value);
      return option;
    }),
  );
}

function choose(select, ...candidates) {
  const values = [...select.options].map((o) => o.value);
  const pick = candidates.find((c) => c !== undefined && values.includes(c));
  if (pick !== undefined) select.value = pick;
}

function languageName(code) {
  try {
    const name = new Intl.DisplayNames([navigator.language || "en"], { type: "language" }).of(code);
    return name && name !== code ? `${name} (${code})` : code;
  } catch {
    return code;
  }
}

async function loadVoices() {
  const saved = stored();
  const defaultVoice = config.default_voice || "";
  let voices = [];
  let languages = [config.default_language || "en"];
  const note = $("voices-note");
  try {
    const response = await fetch("/api/voices", { signal: timeoutSignal(10000) });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `the bot answered HTTP ${response.status}`);
    voices = body.voices || [];
    if (body.languages?.length) languages = body.languages;
    voicesListed = true;
    note.hidden = true;
  } catch (error) {
    note.textContent = `Voices could not be listed: ${error.message}. You can still connect with the default voice.`;
    note.hidden = false;
  }
  if (voices.length) setOptions($("voice"), voices);
  else setOptions($("voice"), [defaultVoice], (v) => (v ? `${v} (default)` : "Default voice"));
  choose($("voice"), saved.voice, defaultVoice, voices[0]);
  setOptions($("language"), languages, languageName);
  choose($("language"), saved.language, config.default_language, languages[0]);
}

function initSettings() {
  const saved = stored();
  const prompt = $("prompt");
  if (config.max_prompt_chars) prompt.maxLength = config.max_prompt_chars;
  prompt.value = saved.prompt ?? config.default_prompt ?? "";
  choose($("transport"), saved.transport);
  setOptions($("language"), [config.default_language || "en"], languageName);
  countPrompt();
  prompt.addEventListener("input", () => {
    countPrompt();
    save();
  });
  $("reset-prompt").addEventListener("click", () => {
    prompt.value = config.default_prompt ?? "";
    countPrompt();
    save();
  });
  for (const id of ["voice", "language", "transport"]) $(id).addEventListener("change", save);
  loadVoices();
}

function countPrompt() {
  const length = $("prompt").value.length;
  const limit = config.max_prompt_chars;
  $("prompt-count").textContent = length
    ? `${length}${limit ? ` / ${limit}` : ""} characters`
    : "Empty: the bot's own persona is used.";
  view.botName = $("prompt").value.trim() === (config.default_prompt || "").trim() ? "Miss Harper" : "Bot";
  markInvalid(null);
}

function requestData() {
  const data = {};
  // Without the voice list the bot cannot check a voice or language: leave both to its defaults.
  const keys = voicesListed ? ["voice", "language", "prompt"] : ["prompt"];
  for (const key of keys) {
    const value = $(key).value;
    if (value.trim()) data[key] = value; // empty: the bot's default
  }
  return data;
}

/** Point at the setting the bot refused ("voice: …" → the voice field). */
function markInvalid(message) {
  for (const key of ["voice", "language", "prompt"]) {
    const bad = Boolean(message?.startsWith(`${key}:`));
    $(key).toggleAttribute("aria-invalid", bad);
    if (bad) {
      $("settings").open = true;
      $(key).focus();
    }
  }
}

// ---- microphones ---------------------------------------------------------------------

async function refreshMicrophones() {
  const select = $("mic");
  const current = select.value || stored().mic || "";
  let devices = [];
  try {
    devices = await listMicrophones();
  } catch {
    return;
  }
  const options = [{ value: "", label: "Default microphone" }];
  devices
    .filter((d) => d.deviceId && d.deviceId !== "default")
    .forEach((d, i) => options.push({ value: d.deviceId, label: d.label || `Microphone ${i + 1}` }));
  select.replaceChildren(
    ...options.map(({ value, label }) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      return option;
    }),
  );
  choose(select, current, "");
}

function microphoneWords(error) {
  switch (error.name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
    case "SecurityError":
      return "The microphone is blocked for this page. Allow it in the browser's site settings (the icon beside the address), then press Connect again.";
    case "NotFoundError":
      return "No microphone was found. Plug one in, then press Connect again.";
    case "OverconstrainedError":
      return "The chosen microphone is not available any more. Pick another one and press Connect again.";
    case "NotReadableError":
    case "AbortError":
      return "The microphone could not be opened; another application may be using it.";
    case "InsecureContextError":
      return "The browser only offers the microphone to https:// pages and to http://localhost. Open the page that way.";
    default:
      return `The microphone could not be used: ${error.message || error.name}.`;
  }
}

async function switchMicrophone() {
  save();
  if (!call?.mic) return;
  try {
    const next = await openMicrophone($("mic").value);
    if (!call) {
      next.getTracks().forEach((t) => t.stop());
      return;
    }
    const track = next.getAudioTracks()[0];
    track.enabled = !call.muted;
    await call.transport?.setTrack?.(track);
    call.audio.useMicrophone(next);
    call.mic.getTracks().forEach((t) => t.stop());
    call.mic = next;
    view.clearAlert("mic");
  } catch (error) {
    view.alert("mic", microphoneWords(error));
  }
}

// ---- the call ------------------------------------------------------------------------

function callWords(error) {
  const seconds = Math.round((config.webrtc_timeout_ms || 5000) / 100) / 10;
  switch (error.kind) {
    case "refused":
      return `The bot refused these settings: ${error.message}`;
    case "unreachable":
      return `The bot is not reachable (${error.message}). Check that it is running, then press Reconnect.`;
    case "busy":
      return `The bot cannot take this call now: ${error.message}. Press Reconnect in a moment.`;
    case "no-route":
      return `WebRTC could not connect within ${seconds} s; a firewall may be blocking its UDP traffic. Choose "Auto" or "WebSocket" under Settings and connect again.`;
    case "lost":
      return `Connection lost: ${error.message}. Press Reconnect to call again.`;
    default:
      return `The call could not start: ${error.message || error}.`;
  }
}

const isCurrent = (id) => call !== null && call.id === id;

function activity(state) {
  if (!call) return;
  clearTimeout(call.thinkingTimer);
  view.setActivity(state === "listening" && call.muted ? "muted" : state);
  // A noise the bot did not answer must not leave "Thinking…" up for good.
  if (state === "thinking") call.thinkingTimer = setTimeout(() => activity("listening"), THINKING_LIMIT_MS);
}

function onRtvi(id, message) {
  if (!isCurrent(id)) return;
  const data = message.data || {};
  switch (message.type) {
    case "user-started-speaking":
      call.userSpeaking = true;
      activity("hearing");
      break;
    case "user-stopped-speaking":
      call.userSpeaking = false;
      if (!call.botSpeaking) activity("thinking");
      break;
    case "user-transcription":
      view.userText(data.text, data.final !== false);
      break;
    case "bot-output":
      // Protocol 2: "new" carries a segment's text; later messages only report progress.
      if (data.spoken_status && data.spoken_status !== "new") break;
      view.botText(data.text, data.segment_id);
      break;
    case "bot-started-speaking":
      call.botSpeaking = true;
      view.userDone();
      activity("speaking");
      break;
    case "bot-stopped-speaking":
      call.botSpeaking = false;
      view.botDone();
      activity(call.userSpeaking ? "hearing" : "listening");
      break;
    case "bot-interrupted":
      // Sent on every barge-in, also when the bot was already quiet.
      if (call.botSpeaking) view.botInterrupted();
      call.audio.clearPlayback();
      break;
    case "server-message":
      onServerMessage(data);
      break;
    case "error":
      view.alert("bot", `The bot reported a problem: ${data.error || data.message || "no details"}.`, {
        reconnect: Boolean(data.fatal),
      });
      break;
  }
}

function onServerMessage(data) {
  if (data.type === "latency") latency.add(data);
  else if (data.type === "error") {
    const name = SERVICE_NAMES[data.service] || SERVICE_NAMES.bot;
    view.alert(
      `service-${data.service}`,
      `${name} is not working: ${data.message}. The call stays open; this note goes away when it is back.`,
    );
  } else if (data.type === "recovered") {
    view.clearAlert(`service-${data.service}`);
    view.notice(`${SERVICE_NAMES[data.service] || data.service} is back.`);
  }
}

function onLost(id, error) {
  if (!isCurrent(id)) return;
  view.notice("Connection lost.");
  end("lost", "Connection lost");
  view.alert("call", callWords(error), { reconnect: true });
}

function makeWebRTC(id) {
  return new WebRTCTransport({
    iceServers: config.ice_servers || [],
    timeoutMs: config.webrtc_timeout_ms || 5000,
    onMessage: (message) => onRtvi(id, message),
    onRemoteStream: (stream) => isCurrent(id) && call.audio.playRemoteStream(stream, $("bot-audio")),
    onLost: (error) => onLost(id, error),
  });
}

function makeWebSocket(id) {
  return new WebSocketTransport({
    onMessage: (message) => onRtvi(id, message),
    onAudio: (samples, rate) => isCurrent(id) && call.audio.playPcm(samples, rate),
    onInterruption: () => isCurrent(id) && call.audio.clearPlayback(),
    onLost: (error) => onLost(id, error),
  });
}

async function connect() {
  if (call) return;
  const id = ++calls;
  view.clearAlert();
  markInvalid(null);
  // Created before the first await: Safari only starts audio inside the click's gesture.
  const clock = new HeardClock();
  const audio = new CallAudio({
    onLevels: (mic, bot) => {
      view.levels(mic, bot);
      const heard = clock.sample(performance.now(), mic, bot);
      if (heard !== null) latency.heard(heard);
    },
  });
  call = { id, audio, mic: null, transport: null, muted: false, botSpeaking: false, userSpeaking: false };
  view.startCall();
  view.setTransport("");
  view.setState("connecting", "Asking for the microphone…");

  let mic;
  try {
    mic = await openMicrophone($("mic").value);
  } catch (error) {
    if (!isCurrent(id)) return;
    end("idle", "Not connected");
    view.alert("call", microphoneWords(error));
    return;
  }
  if (!isCurrent(id)) {
    mic.getTracks().forEach((t) => t.stop());
    return;
  }
  call.mic = mic;
  audio.useMicrophone(mic);
  refreshMicrophones(); // labels are readable now

  const settings = requestData();
  const mode = $("transport").value;
  latency.reset({ voice: settings.voice ?? null, language: settings.language ?? null });
  try {
    let transport = null;
    if (mode !== "websocket") {
      view.setState("connecting", "Connecting over WebRTC…");
      transport = makeWebRTC(id);
      call.transport = transport;
      try {
        await transport.connect(mic.getAudioTracks()[0], settings);
      } catch (error) {
        await transport.close(); // resolves once the bot has freed the offer's place
        if (!isCurrent(id)) return;
        if (!(mode === "auto" && error.kind === "no-route")) throw error;
        view.notice("WebRTC could not connect, so the call uses WebSocket.");
        transport = null;
      }
    }
    if (!transport) {
      view.setState("connecting", "Connecting over WebSocket…");
      transport = makeWebSocket(id);
      call.transport = transport;
      await transport.connect(settings);
      if (!isCurrent(id)) return;
      await audio.startCapture((frame) => transport.sendAudio(frame, CAPTURE_RATE));
    }
    if (!isCurrent(id)) return;
    latency.call.transport = transport.name;
    view.setTransport(transport.name);
    view.setState("connected", "Connected");
    $("settings").open = false; // they apply to the next call; the conversation needs the room
    if (!call.botSpeaking) activity("listening");
    view.notice(`Call started over ${transport.name === "webrtc" ? "WebRTC" : "WebSocket"}.`);
  } catch (error) {
    if (!isCurrent(id)) return;
    end("idle", "Not connected");
    view.alert("call", callWords(error), { reconnect: error.kind !== "refused" });
    if (error.kind === "refused") markInvalid(error.message);
  }
}

/** Hang up and release everything; the log and the latency figures stay. */
function end(state, words) {
  if (call) {
    clearTimeout(call.thinkingTimer);
    call.transport?.close();
    call.mic?.getTracks().forEach((t) => t.stop());
    call.audio.close();
    $("bot-audio").srcObject = null;
  }
  call = null;
  for (const key of [...view.alerts.keys()]) if (key.startsWith("service-")) view.clearAlert(key);
  view.endCall();
  view.setMuted(false);
  if (!voicesListed) loadVoices(); // the TTS server may be back
  view.setTransport("");
  view.setState(state, words);
}

function disconnect() {
  const wasConnected = document.body.dataset.state === "connected";
  end("idle", "Not connected");
  view.clearAlert();
  if (wasConnected) view.notice("Call ended.");
}

function toggleMute() {
  if (!call?.mic) return;
  call.muted = !call.muted;
  for (const track of call.mic.getAudioTracks()) track.enabled = !call.muted;
  view.setMuted(call.muted);
  activity(call.botSpeaking ? "speaking" : "listening");
}

$("connect").addEventListener("click", connect);
$("disconnect").addEventListener("click", disconnect);
$("reconnect").addEventListener("click", () => {
  end("idle", "Not connected");
  connect();
});
$("mute").addEventListener("click", toggleMute);
$("mic").addEventListener("change", switchMicrophone);
navigator.mediaDevices?.addEventListener?.("devicechange", refreshMicrophones);
window.addEventListener("error", (event) => view.alert("page", `Something went wrong on this page: ${event.message}`));
window.addEventListener("unhandledrejection", (event) =>
  view.alert("page", `Something went wrong on this page: ${event.reason?.message || event.reason}`),
);

initSettings();
refreshMicrophones();
view.setState("idle", "Not connected");
