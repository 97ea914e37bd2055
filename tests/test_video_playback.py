"""Annotated .mp4 files play in a real browser (Debian's chromium, driven by Playwright): emorec writes H.264,
where OpenCV's own MPEG-4 part 2 ("mp4v", what emorec wrote before) does not play at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install playwright")
pytest.importorskip("av", reason="PyAV writes H.264")

from emorec.recording import AnnotatedVideoWriter  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (apt-get install chromium)"),
]

PLAY = """async (src) => {
    const video = document.createElement('video');
    video.muted = true;
    document.body.appendChild(video);
    const outcome = new Promise(resolve => {
        video.onerror = () => resolve({error: video.error ? video.error.code : -1});
        video.ontimeupdate = () => { if (video.currentTime > 0.3) resolve({width: video.videoWidth,
                                                                               height: video.videoHeight}); };
    });
    video.src = src;
    video.play().catch(() => {});
    return await Promise.race([outcome, new Promise(r => setTimeout(() => r({error: 'timeout'}), 15000))]);
}"""


def frames(astronaut_bgr: np.ndarray) -> list[np.ndarray]:
    face = cv2.resize(astronaut_bgr, (240, 240))
    out = []
    for i in range(30):
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[120:360, 20 + 10 * i : 260 + 10 * i] = face
        out.append(frame)
    return out


def test_annotated_mp4_plays_in_chromium_and_mp4v_does_not(astronaut_bgr, tmp_path):
    ours = AnnotatedVideoWriter(tmp_path / "ours.mp4", 15.0, (640, 480))
    legacy = cv2.VideoWriter(str(tmp_path / "mp4v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (640, 480))
    for frame in frames(astronaut_bgr):
        ours.write(frame)
        legacy.write(frame)
    ours.close()
    legacy.release()
    (tmp_path / "page.html").write_text("<!doctype html><title>playback</title><body></body>")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                    "--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page()
            page.goto((tmp_path / "page.html").as_uri())
            assert page.evaluate(PLAY, "ours.mp4") == {"width": 640, "height": 480}
            assert "error" in page.evaluate(PLAY, "mp4v.mp4"), "the old codec would have played: test is moot"
        finally:
            browser.close()
