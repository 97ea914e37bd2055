"""Small validated result types shared by the engine, the CLI and the apps.

Boxes are ``(x1, y1, x2, y2)`` in pixels of the input frame, x to the right and y down
(not face_recognition's confusing top/right/bottom/left order).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

import numpy as np

from emorec.labels import EMOTIONS, NUM_CLASSES


@dataclass(frozen=True, eq=False)  # eq and hash below: numpy arrays compare element-wise, and are unhashable
class Face:
    """One detected face: where it is, what it shows and how sure the model is.

    Faces are values: equal when every field is equal (probabilities exactly), hashable, so ``face in faces``
    and sets of faces work.
    """

    box: tuple[int, int, int, int]
    scores: np.ndarray  # shape (7,), probabilities in FER2013 order, summing to 1
    detection_score: float = 1.0
    track_id: int | None = None
    # The model's own probabilities when ``scores`` were calibrated to the person (emorec.calibration).
    raw_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.box) != 4:
            raise ValueError(f"box must be (x1, y1, x2, y2), got {self.box!r}")
        x1, y1, x2, y2 = self.box
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"box must have x2 > x1 and y2 > y1, got {self.box!r}")
        scores = np.asarray(self.scores, dtype=np.float32)
        if scores.shape != (NUM_CLASSES,):
            raise ValueError(f"scores must have shape ({NUM_CLASSES},), got {scores.shape}")
        object.__setattr__(self, "box", tuple(int(v) for v in self.box))
        object.__setattr__(self, "scores", scores)
        if self.raw_scores is not None:
            raw = np.asarray(self.raw_scores, dtype=np.float32)
            if raw.shape != (NUM_CLASSES,):
                raise ValueError(f"raw_scores must have shape ({NUM_CLASSES},), got {raw.shape}")
            object.__setattr__(self, "raw_scores", raw)

    def _key(self) -> tuple:
        values = (getattr(self, f.name) for f in fields(self))
        return tuple(v.tobytes() if isinstance(v, np.ndarray) else v for v in values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Face) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def emotion(self) -> str:
        """The most probable emotion's name."""
        return EMOTIONS[int(np.argmax(self.scores))]

    @property
    def confidence(self) -> float:
        """Probability of the most probable emotion."""
        return float(np.max(self.scores))

    @property
    def calibrated(self) -> bool:
        """Whether ``scores`` were calibrated to the person (``raw_scores`` then hold the model's own)."""
        return self.raw_scores is not None

    def to_dict(self) -> dict:
        """JSON-ready form: box, emotion, confidence, per-emotion probabilities, track id; when calibrated,
        also the uncalibrated ``raw_scores`` and ``raw_emotion``."""
        data = {
            "box": list(self.box),
            "emotion": self.emotion,
            "confidence": round(self.confidence, 4),
            "scores": {name: round(float(p), 4) for name, p in zip(EMOTIONS, self.scores, strict=True)},
            "detection_score": round(float(self.detection_score), 4),
            "track_id": self.track_id,
        }
        if self.raw_scores is not None:
            data["calibrated"] = True
            data["raw_emotion"] = EMOTIONS[int(np.argmax(self.raw_scores))]
            data["raw_scores"] = {name: round(float(p), 4) for name, p in zip(EMOTIONS, self.raw_scores, strict=True)}
        return data


@dataclass
class FrameResult:
    """All faces of one frame, with the time each stage took (milliseconds).

    ``image`` is the BGR frame the faces were found in, kept so that drawing them needs no second decode;
    ``frame_index`` and ``time_s`` place it in its video (``time_s`` is None for photos, ``frame_index`` too
    for a lone image); ``path`` names the photo a stream of photos read it from.
    """

    faces: list[Face]
    frame_size: tuple[int, int]  # (width, height)
    timings_ms: dict[str, float] = field(default_factory=dict)
    frame_index: int | None = None
    time_s: float | None = None
    path: str | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-ready form (without the pixels); ``path`` only where the frame is a photo of a stream."""
        return {
            **({"path": self.path} if self.path is not None else {}),
            "frame_index": self.frame_index,
            "time_s": None if self.time_s is None else round(self.time_s, 3),
            "width": self.frame_size[0],
            "height": self.frame_size[1],
            "faces": [face.to_dict() for face in self.faces],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


def face_sizes(boxes: np.ndarray) -> np.ndarray:
    """How large each face box (N, 4) ``x1, y1, x2, y2`` is: its shorter side, in pixels.

    The one measure of a face's size: the engine drops faces under ``min_face_size`` and orders the rest by it,
    largest first (so ``faces[0]`` is the :func:`largest_face`), and the Calibrate capture and the desktop
    app's side panel follow the largest face by it too.
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    return np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def largest_face(faces: Iterable[Face]) -> Face | None:
    """The largest of ``faces`` by :func:`face_sizes` (the first of equals, as the engine orders them); None
    for no faces."""
    faces = list(faces)
    if not faces:
        return None
    return faces[int(np.argmax(face_sizes(np.array([face.box for face in faces]))))]
