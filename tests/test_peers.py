"""benchmarks/peers.py, emorec beside the `fer` package: it skips with a message where `fer` is missing. The
comparison itself needs an interpreter with `fer` and TensorFlow (``EMOREC_PEER_PYTHON``), which neither CI
nor the test environment installs: it is a benchmark (docs/speed.md), not a test that would always skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "benchmarks" / "peers.py"
PHOTOS = REPO.parent / "shared" / "datasets" / "expressions_dev" / "lfw_expressions"


def _run(*args: str, peer: str | None = None) -> subprocess.CompletedProcess:
    """benchmarks/peers.py with ``args``; ``peer`` as $EMOREC_PEER_PYTHON (unset when None)."""
    if not (PHOTOS / "images").is_dir():
        pytest.skip(f"lfw_expressions not found at {PHOTOS}")
    environ = {k: v for k, v in os.environ.items() if k != "EMOREC_PEER_PYTHON"}
    environ["PYTHONPATH"] = str(REPO / "src")
    if peer is not None:
        environ["EMOREC_PEER_PYTHON"] = peer
    return subprocess.run(
        [sys.executable, str(PEERS), "--photos", str(PHOTOS), *args],
        capture_output=True, text=True, timeout=600, env=environ,
    )


def test_skips_with_a_message_where_fer_is_missing(tmp_path):
    # This interpreter is the project's own, which does not have `fer` (it needs TensorFlow).
    if subprocess.run([sys.executable, "-c", "import fer.fer"], capture_output=True).returncode == 0:
        pytest.skip("fer is installed in the project's interpreter")
    done = _run("--peer-python", sys.executable, "--frames", "2")
    assert done.returncode == 0, done.stderr
    assert "skipped: `fer` cannot run in" in done.stdout
    assert "No module named 'fer'" in done.stdout
    assert "--peer-python" in done.stdout  # says how to install and point at it
    assert "| end to end |" not in done.stdout

    missing = _run("--peer-python", str(tmp_path / "no-such-python"), "--frames", "2")
    assert missing.returncode == 0, missing.stderr
    assert f"peer interpreter {tmp_path / 'no-such-python'} does not exist" in missing.stdout
