"""The live page's frame rate in headless Chromium, private mode (the pipeline in the page, ONNX Runtime Web's
WebAssembly with SIMD) beside server mode (frames to `emorec serve` over the WebSocket), one real face moving
slowly in a 640x480 fake camera.

    python benchmarks/browser_private.py [--seconds 20]

Private mode runs twice: as served (the detector on every ``detect_every``-th frame of pipeline.json, faces
followed in between) and with that number set to 1 in the pipeline.json the page receives (the detector on
every frame), then server mode. Prints, per run, answers per second, the share of frames the detector ran on
and the mean ms per frame of each stage the page reports (private: follow, detect, crop, classify, track as
timed in the page, averaged over all frames; server: the server's time per frame), with the CPU, its flags,
the load average and whether the page was cross-origin isolated (WebAssembly threads need it; without it ONNX
Runtime Web runs one thread). Figures are in docs/private_mode.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

from emorec.cpu import cpu_summary

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))
from conftest import LFW_EXPRESSIONS, lfw_frame  # noqa: E402  (the tests' real-photo frames)
from test_web_browser import CHROMIUM_ARGS, write_y4m  # noqa: E402
from web_server import background_server  # noqa: E402

# Collects what the page shows of each answer, through the page's own hook (window.emorecLive.onAnswer).
COLLECT = """() => {
  window.benchAnswers = [];
  window.emorecLive.onAnswer((answer) => window.benchAnswers.push(
    {at: performance.now(), faces: answer.faces.length, timings: answer.timings_ms, server_ms: answer.server_ms}));
}"""
SUMMARY = """(since) => {
  const answers = window.benchAnswers.filter((a) => a.at >= since);
  const span = (answers.at(-1).at - answers[0].at) / 1000;
  const mean = (pick) => answers.reduce((sum, a) => sum + pick(a), 0) / answers.length;
  const stages = {};
  for (const name of new Set(answers.flatMap((a) => Object.keys(a.timings)))) {
    stages[name] = mean((a) => a.timings[name] ?? 0);
  }
  return {frames: answers.length, fps: (answers.length - 1) / span, faces: mean((a) => a.faces), stages,
          detected: mean((a) => ("detect" in a.timings ? 1 : 0)), server_ms: mean((a) => a.server_ms),
          detect_ms: mean((a) => a.timings.detect ?? 0) / Math.max(mean((a) => ("detect" in a.timings ? 1 : 0)), 1e-9),
          isolated: self.crossOriginIsolated};
}"""


def measure(browser, url: str, seconds: float, detect_every: int | None = None) -> dict:
    """One run of the live page at ``url``; ``detect_every`` replaces that number in the pipeline.json the
    page receives."""
    page = browser.new_page()
    if detect_every is not None:
        def pipeline(route) -> None:
            numbers = route.fetch().json()
            numbers["follow"]["detect_every"] = detect_every
            route.fulfill(json=numbers)

        page.route("**/private/pipeline.json", pipeline)
    page.goto(url)
    deadline = time.monotonic() + 90
    while not page.evaluate("document.querySelectorAll('#faces li').length === 1"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: no face shown after 90 s ({page.text_content('#status')})")
        time.sleep(0.2)
    page.evaluate(COLLECT)
    time.sleep(2)  # warm-up
    since = page.evaluate("performance.now()")
    time.sleep(seconds)
    result = {**page.evaluate(SUMMARY, since), "mode": page.get_attribute("#mode", "data-mode"),
              "detect_every": page.evaluate("fetch('private/pipeline.json').then((r) => r.json())")["follow"]
              ["detect_every"] if detect_every is None else detect_every}
    page.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per mode")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    face = lfw_frame(sorted(os.listdir(LFW_EXPRESSIONS / "images"))[0])
    # A face drifting a few pixels a frame (and back, so that the looped video does not jump), with jitter.
    drift = [round(40 * np.sin(2 * np.pi * t / 60)) for t in range(60)]
    frames = [np.roll(face, (int(rng.integers(-2, 3)), dx), axis=(0, 1)) for dx in drift]
    with tempfile.TemporaryDirectory() as folder, background_server() as url, sync_playwright() as p:
        camera = Path(folder) / "face.y4m"
        write_y4m(camera, frames, fps=30)
        browser = p.chromium.launch(executable_path=chromium,
                                    args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera}"])
        results = [measure(browser, url + "/", args.seconds), measure(browser, url + "/", args.seconds, detect_every=1),
                   measure(browser, url + "/?mode=server", args.seconds)]
        browser.close()
    print(f"CPU: {cpu_summary()}")
    print(f"load average (1 min) before and after: {load_before:.2f}, {os.getloadavg()[0]:.2f}")
    print("camera 640x480 at 30 fps, one real face (lfw_expressions) drifting 40 px either way; private mode analyses "
          "the 640x480 frame, server mode the 480x360 JPEG the page sends")
    for r in results:
        stages = ", ".join(f"{name} {ms:.1f}" for name, ms in r["stages"].items())
        if r["mode"] == "private":
            extra = (f"detect_every {r['detect_every']}, detector on {100 * r['detected']:.0f}% of frames "
                     f"({r['detect_ms']:.1f} ms each); ms per frame: {stages}; "
                     f"WebAssembly threads: {'yes' if r['isolated'] else 'no (not isolated)'}")
        else:
            extra = f"server {r['server_ms']:.1f} ms/frame"
        print(f"{r['mode']:>8}: {r['fps']:.1f} FPS over {r['frames']} frames, {r['faces']:.2f} faces/frame; {extra}")


if __name__ == "__main__":
    main()
