"""The wheel that ``python -m build`` makes works on its own: installed (not editable) into a fresh virtual
environment, its ``emorec predict`` reads a real photo from a folder outside the repository with the models
and web files packed inside it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

LONDON_PHOTO = REPO.parent / "shared" / "datasets" / "expressions_dev" / "london" / "images" / "happy_001_08.jpg"
# What the package reads from its own folder at run time (models, their licences, web pages): a wheel without
# any of them installs but cannot run.
PACKED = sorted(path.relative_to(REPO / "src").as_posix() for path in (REPO / "src" / "emorec").rglob("*")
                if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts)


def _run(command: list[str], cwd: Path, env: dict | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(command)} failed ({proc.returncode}):\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


@pytest.mark.slow
def test_the_built_wheel_installs_and_predicts_outside_the_repository(tmp_path):
    pytest.importorskip("build")
    if not LONDON_PHOTO.exists():
        pytest.skip(f"the London set's photo not found at {LONDON_PHOTO}")
    # Build from a copy of what the wheel is made of, so the repository gets no build/ or egg-info folders.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _run([sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(source)], cwd=tmp_path)
    wheel, = (tmp_path / "dist").glob("emorec-*.whl")
    with zipfile.ZipFile(wheel) as packed:
        missing = sorted(set(PACKED) - set(packed.namelist()))
    assert "emorec/assets/emonet_fast.onnx" in PACKED and "emorec/web/templates/live.html" in PACKED
    assert not missing, f"the wheel lacks {missing}"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)  # no --system-site-packages: only the wheel's deps
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"  # neither the repository nor its src/ is on any path here
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    where = _run([str(python), "-c", "import emorec.classifier as c; print(c.__file__)"], cwd=elsewhere, env=env)
    assert Path(where.strip()).is_relative_to(venv), f"emorec was imported from {where.strip()}, not the wheel"
    _run([str(venv / "bin" / "emorec"), "predict", str(LONDON_PHOTO), "--json", "faces.json"], cwd=elsewhere, env=env)
    (result,) = json.loads((elsewhere / "faces.json").read_text())
    assert result["error"] is None and len(result["faces"]) == 1
    assert result["faces"][0]["emotion"] == "happy", result["faces"][0]["scores"]
