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


def display_problem() -> str | None:
    """Why no window can open, or None. Without this check Qt aborts the process when it finds no display."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return "no display found (DISPLAY and WAYLAND_DISPLAY are unset); run it in a desktop session"


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
