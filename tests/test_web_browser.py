"""The live page in a real browser: Debian's chromium, driven by Playwright, films a fake camera.

The camera is a Y4M video made here from real FER2013 faces, so the whole path runs for real:
getUserMedia -> canvas -> JPEG -> WebSocket -> Gunicorn -> engine -> JSON -> boxes and labels on the page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("flask_sock", reason="the web app needs the 'web' extra: pip install 'emorec[web]'")
playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install playwright")

from web_server import background_server  # noqa: E402

from emorec.labels import EMOTIONS  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshots" / "web_live.png"
FRAME_SIZE = (640, 480)  # (width, height) of the fake camera
FACE_SIDE = 200  # FER2013's 48-px faces, enlarged to a size a webcam gives at arm's length
FACE_ORIGINS = ((50, 140), (370, 140))  # (x, y) of the two faces' top-left corners
HAPPY = EMOTIONS.index("happy")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (apt-get install chromium)"),
]


def _compose(faces: list[np.ndarray]) -> np.ndarray:
    """FER2013 faces (48x48 gray), enlarged and placed side by side on a grey BGR frame."""
    frame = np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 128, np.uint8)
    for face, (x, y) in zip(faces, FACE_ORIGINS, strict=False):
        big = cv2.resize(face, (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_CUBIC)
        frame[y : y + FACE_SIDE, x : x + FACE_SIDE] = big[..., None]
    return frame


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> None:
    """Uncompressed YUV4MPEG2 (I420), the format Chrome's fake camera reads: a header, then per frame
    'FRAME' and the Y, U and V planes."""
    height, width = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for frame in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


def _as_sent(frame: np.ndarray) -> np.ndarray:
    """The frame as live.js sends it: downscaled to 480 px wide and JPEG-encoded."""
    small = cv2.resize(frame, (480, 360), interpolation=cv2.INTER_AREA)
    return cv2.imdecode(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR)


@pytest.fixture(scope="module")
def happy_frame(fer2013) -> np.ndarray:
    """Two PublicTest faces labelled happy that the detector finds once enlarged onto the frame and sent
    as the page sends it (FER2013's tight crops are not all found: the first two that are, each at its
    place, are used)."""
    from emorec.engine import EmotionRecognizer

    recognizer = EmotionRecognizer()
    faces, labels = fer2013.split("PublicTest")
    chosen: list[np.ndarray] = []
    for i in np.flatnonzero(labels == HAPPY)[:100]:
        if len(recognizer(_as_sent(_compose([*chosen, faces[i]])))) == len(chosen) + 1:
            chosen.append(faces[i])
            if len(chosen) == 2:
                return _compose(chosen)
    raise AssertionError(f"the detector found only {len(chosen)} of the first 100 happy FER2013 faces")


@pytest.fixture(scope="module")
def browsers():
    """One Playwright for the module: its sync API runs one at a time, and each page needs its own chromium
    (the fake camera's file is a launch option)."""
    with playwright.sync_playwright() as p:
        yield p


def _chromium_args(camera: Path) -> list[str]:
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]


@pytest.fixture(scope="module")
def live_page(browsers, happy_frame, tmp_path_factory):
    """The live page open in chromium, its camera showing the two happy faces."""
    camera = tmp_path_factory.mktemp("camera") / "happy_faces.y4m"
    write_y4m(camera, [happy_frame] * 20)
    with background_server() as url:
        browser = browsers.chromium.launch(executable_path=CHROMIUM, args=_chromium_args(camera))
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 820})
            page.goto(url)
            # Two faces listed means: camera -> socket -> engine -> page all worked, at least once.
            page.wait_for_function("document.querySelectorAll('#faces li').length === 2", timeout=30_000)
            yield page
        finally:
            browser.close()


def _labels(page) -> list[str]:
    return page.eval_on_selector_all("#faces li", "items => items.map(item => item.dataset.emotion)")


def test_live_page_shows_boxes_and_labels(live_page, tmp_path):
    assert live_page.get_attribute("#status", "data-state") == "live"
    assert live_page.get_attribute("#overlay", "data-faces") == "2"
    assert set(_labels(live_page)) <= set(EMOTIONS)
    # Boxes are reported in the 480-px frames the page sends and land on the two faces, left then right.
    scale = 480 / FRAME_SIZE[0]
    boxes = sorted(
        [int(v) for v in box.split(",")]
        for box in live_page.eval_on_selector_all("#faces li", "items => items.map(item => item.dataset.box)")
    )
    for (x1, y1, x2, y2), (fx, fy) in zip(boxes, FACE_ORIGINS, strict=True):
        centre = ((fx + FACE_SIDE / 2) * scale, (fy + FACE_SIDE / 2) * scale)
        assert x1 < centre[0] < x2 and y1 < centre[1] < y2, (boxes, centre)
    # The canvas really has the boxes drawn on it: coloured pixels where the video is grey.
    painted = live_page.evaluate(
        """() => {
            const c = document.getElementById('overlay');
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
            return n;
        }"""
    )
    assert painted > 1000
    # The counters move: frames keep flowing, one in flight at a time.
    live_page.wait_for_function("Number(document.getElementById('fps').textContent) >= 1", timeout=10_000)
    assert float(live_page.text_content("#latency")) > 0
    # EMOREC_SCREENSHOTS=1 refreshes the README's screenshot; other runs leave the repository alone.
    path = SCREENSHOT if os.environ.get("EMOREC_SCREENSHOTS") == "1" else tmp_path / SCREENSHOT.name
    path.parent.mkdir(parents=True, exist_ok=True)
    live_page.screenshot(path=str(path))
    assert cv2.imread(str(path)).std() > 20, "the page is drawn, not blank"


def test_live_page_reads_happy_faces_as_happy(live_page):
    """Real model: both faces are FER2013 faces labelled happy."""
    assert _labels(live_page) == ["happy", "happy"]


def test_stop_button_closes_the_connection(live_page):
    live_page.click("#toggle")
    live_page.wait_for_function("document.getElementById('status').dataset.state === 'closed'", timeout=10_000)
    assert live_page.text_content("#toggle") == "Start"
    live_page.click("#toggle")
    live_page.wait_for_function("document.getElementById('status').dataset.state === 'live'", timeout=10_000)


# ----- personal calibration: a real person whose resting face the model misreads (see conftest)


@pytest.fixture(scope="module")
def resting_page(browsers, resting_face, tmp_path_factory):
    """The live page, its camera filming the resting face (sitting still: a pixel or two of movement)."""
    _, (rest, *_), _, _ = resting_face
    rng = np.random.default_rng(0)
    frames = [np.roll(rest, tuple(rng.integers(-2, 3, 2)), axis=(0, 1)) for _ in range(20)]
    camera = tmp_path_factory.mktemp("camera") / "resting_face.y4m"
    write_y4m(camera, frames)
    with background_server() as url:
        browser = browsers.chromium.launch(executable_path=CHROMIUM, args=_chromium_args(camera))
        try:
            # The page's Content-Security-Policy forbids eval, which Playwright's wait_for_function needs.
            page = browser.new_page(viewport={"width": 1100, "height": 820}, bypass_csp=True)
            page.goto(url)
            page.wait_for_function("document.querySelectorAll('#faces li').length === 1", timeout=30_000)
            yield page
        finally:
            browser.close()


def _calibration_state(page) -> str:
    return page.get_attribute("#calibration", "data-state")


def test_calibrate_control_reads_the_resting_face_as_neutral(resting_page):
    page = resting_page
    assert _calibration_state(page) == "off" and page.text_content("#calibration-status") == "not calibrated"
    assert _labels(page)[0] in ("angry", "sad"), "the generic reading of this resting face"
    page.click("#calibrate")
    assert page.is_visible("#calibration-progress") and page.is_disabled("#calibrate")
    assert "neutral face for 3 seconds" in page.text_content("#calibration-status")
    page.wait_for_function(
        "(() => { const p = document.getElementById('calibration-progress').value; return p > 0 && p < 1; })()",
        timeout=10_000,
    )
    page.wait_for_function("document.getElementById('calibration').dataset.state === 'on'", timeout=15_000)
    assert not page.is_visible("#calibration-progress") and page.is_visible("#calibration-reset")
    assert "calibrated to your neutral face" in page.text_content("#calibration-status")
    page.wait_for_function("document.querySelector('#faces li[data-calibrated=\"true\"]') !== null", timeout=10_000)
    page.wait_for_function("document.querySelector('#faces li').dataset.emotion === 'neutral'", timeout=10_000)
    title = page.text_content("#faces li .face-title")
    assert "neutral" in title and "uncalibrated: " in title, title

    page.click("#calibration-reset")  # back to the generic reading
    page.wait_for_function("document.querySelector('#faces li').dataset.calibrated === undefined", timeout=10_000)
    assert _calibration_state(page) == "off" and _labels(page)[0] in ("angry", "sad")


def test_calibration_lives_in_the_connection_only(resting_page):
    page = resting_page
    page.click("#calibrate")
    page.wait_for_function("document.getElementById('calibration').dataset.state === 'on'", timeout=15_000)
    page.click("#toggle")  # Stop: the connection and its baseline are gone
    page.wait_for_function("document.getElementById('status').dataset.state === 'closed'", timeout=10_000)
    assert _calibration_state(page) == "off"
    page.click("#toggle")
    page.wait_for_function("document.querySelectorAll('#faces li').length === 1", timeout=15_000)
    assert _calibration_state(page) == "off"
    assert page.get_attribute("#faces li", "data-calibrated") is None and _labels(page)[0] in ("angry", "sad")
