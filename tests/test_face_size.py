"""One "largest face": the engine's order, the Calibrate capture and the desktop side panel agree.

A tall, thin box has the larger area but the shorter side; every part must pick the same face.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from emorec.calibration import NeutralCapture
from emorec.config import EngineConfig
from emorec.desktop.core import FaceSelection, face_at  # Qt-free
from emorec.detect import Detections
from emorec.engine import EmotionRecognizer
from emorec.labels import EMOTIONS
from emorec.types import Face, face_sizes, largest_face

TALL = (0, 0, 40, 200)  # area 8000, shorter side 40
SQUARE = (100, 0, 180, 80)  # area 6400, shorter side 80: the larger face


def _face(box, emotion: str) -> Face:
    scores = np.eye(len(EMOTIONS))[EMOTIONS.index(emotion)]
    return Face(box, scores, raw_scores=scores)


def test_face_size_is_the_shorter_side():
    assert face_sizes(np.array([TALL, SQUARE])).tolist() == [40, 80]
    assert face_sizes(SQUARE).tolist() == [80]
    tall, square = _face(TALL, "angry"), _face(SQUARE, "happy")
    assert largest_face([tall, square]) is square
    assert largest_face([]) is None
    twin = _face(SQUARE, "sad")
    assert largest_face([square, twin]) is square  # the first of equals, as the engine's stable order


def test_engine_capture_and_desktop_pick_the_same_face():
    found = Detections(np.float32([TALL, SQUARE]), np.float32([0.9, 0.9]), np.zeros((2, 2, 2), np.float32))
    settings = SimpleNamespace(config=EngineConfig(min_face_size=0, max_faces=1))
    kept = EmotionRecognizer._filter(settings, found, (480, 640, 3))
    assert kept.boxes.tolist() == [list(SQUARE)]  # the engine keeps the largest first

    tall, square = _face(TALL, "angry"), _face(SQUARE, "happy")
    capture = NeutralCapture(duration_s=1.0, min_faces=1)
    capture.add(0.0, [tall, square])
    assert capture.scores().argmax(1).tolist() == [EMOTIONS.index("happy")]

    assert FaceSelection().pick([tall, square]) == (square, False)
    nested = _face((110, 10, 150, 50), "sad")  # inside SQUARE: a click there means the smaller one
    assert face_at([square, nested], 120, 20) is nested
