// Upload page: sends the form with XMLHttpRequest to show progress (the upload's bytes, then the frames the
// server has analysed, read from its progress lines), then puts the result section in the page. Without
// this script the form still works: the server answers with the whole page. Files dragged onto the page are
// put into the form's file input (which stays the keyboard's way to choose them) and sent at once.
"use strict";

const form = document.getElementById("upload-form");
const progress = document.getElementById("upload-progress");
const bar = document.getElementById("progress-bar");
const text = document.getElementById("progress-text");
const errorBox = document.getElementById("upload-error");
const slot = document.getElementById("result-slot");
const input = document.getElementById("media");

function show(fraction, message) {
  progress.hidden = false;
  if (fraction == null) bar.removeAttribute("value"); else bar.value = fraction;
  text.textContent = message;
}

function fail(message) {
  progress.hidden = true;
  errorBox.textContent = message;
  errorBox.hidden = false;
}

function handleLine(line) {
  let event;
  try {
    event = JSON.parse(line);
  } catch {
    fail("the server's answer was cut off or garbled; try again");
    return;
  }
  if (event.progress) {
    const [done, total] = event.progress;
    show(done / total, `analysing: frame ${done} of ${total}`);
  } else if (event.html) {
    progress.hidden = true;
    slot.innerHTML = event.html;
  } else if (event.error) {
    fail(event.error);
  }
}

form.addEventListener("submit", (submit) => {
  submit.preventDefault();
  errorBox.hidden = true;
  slot.replaceChildren();
  const request = new XMLHttpRequest();
  let consumed = 0;
  request.open("POST", form.action || location.href);
  request.setRequestHeader("Accept", "application/x-ndjson");
  request.upload.onprogress = (event) => {
    if (event.lengthComputable) show(event.loaded / event.total, `uploading: ${Math.round(100 * event.loaded / event.total)}%`);
  };
  request.upload.onload = () => show(null, "analysing...");
  // Progress lines come only in a streamed answer; a refusal is an HTML error page, read whole on load.
  const streamed = () => request.getResponseHeader("Content-Type")?.startsWith("application/x-ndjson");
  // Each complete line is one event; a line may arrive in pieces.
  const readLines = () => {
    const end = request.responseText.lastIndexOf("\n") + 1;
    request.responseText.slice(consumed, end).split("\n").filter(Boolean).forEach(handleLine);
    consumed = end;
  };
  request.onprogress = () => { if (streamed()) readLines(); };
  request.onload = () => {
    if (streamed()) {
      readLines();
    } else { // an error page: show its message
      const page = new DOMParser().parseFromString(request.responseText, "text/html");
      fail(page.getElementById("upload-error")?.textContent.trim() || `the server answered ${request.status}`);
    }
  };
  request.onerror = () => fail("the upload failed: the connection to the server was lost");
  request.send(new FormData(form));
  show(0, "uploading: 0%");
});

// Drag and drop: anywhere on the page, so that a file dropped a little off the form is not opened by the
// browser in place of the page. Only drags that carry files are taken; others (text, links) are left alone.
document.getElementById("drop-hint").hidden = false; // said only where dropping works
let dragDepth = 0; // dragenter and dragleave fire for each child element crossed
const carriesFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");

document.addEventListener("dragenter", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  dragDepth += 1;
  form.classList.add("dropping");
});
document.addEventListener("dragover", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault(); // the page takes the drop
  event.dataTransfer.dropEffect = "copy";
});
document.addEventListener("dragleave", (event) => {
  if (!carriesFiles(event)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) form.classList.remove("dropping");
});
document.addEventListener("drop", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  dragDepth = 0;
  form.classList.remove("dropping");
  if (event.dataTransfer.files.length === 0) return;
  input.files = event.dataTransfer.files; // the input shows what is being sent, as if chosen there
  form.requestSubmit(); // the submit handler above: progress, then the result (or the server's refusal)
});
