"""Shared fixtures: the real FER2013 data from ../shared and real face photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FER2013_CSV = Path(os.environ.get("EMOREC_FER2013", REPO.parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"))


@pytest.fixture(scope="session")
def fer2013_path() -> Path:
    if not FER2013_CSV.exists():
        pytest.skip(f"FER2013 not found at {FER2013_CSV} (set EMOREC_FER2013 to its path)")
    return FER2013_CSV


@pytest.fixture(scope="session")
def fer2013(fer2013_path, tmp_path_factory):
    from emorec.data import load_fer2013

    return load_fer2013(fer2013_path, cache_dir=os.environ.get("EMOREC_CACHE", tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """scikit-image's public-domain portrait of astronaut Eileen Collins (512x512, one face)."""
    import cv2
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


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
MARKS_BY_FIXTURE = {"fer2013": "needs_fer2013", "fer2013_path": "needs_fer2013", "server_url": "slow", "qtbot": "gui"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        for fixture, mark in MARKS_BY_FIXTURE.items():
            if fixture in item.fixturenames:
                item.add_marker(mark)
