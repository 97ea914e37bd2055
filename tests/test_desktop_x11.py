"""`emorec desktop` as a user starts it, on a real X server (Xvfb) with Qt's xcb platform plugin, not offscreen.

The offscreen platform that tests/test_desktop.py uses loads none of the X libraries, so it cannot see the
desktop app abort on a minimal Debian that lacks what the xcb plugin links to (libxcb-icccm4,
libxcb-keysyms1, ...). Here the app runs in its own process on its own display, and a second process grabs
that display's root window: a screenshot of what a user would see. ``EMOREC_SCREENSHOTS=1`` keeps it in
docs/screenshots/desktop_x11.png.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("PySide6.QtWidgets", reason="the desktop extra (PySide6) is not installed")
XVFB = shutil.which("Xvfb")
pytestmark = pytest.mark.gui
needs_xvfb = pytest.mark.skipif(XVFB is None, reason="Xvfb is not installed (apt-get install xvfb)")

REPO = Path(__file__).resolve().parents[1]
SCREEN = (1280, 800)
GRAB = """
import sys
from PySide6.QtGui import QGuiApplication
app = QGuiApplication([])
sys.exit(0 if app.primaryScreen().grabWindow(0).save(sys.argv[1]) else 1)
"""


@pytest.fixture
def x_display():
    """A fresh Xvfb on a display number it picks itself (-displayfd); yields ':N', stops it afterwards."""
    read, write = os.pipe()
    server = subprocess.Popen(
        [XVFB, "-displayfd", str(write), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    assert number.isdigit(), "Xvfb did not start"
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def x11_env(display: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    return {**env, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": str(REPO / "src")}


def grab(display: str, path: Path) -> np.ndarray | None:
    done = subprocess.run([sys.executable, "-c", GRAB, str(path)], env=x11_env(display), capture_output=True,
                          timeout=30)
    return cv2.imread(str(path)) if done.returncode == 0 else None


@pytest.mark.slow
@needs_xvfb
def test_desktop_app_runs_on_a_real_x_server(x_display, astronaut_bgr, tmp_path):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY))  # grey: colour means annotation
    app = subprocess.Popen(
        [sys.executable, "-m", "emorec.cli", "desktop", "--source", str(photo), "--out-dir", str(tmp_path)],
        env=x11_env(x_display), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    keep = os.environ.get("EMOREC_SCREENSHOTS") == "1"
    path = REPO / "docs" / "screenshots" / "desktop_x11.png" if keep else tmp_path / "desktop_x11.png"
    try:
        deadline, shot = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            assert app.poll() is None, f"emorec desktop exited with {app.returncode}:\n{app.stdout.read().decode()}"
            shot = grab(x_display, path)
            # The window is up, the photo shown with its face boxed and labelled, and the probability bar
            # filled: all in the emotion's colour, where the grey photo and Qt's grey widgets have none
            # (the timeline legend's colour samples alone are a few hundred pixels).
            if shot is not None and _saturated_pixels(shot) > 3000:
                break
            time.sleep(1.0)
        else:
            pytest.fail("the window with the annotated photo never appeared on the X display")
    finally:
        app.send_signal(signal.SIGINT)  # Ctrl+C, which the app handles by closing its window
        try:
            output = app.communicate(timeout=30)[0].decode()
        except subprocess.TimeoutExpired:
            app.kill()
            output = app.communicate()[0].decode()
    assert app.returncode == 0, output
    assert "Could not load the Qt platform plugin" not in output
    assert shot.shape[:2] == (SCREEN[1], SCREEN[0]) and shot.std() > 20


def _saturated_pixels(bgr: np.ndarray) -> int:
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    return int(((hsv[..., 1] > 150) & (hsv[..., 2] > 120)).sum())


def test_missing_xcb_libraries_are_named_instead_of_an_abort(monkeypatch, capsys):
    """What a minimal Debian without libxcb-icccm4 and libxcb-keysyms1 sees: one line naming the packages."""
    import emorec.desktop.app as app
    from emorec.cli import main

    absent = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1"}
    monkeypatch.setattr(app, "_loadable", lambda library: library not in absent)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["desktop"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("sudo apt-get install libxcb-icccm4 libxcb-keysyms1") and len(err.splitlines()) == 1
    monkeypatch.setattr(app, "_loadable", lambda library: True)
    assert app.display_problem() is None
