// Live page: camera frames -> WebSocket -> faces drawn over the video.
// One frame is in flight at a time: the next is sent only when the previous answer has arrived,
// so a slow server lowers the frame rate instead of building a queue.
"use strict";

const FRAME_WIDTH = 480; // frames are downscaled to this width before JPEG encoding
const JPEG_QUALITY = 0.8;
const BAR_WIDTH = 80; // probability bars: pixels for p = 1
const BAR_LABEL_WIDTH = 58;
const BAR_ROW = 15;
const { emotions: EMOTIONS, colors: COLORS } = window.EMOREC;

const video = document.getElementById("video");
const overlay = document.getElementById("overlay");
const facesList = document.getElementById("faces");
const statusText = document.getElementById("status");
const toggle = document.getElementById("toggle");
const grab = document.createElement("canvas");

let socket = null;
let running = false;
let sentAt = 0;
const answerTimes = [];

function setStatus(state, text) {
  statusText.dataset.state = state;
  statusText.textContent = text;
}

async function startCamera() {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
  });
  video.srcObject = stream;
  await video.play();
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/ws/live`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => { running = true; toggle.textContent = "Stop"; setStatus("live", "live"); sendFrame(); };
  socket.onmessage = (event) => onAnswer(JSON.parse(event.data));
  socket.onclose = (event) => {
    running = false;
    toggle.textContent = "Start";
    setStatus("closed", `disconnected${event.reason ? ": " + event.reason : ""}`);
  };
}

function sendFrame() {
  if (!running || socket.readyState !== WebSocket.OPEN) return;
  if (!video.videoWidth) { requestAnimationFrame(sendFrame); return; }
  grab.width = FRAME_WIDTH;
  grab.height = Math.round(video.videoHeight * FRAME_WIDTH / video.videoWidth);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  grab.toBlob((blob) => {
    sentAt = performance.now();
    socket.send(blob);
  }, "image/jpeg", JPEG_QUALITY);
}

function onAnswer(answer) {
  const now = performance.now();
  document.getElementById("latency").textContent = (now - sentAt).toFixed(0);
  answerTimes.push(now);
  while (answerTimes.length && answerTimes[0] < now - 1000) answerTimes.shift();
  document.getElementById("fps").textContent = answerTimes.length;
  if (answer.error) {
    setStatus("error", answer.error);
  } else {
    setStatus("live", "live");
    document.getElementById("server-ms").textContent = answer.server_ms.toFixed(0);
    drawFaces(answer);
    listFaces(answer.faces);
  }
  requestAnimationFrame(sendFrame);
}

function drawFaces(answer) {
  overlay.width = video.videoWidth;
  overlay.height = video.videoHeight;
  overlay.dataset.faces = answer.faces.length;
  const ctx = overlay.getContext("2d");
  const scale = overlay.width / answer.width;
  ctx.lineWidth = 3;
  ctx.font = "bold 16px system-ui, sans-serif";
  for (const face of answer.faces) {
    const [x1, y1, x2, y2] = face.box.map((v) => v * scale);
    const color = COLORS[face.emotion];
    ctx.strokeStyle = color;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const label = `${face.emotion} ${(face.confidence * 100).toFixed(0)}%`;
    ctx.fillStyle = color;
    ctx.fillRect(x1, y1 - 22, ctx.measureText(label).width + 10, 22);
    ctx.fillStyle = "#000";
    ctx.fillText(label, x1 + 5, y1 - 6);
    // Bars go under the box, or above its label when the box reaches the bottom of the frame.
    const barsHeight = EMOTIONS.length * BAR_ROW;
    drawBars(ctx, face.scores, x1, y2 + 4 + barsHeight > overlay.height ? y1 - 26 - barsHeight : y2 + 4);
  }
}

function drawBars(ctx, scores, x, y) {
  ctx.font = "12px system-ui, sans-serif";
  EMOTIONS.forEach((name, i) => {
    const top = y + i * BAR_ROW;
    ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
    ctx.fillRect(x, top, BAR_LABEL_WIDTH + BAR_WIDTH + 4, BAR_ROW - 1);
    ctx.fillStyle = COLORS[name];
    ctx.fillRect(x + BAR_LABEL_WIDTH, top + 2, BAR_WIDTH * scores[name], BAR_ROW - 5);
    ctx.fillStyle = "#fff";
    ctx.fillText(name, x + 3, top + BAR_ROW - 4);
  });
  ctx.font = "bold 16px system-ui, sans-serif";
}

function listFaces(faces) {
  facesList.replaceChildren(...faces.map((face) => {
    const item = document.createElement("li");
    item.dataset.emotion = face.emotion;
    item.dataset.box = face.box.join(",");
    item.textContent = `${face.track_id ?? "-"}: ${face.emotion} ${(face.confidence * 100).toFixed(0)}%`;
    return item;
  }));
}

toggle.addEventListener("click", () => {
  if (running) socket.close(1000, "stopped");
  else connect();
});

startCamera().then(connect).catch((error) => setStatus("error", `camera unavailable: ${error.message}`));
