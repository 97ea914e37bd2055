"""Personal calibration in the web app: a baseline sent with a REST request or with the upload page's form,
and the live socket's "calibrate" command (the page's control is tested in a real browser in
test_web_browser.py)."""

from __future__ import annotations

import html
import http.client
import io
import json
import re
import time
import urllib.request
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

pytest.importorskip("gunicorn", reason="the web app needs the 'web' extra: pip install 'emorec[web]'")

from simple_websocket import Client  # noqa: E402
from web_server import background_server, video_form  # noqa: E402

from emorec.calibration import Baseline  # noqa: E402
from emorec.labels import EMOTIONS  # noqa: E402
from emorec.recording import AnnotatedVideoWriter  # noqa: E402
from emorec.web import create_app  # noqa: E402


def _jpeg(bgr: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


@pytest.fixture(scope="module")
def client(recognizer):
    return create_app(recognizer).test_client()


@pytest.fixture(scope="module")
def resting(resting_face) -> tuple[bytes, np.ndarray]:
    _, (rest, *_), _, _ = resting_face
    return _jpeg(rest), rest


def _analyze(client, image: bytes, baseline: str | bytes | None = None, as_file: bool = True):
    data = {"image": (io.BytesIO(image), "photo.jpg")}
    if baseline is not None:
        data["baseline"] = (io.BytesIO(baseline.encode() if isinstance(baseline, str) else baseline),
                            "me.json") if as_file else baseline
    return client.post("/api/v1/analyze", data=data, content_type="multipart/form-data")


def test_rest_request_with_a_baseline_is_calibrated_and_nothing_is_kept(client, recognizer, resting):
    image, rest = resting
    baseline = recognizer.calibrate([rest]).to_json()
    plain = _analyze(client, image).get_json()["faces"][0]
    assert plain["emotion"] in ("angry", "sad") and "calibrated" not in plain
    for as_file in (True, False):
        face = _analyze(client, image, baseline, as_file).get_json()["faces"][0]
        assert face["calibrated"] and face["emotion"] == "neutral" and face["raw_emotion"] == plain["emotion"]
        assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert "calibrated" not in _analyze(client, image).get_json()["faces"][0]  # the baseline was not kept


@pytest.mark.parametrize(
    "baseline, status, says",
    [
        ("{broken", 400, "baseline: not JSON"),
        (b"\xff\xd8\xff", 400, "baseline: not JSON"),
        ('{"format": "emorec-baseline", "version": 1, "classes": ["happy"]}', 400, "baseline: classes"),
        ("OTHER", 400, "another classifier"),
        # Issue 25: these were 500s.
        ("[" * 30_000 + "]" * 30_000, 400, "baseline: not a baseline (nested too deep)"),
        ("[" * 100_000 + "]" * 100_000, 400, "a baseline is at most"),
        ('{"samples": ' + "9" * 5000 + "}", 400, "a 5000-digit number"),
    ],
    ids=lambda value: value[:30] if isinstance(value, str) else None,
)
def test_rest_refuses_a_bad_baseline(client, resting, baseline, status, says):
    if baseline == "OTHER":
        baseline = Baseline.from_scores(np.full((1, 7), 1 / 7), "0" * 64, "someone else's model").to_json()
    response = _analyze(client, resting[0], baseline)
    assert response.status_code == status and says in response.get_json()["error"]


def test_rest_raw_body_is_unchanged_by_calibration(client, resting):
    answer = client.post("/api/v1/analyze", data=resting[0], content_type="image/jpeg").get_json()
    assert len(answer["faces"]) == 1 and "calibrated" not in answer["faces"][0]


@pytest.fixture(scope="module")
def server_url():
    with background_server("--threads", "4", "--max-live-streams", "2") as url:
        yield url


def _frames_until(ws, jpeg: bytes, done, timeout_s: float = 15.0) -> dict:
    """Send frames one at a time until an answer satisfies ``done``; that answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ws.send(jpeg)
        answer = json.loads(ws.receive(timeout=10))
        if done(answer):
            return answer
    raise AssertionError(f"no answer satisfied the condition in {timeout_s} s; last: {answer}")


def test_live_socket_calibrates_the_connection_on_command(server_url, resting):
    image, _ = resting
    ws = Client.connect(server_url.replace("http", "ws", 1) + "/ws/live")
    try:
        first = _frames_until(ws, image, lambda a: bool(a.get("faces")))
        assert first["calibration"] == {"state": "off"} and first["faces"][0]["emotion"] in ("angry", "sad")
        ws.send(json.dumps({"calibrate": {"seconds": 1}}))  # no answer of its own
        capturing = _frames_until(ws, image, lambda a: a["calibration"]["state"] == "capturing")
        assert 0 <= capturing["calibration"]["progress"] < 1 and capturing["calibration"]["seconds"] == 1
        on = _frames_until(ws, image, lambda a: a["calibration"]["state"] == "on")
        assert on["calibration"]["samples"] >= 3
        face = _frames_until(ws, image, lambda a: a["faces"] and a["faces"][0].get("calibrated"))["faces"][0]
        assert face["emotion"] == "neutral" and set(face["raw_scores"]) == set(EMOTIONS)

        for bad, says in (('{"calibrate": {"seconds": 60}}', "seconds must be a number from 1 to 10"),
                          ('{"calibrate": {"seconds": "3"}}', "seconds must be"),
                          ("hello", "binary JPEG"), ('{"dance": 1}', "binary JPEG")):
            ws.send(bad)
            assert says in json.loads(ws.receive(timeout=10))["error"]
        ws.send(json.dumps({"calibrate": "reset"}))
        off = _frames_until(ws, image, lambda a: a["calibration"]["state"] == "off")
        assert "calibrated" not in off["faces"][0]
    finally:
        ws.close()


def test_live_calibration_without_a_face_says_so(server_url):
    blank = _jpeg(np.full((360, 480, 3), 100, np.uint8))
    ws = Client.connect(server_url.replace("http", "ws", 1) + "/ws/live")
    try:
        ws.send(json.dumps({"calibrate": {"seconds": 1}}))
        answer = _frames_until(ws, blank, lambda a: a["calibration"]["state"] == "off" and "error" in a["calibration"])
        assert "saw a face in 0 frame(s)" in answer["calibration"]["error"]
    finally:
        ws.close()


# ----- the upload page's baseline field, through the real server


def _upload(url: str, media: bytes, filename: str, baseline: bytes | None = None, baseline_name: str = "me.json",
            path: str = "/upload") -> tuple[int, str]:
    """Post the upload form as a browser without JavaScript does (its cookie and token from the page first):
    (status, page)."""
    page = urllib.request.urlopen(url + "/upload", timeout=30)
    cookie = page.headers["Set-Cookie"].split(";")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.read().decode()).group(1)
    body, content_type = video_form(token, media, filename=filename, baseline=baseline, baseline_name=baseline_name)
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        connection.request("POST", path, body=body, headers={"Cookie": cookie, "Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def _page_text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.fixture(scope="module")
def resting_clip(resting, tmp_path_factory) -> bytes:
    """1.5 s at 10 fps of the resting face, sitting still with sensor noise."""
    _, rest = resting
    path = tmp_path_factory.mktemp("clip") / "resting.mp4"
    rng = np.random.default_rng(0)
    writer = AnnotatedVideoWriter(path, 10.0, (rest.shape[1], rest.shape[0]))
    for _ in range(15):
        writer.write(np.clip(rest + rng.normal(0, 3, rest.shape), 0, 255).astype(np.uint8))
    writer.close()
    return path.read_bytes()


def test_upload_page_reads_photos_and_videos_against_a_sent_baseline(server_url, recognizer, resting, resting_clip):
    image, rest = resting
    baseline = recognizer.calibrate([rest]).to_json().encode()
    status, plain = _upload(server_url, image, "rest.jpg")
    generic = re.search(r"Face 1: (\w+)", plain).group(1)
    assert status == 200 and generic in ("angry", "sad") and "against your baseline" not in plain
    # A browser sends the baseline field left empty as a nameless, empty file: no baseline, no error.
    status, empty = _upload(server_url, image, "rest.jpg", b"", baseline_name="")
    assert status == 200 and re.search(r"Face 1: (\w+)", empty).group(1) == generic

    status, page = _upload(server_url, image, "rest.jpg", baseline)
    text = _page_text(page)
    assert status == 200 and "Face 1: neutral" in text, text
    assert f"against your baseline; without it {generic}" in text

    status, page = _upload(server_url, resting_clip, "resting.mp4", baseline)
    text = _page_text(page)
    assert status == 200 and "15 frames" in text and "each read against your baseline" in text, text
    assert "Face 1: mostly neutral" in text
    # The REST endpoint for videos takes the same field, as `emorec video --baseline` does.
    status, answer = _upload(server_url, resting_clip, "resting.mp4", baseline, path="/api/v1/video")
    tracks = json.loads(answer)["tracks"]
    assert status == 200 and [track["emotion"] for track in tracks] == ["neutral"]
    status, answer = _upload(server_url, resting_clip, "resting.mp4", path="/api/v1/video")
    assert status == 200 and json.loads(answer)["tracks"][0]["emotion"] in ("angry", "sad")


@pytest.mark.parametrize(
    "baseline, says",
    [
        (b"{broken", "baseline: not JSON"),
        (b"\xff\xd8\xff\xe0 a photo", "baseline: not JSON"),
        (b'{"format": "emorec-baseline", "version": 1, "classes": ["happy"]}', "baseline: classes"),
        (b"OTHER", "another classifier"),
        (b"[" * 30_000 + b"]" * 30_000, "baseline: not a baseline (nested too deep)"),
        (b" " * 70_000, "a baseline is at most"),
    ],
    ids=["broken", "a photo", "wrong classes", "another model", "nested", "too large"],
)
def test_upload_page_refuses_a_bad_baseline_in_one_line(server_url, resting, baseline, says):
    if baseline == b"OTHER":
        baseline = Baseline.from_scores(np.full((1, 7), 1 / 7), "0" * 64, "someone else's model").to_json().encode()
    status, page = _upload(server_url, resting[0], "rest.jpg", baseline)
    error = html.unescape(re.search(r'id="upload-error"[^>]*>([^<]*)<', page).group(1)).strip()
    assert status == 400 and says in error and "\n" not in error and len(error) < 300, error
    assert "Traceback" not in page and "Face 1" not in page
