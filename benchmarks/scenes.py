"""Test scenes for the engine benchmarks: real FER2013 faces, enlarged and pasted into 640x480 photos.

The backgrounds are scikit-image's public-domain photos that contain no human face (a rocket, a cup of
coffee), so every face the detector finds is a pasted one whose true box and label are known.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from emorec.training.data import load_fer2013

FRAME_SIZE = (640, 480)
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"


def scene_parser(doc: str) -> argparse.ArgumentParser:
    """Options shared by the benchmarks that paste PublicTest faces: how many, detector, model, data."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--n", type=int, default=3589, help="PublicTest faces to use (default: all)")
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default=str(DATA))
    return parser


def public_test_sample(args: argparse.Namespace, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``args.n`` random PublicTest faces (never PrivateTest) and their labels."""
    faces, labels = load_fer2013(args.data).split("PublicTest")
    pick = rng.choice(len(faces), size=min(args.n, len(faces)), replace=False)
    return faces[pick], labels[pick]


def backgrounds() -> list[np.ndarray]:
    """Face-free BGR photos, each cropped to 4:3 and resized to 640x480."""
    from skimage import data

    photos = []
    for rgb in (data.rocket(), data.coffee()):
        h, w = rgb.shape[:2]
        side_w = min(w, h * 4 // 3)
        x0 = (w - side_w) // 2
        crop = rgb[:, x0 : x0 + side_w]
        photos.append(cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), FRAME_SIZE, interpolation=cv2.INTER_AREA))
    return photos


def paste_face(frame: np.ndarray, face48: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Paste a 48x48 gray face, enlarged (bicubic) to the square ``box`` x1y1x2y2, into a BGR frame in place."""
    x1, y1, x2, y2 = box
    face = cv2.resize(face48, (x2 - x1, y2 - y1), interpolation=cv2.INTER_CUBIC)
    frame[y1:y2, x1:x2] = face[:, :, None]
    return frame


def random_scene(
    rng: np.random.Generator,
    faces48: list[np.ndarray],
    photos: list[np.ndarray],
    size_range: tuple[int, int] = (100, 220),
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A 640x480 frame with the given faces pasted side by side at random sizes; returns it and their boxes."""
    width, height = FRAME_SIZE
    frame = photos[int(rng.integers(len(photos)))].copy()
    slot = width // len(faces48)
    boxes = []
    for i, face in enumerate(faces48):
        side = int(min(rng.integers(*size_range), slot - 8, height - 8))
        x1 = i * slot + int(rng.integers(0, slot - side + 1))
        y1 = int(rng.integers(0, height - side + 1))
        box = (x1, y1, x1 + side, y1 + side)
        paste_face(frame, face, box)
        boxes.append(box)
    return frame, boxes
