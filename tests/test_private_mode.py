"""Private mode (issue 27): the live page runs the engine's pipeline in Chromium, and `emorec export-web` writes
it as a static site.

Real Chromium with a fake camera filming real lfw_expressions photos; the page's faces are compared with
``EmotionRecognizer``'s on the same frames. Calibrate and Reset in private mode are tested with the server
mode's tests in test_web_browser.py (its ``resting_page`` runs in both modes).
"""

from __future__ import annotations

import base64
import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from emorec.browser import ort_web_dir, pipeline_config
from emorec.config import CropGeometry, EngineConfig

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "datasets" / "expressions_dev" / "lfw_expressions"
# Within these the page's faces are the engine's (the bar): labels equal, probabilities within
# PROB_TOLERANCE, box corners within BOX_TOLERANCE pixels.
PROB_TOLERANCE = 0.02
BOX_TOLERANCE = 2
PARITY_FRAMES = 20


def _emorec(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emorec.cli", *args], capture_output=True, text=True, cwd=cwd)


# ----- the numbers and the command line (no browser)


def test_the_page_reads_its_numbers_from_the_engine_config():
    config = EngineConfig(crop=CropGeometry(scale=1.4, shift_y=0.05), min_detection_score=0.6, max_faces=2,
                          smoothing=False)
    numbers = pipeline_config(config, "emonet_fast", "0" * 64)
    assert numbers["crop"]["scale"] == 1.4 and numbers["crop"]["shift_y"] == 0.05
    assert numbers["detector"]["full"]["score_threshold"] == 0.6 == numbers["detector"]["short"]["score_threshold"]
    assert numbers["max_faces"] == 2 and numbers["tracker"]["alpha"] == 1.0  # no smoothing: the newest frame only
    assert pipeline_config(EngineConfig(), "m", "0")["tracker"]["alpha"] == EngineConfig().smoothing_alpha
    assert pipeline_config(EngineConfig(detect_every=3), "m", "0")["follow"]["detect_every"] == 3


def test_export_web_refuses_bad_folders_in_one_line(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep me")
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me too")
    for folder, expected in ((taken, "is not empty"), (a_file, "is a file"), (a_file / "site", "cannot write there")):
        run = _emorec("export-web", str(folder))
        assert run.returncode == 2, run
        assert expected in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert (taken / "mine.txt").read_text() == "keep me" and a_file.read_text() == "keep me too"
    assert list(taken.iterdir()) == [taken / "mine.txt"]


def test_export_web_without_onnx_runtime_web_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    import emorec.browser
    from emorec.cli import main

    monkeypatch.setattr(emorec.browser, "ort_web_dir", lambda: None)
    assert main(["export-web", str(tmp_path / "site")]) == 2
    error = capsys.readouterr().err.strip()
    assert "make web-ort" in error and len(error.splitlines()) == 1, error
    assert not (tmp_path / "site").exists()


# ----- in Chromium

pytest.importorskip("a2wsgi", reason="the web app needs the 'web' extra: pip install 'emorec[web]'")
playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install playwright")

from test_web_browser import CHROMIUM, CHROMIUM_ARGS, _wait_until, write_y4m  # noqa: E402
from web_server import background_server, free_port  # noqa: E402


def browser_test(test):
    """The marks of the tests that run Chromium (the tests above need none of it)."""
    for mark in (
        pytest.mark.browser,
        pytest.mark.slow,
        pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (apt-get install chromium)"),
        pytest.mark.skipif(ort_web_dir() is None, reason="ONNX Runtime Web not installed: make web-ort"),
        pytest.mark.skipif(not (LFW / "labels.csv").exists(), reason=f"lfw_expressions not found at {LFW}"),
    ):
        test = mark(test)
    return test


def _lfw_frames() -> list[np.ndarray]:
    """PARITY_FRAMES real photos as a webcam frames them (conftest.lfw_frame); every fourth turned by 20 degrees
    either way, so that the crops levelled by the eyes are compared too."""
    from conftest import lfw_frame

    with open(LFW / "labels.csv", encoding="utf-8") as f:
        names = [row["image"] for row in csv.DictReader(f)][:PARITY_FRAMES]
    frames = []
    for i, name in enumerate(names):
        frame = lfw_frame(name)
        if i % 4 == 3:
            turn = cv2.getRotationMatrix2D((320, 240), 20 if i % 8 == 3 else -20, 1.0)
            frame = cv2.warpAffine(frame, turn, (640, 480), borderMode=cv2.BORDER_REPLICATE)
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def camera_frames() -> list[np.ndarray]:
    """A real face sitting still (a pixel or two of movement) for the fake camera."""
    rng = np.random.default_rng(0)
    face = _lfw_frames()[0]
    return [np.roll(face, tuple(rng.integers(-2, 3, 2)), axis=(0, 1)) for _ in range(20)]


@pytest.fixture(scope="module")
def chromium(camera_frames, tmp_path_factory):
    camera = tmp_path_factory.mktemp("camera") / "face.y4m"
    write_y4m(camera, camera_frames)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera}"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server_url():
    with background_server() as url:
        yield url


class Traffic:
    """Every request and WebSocket a page makes, and console errors."""

    def __init__(self, page):
        self.requests: list = []
        self.sockets: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request))
        page.on("websocket", lambda socket: self.sockets.append(socket.url))
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))


def _faces_shown(page, count: int = 1, timeout: float = 60_000) -> None:
    _wait_until(page, f"document.querySelectorAll('#faces li').length === {count}", timeout=timeout)


@browser_test
def test_private_mode_runs_with_the_servers_analysis_blocked(chromium, server_url):
    """(a) The analysis endpoints answer nothing, and the page still shows the face: only GETs of the page, its
    scripts, the models and the runtime leave it, none with a body, and no socket is opened."""
    page = chromium.new_page()
    traffic = Traffic(page)
    for pattern in ("**/api/**", "**/upload**"):
        page.route(pattern, lambda route: route.abort())
    page.route_web_socket("**/ws/**", lambda socket: socket.close())  # never connected to the server
    page.goto(server_url)
    _faces_shown(page)
    assert page.get_attribute("#mode", "data-mode") == "private"
    assert "never leave this device" in page.text_content("#mode")
    _wait_until(page, "Number(document.getElementById('fps').textContent) >= 1", timeout=20_000)
    assert traffic.sockets == []
    assert {r.method for r in traffic.requests} == {"GET"}
    assert all(r.post_data_buffer is None for r in traffic.requests)
    paths = {urlsplit(r.url).path for r in traffic.requests}
    assert all(p == "/" or p.startswith(("/static/", "/private/")) or p == "/favicon.ico" for p in paths), paths
    assert {"/private/pipeline.json", "/private/classifier.onnx", "/private/ort/ort-wasm-simd-threaded.wasm"} <= paths
    assert page.get_attribute("#faces li", "data-track") == "1"  # tracked in the page
    assert not traffic.errors, traffic.errors
    page.close()


@browser_test
def test_page_and_engine_give_the_same_faces_on_the_same_frames(chromium, server_url, recognizer):
    """(b) PARITY_FRAMES real frames analysed by the page's pipeline (as stills, like ``rec.process``) and by
    the engine: the same faces, labels equal, probabilities within PROB_TOLERANCE, boxes within BOX_TOLERANCE."""
    page = chromium.new_page()
    page.goto(server_url + "/?mode=server")  # the page's scripts, without its camera loop using the engine
    page.evaluate("emorecPrivate.load('private/').then((engine) => { window.parityEngine = engine; })")
    _wait_until(page, "window.parityEngine !== undefined", timeout=60_000)
    worst_prob = worst_box = 0.0
    faces = 0
    for i, frame in enumerate(_lfw_frames()):
        rgba = cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA)
        answer = page.evaluate(
            """async ([b64, width, height]) => {
                const bytes = Uint8ClampedArray.from(atob(b64), (c) => c.charCodeAt(0));
                return window.parityEngine.analyse(new ImageData(bytes, width, height), {still: true});
            }""",
            [base64.b64encode(rgba.tobytes()).decode("ascii"), frame.shape[1], frame.shape[0]],
        )
        expected = recognizer.process(frame).to_dict()["faces"]
        assert len(answer["faces"]) == len(expected), (i, answer["faces"], expected)
        for mine, theirs in zip(answer["faces"], expected, strict=True):
            assert mine["emotion"] == theirs["emotion"], (i, mine, theirs)
            worst_prob = max(worst_prob, *(abs(mine["scores"][k] - theirs["scores"][k]) for k in theirs["scores"]))
            worst_box = max(worst_box, *np.abs(np.subtract(mine["box"], theirs["box"])))
            faces += 1
    print(f"parity on {PARITY_FRAMES} frames, {faces} faces: probabilities within {worst_prob:.4f}, "
          f"boxes within {worst_box:.0f} px")
    assert faces >= PARITY_FRAMES * 3 // 4, "most frames show a face the engine finds"
    assert worst_prob <= PROB_TOLERANCE and worst_box <= BOX_TOLERANCE
    page.close()


@browser_test
def test_exported_site_works_from_a_static_server_and_offline_after_load(chromium, tmp_path):
    """(c) `emorec export-web` output served by `python -m http.server`: private mode runs, then keeps running
    with the server gone and the browser offline, through Stop and Start."""
    site = tmp_path / "site"
    run = _emorec("export-web", str(site))
    assert run.returncode == 0, run.stderr
    assert "MB" in run.stdout
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(site)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = chromium.new_context()
    try:
        page = context.new_page()
        traffic = Traffic(page)
        deadline = time.monotonic() + 20
        while True:  # the server needs a moment to listen
            try:
                page.goto(f"http://127.0.0.1:{port}/")
                break
            except playwright.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        _faces_shown(page)
        assert page.get_attribute("#mode", "data-mode") == "private"
        assert page.query_selector("nav") is None  # no server pages to link to
    finally:
        server.terminate()
        server.wait()
    context.set_offline(True)
    page.click("#toggle")  # Stop
    _wait_until(page, "document.getElementById('status').dataset.state === 'closed'")
    page.click("#toggle")  # Start again, with no network at all
    _faces_shown(page)
    assert page.get_attribute("#status", "data-state") == "live"
    assert traffic.sockets == [] and {r.method for r in traffic.requests} == {"GET"}
    assert not traffic.errors, traffic.errors
    context.close()


def _moving_face(recognizer) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A real face (an lfw_expressions photo at 240 px) sliding right and bobbing over scikit-image's rocket
    photo, 21 frames of 640x480 (a stream's last detection is due on frame 16), and its true box in each: where
    the engine finds it at rest, moved with it."""
    from conftest import LFW_EXPRESSIONS
    from skimage import data

    background = cv2.resize(cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR), (640, 480))
    photo = cv2.resize(cv2.imread(str(LFW_EXPRESSIONS / "images" / "AJ_Cook_0001.jpg")), (240, 240),
                       interpolation=cv2.INTER_AREA)

    def placed(x: int, y: int) -> np.ndarray:
        frame = background.copy()
        frame[y : y + 240, x : x + 240] = photo
        return frame

    (face,) = recognizer(placed(200, 120))
    frames, truths = [], []
    for t in range(21):
        x, y = 80 + 7 * t, 120 + round(25 * np.sin(t / 3))
        frames.append(placed(x, y))
        truths.append(np.float64(face.box) + [x - 200, y - 120, x - 200, y - 120])
    return frames, truths


def _iou(box, truth) -> float:
    from emorec.track import iou_matrix

    return float(iou_matrix(np.float32([box]), np.float32([truth]))[0, 0])


@browser_test
def test_a_moving_face_keeps_one_box_and_one_track_between_detections(chromium, server_url, recognizer, tmp_path):
    """The page's stream detects every detect_every-th frame (the engine's number, from pipeline.json) and follows
    the face in between: fed the frames of a moving real face, it keeps one box on the face (as close to the truth
    as the engine detecting every frame) and one track id, and the detector runs on schedule only. Then the live
    page, with the same face moving in the fake camera, shows one face with one track id, followed and detected."""
    frames, truths = _moving_face(recognizer)
    page = chromium.new_page()
    page.goto(server_url + "/?mode=server")  # the page's scripts, without its camera loop using the engine
    page.evaluate("emorecPrivate.load('private/').then((engine) => { window.streamEngine = engine; })")
    _wait_until(page, "window.streamEngine !== undefined", timeout=60_000)
    every = page.evaluate("window.streamEngine.config.follow.detect_every")
    assert every == EngineConfig().detect_every > 1

    def analyse(frame: np.ndarray) -> dict:
        rgba = cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA)
        return page.evaluate(
            """async ([b64, width, height]) => {
                const bytes = Uint8ClampedArray.from(atob(b64), (c) => c.charCodeAt(0));
                return window.streamEngine.analyse(new ImageData(bytes, width, height));
            }""",
            [base64.b64encode(rgba.tobytes()).decode("ascii"), frame.shape[1], frame.shape[0]],
        )

    answers = [analyse(frame) for frame in frames]
    gone = frames[0].copy()
    gone[:] = cv2.resize(frames[0][:100, :100], (640, 480))  # the face leaves before the next detection is due
    left = analyse(gone)
    assert left["faces"] == [] and "detect" in left["timings_ms"], "a lost face is looked for at once"
    # The detector's misses come and go: a face followed up to a scheduled detection that misses it is kept
    # through that one, never through two (follow.FaceFollower._blinked).
    page.evaluate("""() => { window.blind = (on) => {
        for (const d of [window.streamEngine.detectors.full, window.streamEngine.detectors.short]) {
          if (on) d.detect = async () => []; else delete d.detect;
        } }; }""")
    for blind, expected in (({every}, [1] * len(frames)), ({every, 2 * every}, [1] * 2 * every + [0] * 5)):
        page.evaluate("window.streamEngine.reset()")
        counts = []
        for i, frame in enumerate(frames):
            page.evaluate(f"window.blind({'true' if i in blind else 'false'})")
            counts.append(len(analyse(frame)["faces"]))
        page.evaluate("window.blind(false)")
        assert counts == expected, (blind, counts)
    page.close()
    assert [len(a["faces"]) for a in answers] == [1] * len(frames)
    assert {a["faces"][0]["track_id"] for a in answers} == {1}, "one face, one track"
    detected = [i for i, a in enumerate(answers) if "detect" in a["timings_ms"]]
    assert detected == list(range(0, len(frames), every)), "on schedule: the face is never lost"
    ious = [_iou(a["faces"][0]["box"], truth) for a, truth in zip(answers, truths, strict=True)]
    every_frame = [max((_iou(f.box, truth) for f in recognizer(frame)), default=0.0)
                   for frame, truth in zip(frames, truths, strict=True)]
    print(f"followed boxes: IoU with the truth {min(ious):.3f} to {max(ious):.3f}, mean {np.mean(ious):.3f}; "
          f"the engine detecting every frame: mean {np.mean(every_frame):.3f}")
    assert min(ious) >= 0.6 and np.mean(ious) >= np.mean(every_frame) - 0.05, (ious, every_frame)

    camera = tmp_path / "moving.y4m"
    write_y4m(camera, frames + frames[::-1], fps=20)  # there and back, so that the looped video never jumps
    browser = chromium.browser_type.launch(executable_path=CHROMIUM,
                                           args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera}"])
    try:
        page = browser.new_page()
        page.goto(server_url)
        _faces_shown(page)
        page.evaluate("""() => { window.seen = [];
            window.emorecLive.onAnswer((a) => window.seen.push({faces: a.faces, timings: a.timings_ms})); }""")
        _wait_until(page, f"window.seen.length >= {3 * every}", timeout=60_000)
        seen = page.evaluate("window.seen")
    finally:
        browser.close()
    assert all(len(a["faces"]) == 1 for a in seen)
    assert {a["faces"][0]["track_id"] for a in seen} == {1}
    assert all(max(_iou(a["faces"][0]["box"], truth) for truth in truths) >= 0.6 for a in seen), "on the face"
    followed = sum("detect" not in a["timings"] for a in seen)
    assert 0 < len(seen) - followed < followed, "mostly followed, sometimes detected"


def test_the_server_offers_its_pipeline_or_says_why_not(recognizer, monkeypatch):
    """The live page is told where to fetch the pipeline (its numbers are the engine's, its classifier the
    file the engine runs), or, where ONNX Runtime Web is missing or the detector runs only on servers, why
    it sends frames to the server instead."""
    import emorec.browser
    from emorec.engine import EmotionRecognizer
    from emorec.web import create_app

    def page_config(app) -> dict:
        page = app.test_client().get("/").get_data(as_text=True)
        return json.loads(re.search(r'id="emorec-config">(.*?)</script>', page).group(1))["private"]

    client = create_app(recognizer).test_client()
    if ort_web_dir() is not None:
        assert page_config(client.application) == {"base": "private/"}
        served = client.get("/private/pipeline.json").get_json()
        assert served == pipeline_config(recognizer.config, "emonet_fast", recognizer.model_sha256)
        assert client.get("/private/classifier.onnx").data == recognizer.classifier.path.read_bytes()
    assert client.get("/private/../engine.py").status_code == 404
    assert client.get("/private/nothing.onnx").status_code == 404

    other = EmotionRecognizer(detector="blazeface-full")
    assert "runs only on the server" in page_config(create_app(other))["unavailable"]
    monkeypatch.setattr(emorec.browser, "ort_web_dir", lambda: None)
    app = create_app(recognizer)
    assert "make web-ort" in page_config(app)["unavailable"]
    assert app.test_client().get("/private/pipeline.json").status_code == 404
