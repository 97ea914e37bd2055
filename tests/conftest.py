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


FERPLUS_CSV = Path(os.environ.get("EMOREC_FERPLUS", REPO.parent / "shared" / "datasets" / "ferplus" / "fer2013new.csv"))


@pytest.fixture(scope="session")
def ferplus_path() -> Path:
    if not FERPLUS_CSV.exists():
        pytest.skip(f"FER+ labels not found at {FERPLUS_CSV} (set EMOREC_FERPLUS to fer2013new.csv)")
    return FERPLUS_CSV


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
