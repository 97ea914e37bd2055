"""Building the command line's parser (``emorec --version``, ``emorec CMD --help``) loads no model runtime:
ONNX Runtime, OpenCV and PyTorch are imported by the commands that use them, never to describe them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("onnxruntime", "cv2", "torch", "PySide6", "flask", "pyarrow", "ray")


def test_building_the_parser_imports_no_heavy_module():
    code = ("import sys; from emorec.cli import build_parser; build_parser(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "", f"imported while building the parser: {run.stdout.strip()}"


def test_version_answers_without_the_engine():
    run = subprocess.run([sys.executable, "-m", "emorec.cli", "--version"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("emorec ")
