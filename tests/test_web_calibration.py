"""Personal calibration in the web app: a baseline sent with a REST request, and the live socket's
"calibrate" command (the page's control is tested in a real browser in test_web_browser.py)."""

from __future__ import annotations

import io
import json
import time

import cv2
import numpy as np
import pytest

pytest.importorskip("gunicorn", reason="the web app needs the 'web' extra: pip install 'emorec[web]'")

from simple_websocket import Client  # noqa: E402
from web_server import background_server  # noqa: E402

from emorec.calibration import Baseline  # noqa: E402
from emorec.labels import EMOTIONS  # noqa: E402
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
