// Live page: camera frames -> faces drawn over the video, per-face bars and a rolling timeline.
// Private mode (the default where it works) analyses each frame in this page (private.js) and nothing leaves
// the device; server mode sends frames over a WebSocket, for browsers or servers that cannot (the page says
// why), or when the address asks for it (?mode=server). Either way one frame is in flight at a time: the next
// is taken only when the previous answer has arrived, so a slow analysis lowers the frame rate instead of
// building a queue.
//
// The page is a few small parts (camera, connection, overlay, face list, timeline) joined in `live`;
// `window.emorecLive` lets another script add a control, follow the answers, or start and stop the page.
"use strict";

const CONFIG = JSON.parse(document.getElementById("emorec-config").textContent);
const EMOTIONS = CONFIG.emotions;
const COLORS = CONFIG.colors;
const FRAME_WIDTH = 480; // frames are downscaled to this width before JPEG encoding
const JPEG_QUALITY = 0.8;
const TIMELINE_SPAN_MS = 20000;
const PRIVATE = CONFIG.private; // {base} where the page can run the pipeline itself, else {unavailable: why}

const $ = (id) => document.getElementById(id);

const status = {
  set(state, text) {
    $("status").dataset.state = state;
    $("status").textContent = text;
  },
};

// Browsers hand the camera only to secure pages: HTTPS, or http://localhost and 127.0.0.1.
const camera = {
  video: $("video"),
  unavailableReason() {
    if (window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) return null;
    return `This page came over plain HTTP from ${location.host}, and browsers give the camera only to pages ` +
      "served over HTTPS or from this computer (http://localhost or http://127.0.0.1). Open it there, or " +
      "start the server with --certfile and --keyfile and open the https:// address.";
  },
  async start() {
    if (this.video.srcObject) return;
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
    });
    this.video.srcObject = stream;
    await this.video.play();
  },
  stop() {
    const stream = this.video.srcObject;
    if (stream) stream.getTracks().forEach((track) => track.stop());
    this.video.srcObject = null;
  },
  grab: document.createElement("canvas"),
  // The frame's pixels at the camera's own size, for private mode.
  pixels() {
    const { grab, video } = this;
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    const ctx = grab.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0);
    return ctx.getImageData(0, 0, grab.width, grab.height);
  },
  frame(callback) {
    const { grab, video } = this;
    grab.width = FRAME_WIDTH;
    grab.height = Math.round(video.videoHeight * FRAME_WIDTH / video.videoWidth);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    grab.toBlob(callback, "image/jpeg", JPEG_QUALITY);
  },
};

// What to do when the browser refuses the camera, by the error getUserMedia gave.
const CAMERA_HELP = {
  NotAllowedError: "The camera is blocked for this page. To allow it, click the camera or padlock icon at the " +
    "left of the address bar, set Camera to Allow (in the system settings too if the browser may not use " +
    "the camera at all), then press Start.",
  NotFoundError: "No camera was found. Connect one, then press Start.",
  NotReadableError: "The camera is in use by another program or tab. Close it there, then press Start.",
  other: "The camera could not be started. Check that it is connected and allowed for this page, then press " +
    "Start.",
};

const meters = {
  answerTimes: [],
  record(roundTripMs, serverMs) {
    const now = performance.now();
    this.answerTimes.push(now);
    while (this.answerTimes[0] < now - 1000) this.answerTimes.shift();
    $("fps").textContent = this.answerTimes.length;
    $("latency").textContent = roundTripMs.toFixed(0);
    $("server-ms").textContent = serverMs.toFixed(0);
  },
  clear() {
    this.answerTimes.length = 0;
    for (const id of ["fps", "latency", "server-ms"]) $(id).textContent = "-";
  },
};

const faceName = (face) => (face.track_id == null ? "Face" : `Face ${face.track_id}`);
const percent = (p) => `${(p * 100).toFixed(0)}%`;
const faceLabel = (face) => `${faceName(face)}: ${face.emotion} ${percent(face.confidence)}`;

// Screen readers hear what changes (how many faces, the followed face's emotion), not every frame's numbers.
const announcer = {
  element: $("announcer"),
  say(faces, shown) {
    const count = faces.length === 1 ? "1 face" : `${faces.length} faces`;
    const text = shown ? `${count} in view; ${faceName(shown)} looks ${shown.emotion}` : "no face in view";
    if (this.element.textContent !== text) this.element.textContent = text;
  },
  clear() { this.element.textContent = ""; },
};

// Boxes and labels over the video; the bars live in the side panel so they never hide a face.
const overlay = {
  canvas: $("overlay"),
  draw(answer) {
    const { canvas } = this;
    canvas.width = camera.video.videoWidth;
    canvas.height = camera.video.videoHeight;
    canvas.dataset.faces = answer.faces.length;
    const ctx = canvas.getContext("2d");
    const scale = canvas.width / answer.width;
    ctx.lineWidth = 3;
    ctx.font = "600 16px system-ui, sans-serif";
    for (const face of answer.faces) {
      const [x1, y1, x2, y2] = face.box.map((v) => v * scale);
      const color = COLORS[face.emotion];
      ctx.strokeStyle = color;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const label = faceLabel(face);
      const top = y1 >= 24 ? y1 - 24 : y2;
      ctx.fillStyle = color;
      ctx.fillRect(x1 - 1.5, top, ctx.measureText(label).width + 12, 24);
      ctx.fillStyle = "#111";
      ctx.fillText(label, x1 + 5, top + 17);
    }
    // The picture's text alternative: what its labels say.
    const seen = answer.faces.length ? answer.faces.map(faceLabel).join("; ") : "no face in view";
    canvas.setAttribute("aria-label", `camera picture: ${seen}`);
  },
  clear() {
    this.canvas.getContext("2d").clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.canvas.dataset.faces = 0;
    this.canvas.setAttribute("aria-label", "camera picture: stopped");
  },
};

// One card per face with its seven probabilities; clicking a card makes the timeline follow that face.
const faceList = {
  list: $("faces"),
  followed: null, // track id chosen by a click; null follows the largest face
  render(faces, shown) {
    this.list.replaceChildren(...faces.map((face) => {
      const item = document.createElement("li");
      item.dataset.emotion = face.emotion;
      item.dataset.box = face.box.join(",");
      item.dataset.track = face.track_id ?? "";
      item.classList.toggle("followed", face === shown);
      const title = document.createElement("div");
      title.className = "face-title";
      title.textContent = faceLabel(face);
      item.append(title, ...EMOTIONS.map((name) => bar(name, face.scores[name])));
      item.addEventListener("click", () => { this.followed = face.track_id; });
      return item;
    }));
  },
  clear() { this.list.replaceChildren(); },
  // The followed face if it is still in view, else the largest.
  pick(faces) {
    const area = (f) => (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]);
    const chosen = faces.find((f) => this.followed != null && f.track_id === this.followed);
    return chosen ?? faces.reduce((best, f) => (best && area(best) >= area(f) ? best : f), null);
  },
};

function bar(name, p) {
  const row = document.createElement("div");
  row.className = "bar";
  const label = document.createElement("span");
  label.textContent = name;
  const track = document.createElement("span");
  track.className = "track";
  const fill = document.createElement("span");
  fill.style.width = percent(p);
  fill.style.background = COLORS[name];
  track.append(fill);
  const value = document.createElement("output");
  value.textContent = percent(p);
  row.append(label, track, value);
  return row;
}

// The last seconds of one face's probabilities, newest at the right (as in the desktop app); gaps where no
// face was seen.
const timeline = {
  canvas: $("timeline"),
  points: [], // {t, scores | null}
  add(scores) {
    const now = performance.now();
    this.points.push({ t: now, scores });
    while (this.points.length && this.points[0].t < now - TIMELINE_SPAN_MS) this.points.shift();
    this.draw(now);
  },
  clear() { this.points.length = 0; this.draw(performance.now()); },
  draw(now) {
    const { canvas } = this;
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = "#e3e7ea";
    ctx.lineWidth = 1;
    for (const p of [0.25, 0.5, 0.75]) {
      ctx.beginPath(); ctx.moveTo(0, h * (1 - p)); ctx.lineTo(w, h * (1 - p)); ctx.stroke();
    }
    ctx.lineWidth = 2;
    for (const name of EMOTIONS) {
      ctx.strokeStyle = COLORS[name];
      ctx.beginPath();
      let drawing = false;
      for (const { t, scores } of this.points) {
        if (!scores) { drawing = false; continue; }
        const x = w * (1 - (now - t) / TIMELINE_SPAN_MS), y = h * (1 - scores[name]);
        if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        drawing = true;
      }
      ctx.stroke();
    }
  },
};

const answerListeners = [];

// Which mode runs, and why, said on the page.
const mode = {
  set(name, text) {
    $("mode").dataset.mode = name;
    $("mode").textContent = text;
    $("analysis-where").textContent = name === "private" ? "in this browser" : "server";
  },
};
const nextFrame = () => new Promise((resolve) => requestAnimationFrame(resolve));

// The frame loop: the WebSocket in server mode, the page's own engine in private mode.
const live = {
  socket: null,
  engine: null, // private mode's engine once loaded (emorecPrivate), kept across Stop and Start
  private: false,
  running: false,
  sentAt: 0,
  // Private mode where the server offers it and the browser can run it; otherwise the server, saying why.
  async choose() {
    const why = PRIVATE.unavailable ?? (new URLSearchParams(location.search).get("mode") === "server"
      ? "the address asks for it (?mode=server)" : null);
    if (!why) {
      try {
        mode.set("loading", "loading the models into this browser...");
        this.engine ??= await window.emorecPrivate.load(PRIVATE.base);
        mode.set("private", "Private mode: your camera's frames are analysed in this browser and never leave " +
          "this device.");
        return true;
      } catch (error) {
        if (PRIVATE.only) throw error;
        mode.set("server", `Server mode (private mode failed: ${error.message}): your camera's frames go to this ` +
          "server for analysis and are never stored.");
        return false;
      }
    }
    mode.set("server", `Server mode (${why}): your camera's frames go to this server for analysis and are never ` +
      "stored.");
    return false;
  },
  runs: 0, // counts private loops, so that one left waiting on a frame when Stop and Start came ends there
  async runPrivate() {
    const run = ++this.runs;
    this.private = true;
    this.running = true;
    $("toggle").textContent = "Stop";
    status.set("live", "live");
    while (this.running && run === this.runs) {
      if (!camera.video.videoWidth) { await nextFrame(); continue; }
      this.sentAt = performance.now();
      let answer;
      try {
        answer = await this.engine.analyse(camera.pixels());
      } catch (error) {
        this.halt();
        status.set("error", `analysis failed: ${error.message}`);
        return;
      }
      if (!this.running || run !== this.runs) return;
      this.show({ ...answer, server_ms: answer.timings_ms.total });
      await nextFrame();
    }
  },
  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/ws/live`);
    this.socket = socket;
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      this.running = true;
      $("toggle").textContent = "Stop";
      status.set("live", "live");
      this.sendFrame();
    };
    socket.onmessage = (event) => this.onAnswer(JSON.parse(event.data));
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.halt();
      status.set("closed", event.reason ? `disconnected: ${event.reason}` : "stopped");
    };
  },
  sendFrame() {
    if (!this.running || this.socket.readyState !== WebSocket.OPEN) return;
    if (!camera.video.videoWidth) { requestAnimationFrame(() => this.sendFrame()); return; }
    camera.frame((blob) => {
      if (!this.running) return;
      this.sentAt = performance.now();
      this.socket.send(blob);
    });
  },
  onAnswer(answer) {
    if (!this.running) return;
    if (answer.error) {
      status.set("error", answer.error);
    } else {
      this.show(answer);
    }
    requestAnimationFrame(() => this.sendFrame());
  },
  show(answer) {
    status.set("live", "live");
    meters.record(performance.now() - this.sentAt, answer.server_ms);
    overlay.draw(answer);
    const shown = faceList.pick(answer.faces);
    faceList.render(answer.faces, shown);
    $("timeline-face").textContent = shown ? faceName(shown) : "no face";
    announcer.say(answer.faces, shown);
    timeline.add(shown ? shown.scores : null);
    for (const listener of answerListeners) listener(answer);
  },
  async start() {
    const reason = camera.unavailableReason();
    if (reason) {
      this.noCamera("camera unavailable over plain HTTP", reason);
      return;
    }
    status.set("starting", "starting camera...");
    $("toggle").textContent = "Stop";
    $("camera-help").hidden = true;
    try {
      await camera.start();
    } catch (error) {
      const why = { NotAllowedError: "permission denied", NotFoundError: "no camera found" }[error.name];
      this.noCamera(`camera unavailable: ${why ?? error.message}`, CAMERA_HELP[error.name] ?? CAMERA_HELP.other);
      return;
    }
    let inBrowser;
    try {
      inBrowser = await this.choose();
    } catch (error) { // a static site has no server to fall back on
      camera.stop();
      status.set("error", `cannot run here: ${error.message}`);
      mode.set("failed", `The models could not be loaded into this browser (${error.message}).`);
      $("toggle").textContent = "Start";
      return;
    }
    if (inBrowser) this.runPrivate(); else this.connect();
  },
  // The camera could not be had: say why and how to get it; the button starts again once that is fixed.
  noCamera(statusText, help) {
    status.set("error", statusText);
    $("camera-help").textContent = help;
    $("camera-help").hidden = false;
    $("toggle").textContent = "Start";
  },
  // Stop: close the socket, release the camera (its light goes off) and clear what was drawn.
  stop() {
    const socket = this.socket;
    this.engine?.reset(); // as a closed connection forgets its tracks and calibration
    this.halt();
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, "stopped");
    status.set("closed", "stopped");
  },
  halt() {
    this.running = false;
    this.private = false;
    this.socket = null;
    camera.stop();
    overlay.clear();
    announcer.clear();
    faceList.clear();
    meters.clear();
    timeline.clear();
    $("timeline-face").textContent = "";
    $("toggle").textContent = "Start";
  },
};

$("legend").replaceChildren(...EMOTIONS.map((name) => {
  const item = document.createElement("li");
  const swatch = document.createElement("i");
  swatch.style.background = COLORS[name];
  item.append(swatch, name);
  return item;
}));
$("toggle").addEventListener("click", () => (live.running || live.socket ? live.stop() : live.start()));
timeline.clear();

window.emorecLive = {
  controls: $("controls"), // append a button here to add a control
  start: () => live.start(),
  stop: () => live.stop(),
  get running() { return live.running; },
  onAnswer(listener) { answerListeners.push(listener); }, // called with each answer that has faces
  send(text) { // a text command (see /docs), to the page's engine or on the open connection; false when neither runs
    if (live.private && live.running) { live.engine.command(text); return true; }
    if (!live.socket || live.socket.readyState !== WebSocket.OPEN) return false;
    live.socket.send(text);
    return true;
  },
  setStatus: (state, text) => status.set(state, text),
};

live.start();
