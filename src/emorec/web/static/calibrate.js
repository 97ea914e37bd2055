// The live page's "Calibrate" control: the person looks at the camera with a neutral face for a few seconds,
// the server takes that as their baseline (kept in the connection only, never stored), and the bars are
// then read against it. Built on window.emorecLive (live.js): a button in its controls, a command on its
// socket, and each answer's "calibration" state.
"use strict";

(() => {
  const SECONDS = 3;
  const live = window.emorecLive;
  const make = (tag, props) => Object.assign(document.createElement(tag), props);

  const box = make("span", { id: "calibration", className: "calibration" });
  const button = make("button", { id: "calibrate", type: "button", textContent: "Calibrate",
    title: `Look at the camera with a neutral face for ${SECONDS} seconds: your expressions are then read ` +
      "against your own resting face" });
  const reset = make("button", { id: "calibration-reset", type: "button", textContent: "Reset", hidden: true });
  const progress = make("progress", { id: "calibration-progress", max: 1, value: 0, hidden: true });
  const note = make("span", { id: "calibration-status", className: "hint", textContent: "not calibrated" });
  box.dataset.state = "off";
  // The state a command asked for, until an answer shows it: the frame that was in flight when the button
  // was pressed still answers with the old state.
  let pending = null;
  box.append(button, reset, progress, note);
  live.controls.append(box);

  button.addEventListener("click", () => {
    if (!live.send(JSON.stringify({ calibrate: { seconds: SECONDS } }))) {
      note.textContent = "start the camera first";
      return;
    }
    pending = "capturing";
    show({ state: "capturing", progress: 0 });
  });
  reset.addEventListener("click", () => {
    live.send(JSON.stringify({ calibrate: "reset" }));
    pending = "off";
    show({ state: "off" });
  });

  // The baseline belongs to the connection: once it is stopped, so is the calibration.
  document.getElementById("toggle").addEventListener("click", () => {
    if (!live.running) { pending = null; show({ state: "off" }); }
  });

  function show(calibration) {
    box.dataset.state = calibration.state;
    progress.hidden = calibration.state !== "capturing";
    reset.hidden = calibration.state !== "on";
    button.disabled = calibration.state === "capturing";
    if (calibration.state === "capturing") {
      progress.value = calibration.progress;
      note.textContent = `look at the camera with a neutral face for ${SECONDS} seconds`;
    } else if (calibration.state === "on") {
      // A capture calibrates one person, the largest face's track: say which, since the others stay generic.
      const frames = `${calibration.samples} frame${calibration.samples === 1 ? "" : "s"}`;
      note.textContent = calibration.track_id == null ? `calibrated to your neutral face (${frames})`
        : `Face ${calibration.track_id} calibrated to its neutral face (${frames}); other faces read as the ` +
          "model alone reads them";
    } else {
      note.textContent = calibration.error ? `not calibrated: ${calibration.error}` : "not calibrated";
    }
  }

  // Each face card says whether its bars are calibrated and what the model alone read.
  live.onAnswer((answer) => {
    const calibration = answer.calibration;
    const stale = calibration && pending && calibration.state !== pending && !calibration.error;
    if (calibration && !stale) { pending = null; show(calibration); }
    const cards = document.querySelectorAll("#faces li");
    answer.faces.forEach((face, i) => {
      const card = cards[i];
      if (!card || !face.calibrated) return;
      card.dataset.calibrated = "true";
      const raw = face.raw_scores[face.raw_emotion];
      card.querySelector(".face-title").append(
        make("span", { className: "raw", textContent: ` (calibrated; uncalibrated: ${face.raw_emotion} ` +
          `${(raw * 100).toFixed(0)}%)` }));
    });
  });
})();
