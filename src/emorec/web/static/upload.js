// Upload page: sends the form with XMLHttpRequest to show progress (the upload's bytes, then the frames the
// server has analysed, read from its progress lines), then puts the result section in the page. Without
// this script the form still works: the server answers with the whole page.
"use strict";

const form = document.getElementById("upload-form");
const progress = document.getElementById("upload-progress");
const bar = document.getElementById("progress-bar");
const text = document.getElementById("progress-text");
const errorBox = document.getElementById("upload-error");
const slot = document.getElementById("result-slot");

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
