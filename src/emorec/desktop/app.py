"""Starting the desktop app: a QApplication and the main window over a ready engine."""

from __future__ import annotations

import os
import signal
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from emorec.calibration import Baseline
from emorec.desktop.window import MainWindow
from emorec.engine import EmotionRecognizer

# What Qt's xcb platform plugin links to beyond libxcb itself, by Debian package. A minimal Debian lacks the
# first two (found by running the app on Xvfb); without them Qt aborts the process (exit 134) instead of
# raising anything Python could catch.
XCB_LIBRARIES = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}


def display_problem() -> str | None:
    """Why no window can open, or None. Without this check Qt aborts the process when it finds no display,
    or when an X display is there but its xcb plugin cannot load."""
    if not sys.platform.startswith("linux"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith("xcb"):
        return None
    if not platform and os.environ.get("WAYLAND_DISPLAY"):
        return None
    if not os.environ.get("DISPLAY"):
        return "no display found (DISPLAY and WAYLAND_DISPLAY are unset); run it in a desktop session"
    missing = [package for library, package in XCB_LIBRARIES.items() if not _loadable(library)]
    if missing:
        return f"Qt's X11 (xcb) plugin needs {', '.join(missing)}: sudo apt-get install {' '.join(missing)}"
    return None


def _loadable(library: str) -> bool:
    import ctypes

    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def run_app(
    recognizer: EmotionRecognizer,
    source: str | int | None = None,
    out_dir: str | os.PathLike = "emorec-captures",
    smoothing: bool = True,
    baseline: Baseline | None = None,
) -> int:
    """Open the window, start ``source`` if given (calibrated to ``baseline`` if given), and run until the
    window closes; returns the exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("emorec")
    window = MainWindow(recognizer, out_dir=out_dir, smoothing=smoothing)
    if baseline is not None:
        window.set_baseline(baseline)
    window.show()
    if source is not None:
        window.start(source)
    # Qt's event loop does not return to Python, so Ctrl+C in the terminal would be ignored until some
    # Python code runs: a timer lets the interpreter see the signal, which closes the window cleanly.
    previous = signal.signal(signal.SIGINT, lambda *_: window.close())
    wake_python = QTimer()
    wake_python.timeout.connect(lambda: None)
    wake_python.start(200)
    try:
        return app.exec()
    finally:
        # The handler holds the window: left installed, it would outlive the QApplication and crash at exit.
        signal.signal(signal.SIGINT, previous)
