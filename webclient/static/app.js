// The page's call: a plain RTCPeerConnection to the bot's /api/offer, RTVI messages on the
// "chat" data channel. Nothing is loaded from the internet.

const $ = (id) => document.getElementById(id);
const STAGES = ["endpointing", "stt", "llm", "tts", "rest"];
const SERVICE_NAMES = { llm: "the language model", tts: "the voice (TTS) server", stt: "speech recognition" };

let pc = null;
let microphone = null;
let userLine = null; // the user's line being recognized
let botLine = null; // the bot's line being spoken

function setState(text) {
  $("state").textContent = text;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function addLine(kind, who, text) {
  const item = document.createElement("li");
  item.className = kind;
  if (who) {
    const label = document.createElement("span");
    label.className = "who";
    label.textContent = who;
    item.append(label);
  }
  item.append(document.createTextNode(text));
  $("transcript").append(item);
  item.scrollIntoView({ block: "nearest" });
  return item;
}

function setLineText(item, text) {
  item.lastChild.textContent = text;
}

function addLatencyRow(m) {
  const row = document.createElement("tr");
  const cells = [m.kind === "greeting" ? "greeting" : `${m.turn}`];
  for (const stage of STAGES) cells.push(`${Math.round(m.stages_ms[stage])} ms`);
  cells.push(`${Math.round(m.total_ms)} ms`);
  cells.forEach((text, i) => {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (i === cells.length - 1) cell.className = "total";
    row.append(cell);
  });
  $("latency").tBodies[0].append(row);
}

function onServerMessage(data) {
  if (data.type === "latency") addLatencyRow(data);
  else if (data.type === "error") {
    const name = SERVICE_NAMES[data.service] || "the bot";
    showError(`Problem with ${name}: ${data.message}`);
  } else if (data.type === "recovered") {
    showError("");
    addLine("notice", "", `${SERVICE_NAMES[data.service] || data.service} is back.`);
  }
}

function onRtvi(message) {
  const data = message.data || {};
  switch (message.type) {
    case "user-transcription":
      if (!userLine) userLine = addLine("user", "You", "");
      setLineText(userLine, data.text);
      if (data.final) userLine = null;
      break;
    case "bot-output":
      if (data.output_type && data.output_type !== "sentence") break;
      if (!botLine) botLine = addLine("bot", "Miss Harper", "");
      setLineText(botLine, `${botLine.lastChild.textContent} ${data.text}`.trim());
      break;
    case "bot-started-speaking":
      setState("Bot is speaking");
      break;
    case "bot-stopped-speaking":
      botLine = null;
      setState("Listening");
      break;
    case "server-message":
      onServerMessage(data);
      break;
    case "error":
      showError(`The bot reported an error: ${data.error || data.message || "unknown"}`);
      break;
  }
}

function waitForIceGathering(connection, timeoutMs = 2000) {
  if (connection.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (connection.iceGatheringState === "complete") resolve();
    };
    connection.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs); // host candidates are enough on localhost
  });
}

async function connect() {
  showError("");
  $("connect").disabled = true;
  setState("Asking for the microphone…");
  try {
    microphone = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (error) {
    showError(`Microphone unavailable: ${error.name === "NotAllowedError" ? "permission was denied" : error.message}. Allow the microphone for this page and try again.`);
    setState("Not connected");
    $("connect").disabled = false;
    return;
  }

  setState("Connecting…");
  pc = new RTCPeerConnection();
  pc.addTransceiver(microphone.getAudioTracks()[0], { direction: "sendrecv" });
  pc.addTransceiver("video", { direction: "recvonly" }); // the bot expects m-line 1 for video
  const channel = pc.createDataChannel("chat");
  channel.onopen = () =>
    channel.send(JSON.stringify({
      label: "rtvi-ai", type: "client-ready", id: crypto.randomUUID(),
      data: { version: "2.2.0", about: { library: "offgrid-webclient" } },
    }));
  channel.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.label === "rtvi-ai") onRtvi(message);
  };
  pc.ontrack = (event) => {
    if (event.track.kind === "audio") $("bot-audio").srcObject = new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => {
    const state = pc && pc.connectionState;
    if (state === "connected") setState("Listening");
    if (state === "failed" || state === "disconnected") {
      showError("Connection lost. Press Connect to call again.");
      disconnect();
    }
  };

  try {
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc);
    const response = await fetch("/api/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `the bot answered ${response.status}`);
    await pc.setRemoteDescription(body);
    $("disconnect").disabled = false;
  } catch (error) {
    showError(`Could not reach the bot: ${error.message}`);
    disconnect();
  }
}

function disconnect() {
  if (pc) pc.close();
  pc = null;
  if (microphone) microphone.getTracks().forEach((track) => track.stop());
  microphone = null;
  userLine = botLine = null;
  $("connect").disabled = false;
  $("disconnect").disabled = true;
  setState("Not connected");
}

$("connect").addEventListener("click", connect);
$("disconnect").addEventListener("click", disconnect);
