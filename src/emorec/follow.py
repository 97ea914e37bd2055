"""Following faces between detections, so that a stream runs the full detector only every few frames.

After a detection, each face's box is seeded with corner features (``cv2.goodFeaturesToTrack``); on the
next frames they are followed with pyramidal Lucas-Kanade optical flow, checked forwards and backwards, and
the box and its eye keypoints move by the similarity transform (shift, scale, roll) that the kept points
agree on. The detector runs again on schedule (``detect_every``), and at once when following cannot be
trusted: too few points kept, the face's pixels no longer look like the face that was detected (a cut, an
occlusion), a box reaching the frame's edge, a new frame size. Faces that enter the view are found at the
next scheduled detection. A face followed well up to a scheduled detection that misses it is kept through
that one detection (the detector's misses come and go from frame to frame), never through two.
Stills never come here: only streams follow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from emorec.config import DEFAULT_DETECT_EVERY, whole_number
from emorec.detect import Detections
from emorec.track import iou_matrix
from emorec.types import face_sizes

# 15-pixel windows on 3 pyramid levels of a frame shrunk to keep faces ~64 pixels follow moves of about half
# a face a frame; 25 points per face are plenty for a robust fit and keep the flow cheap.
_LK = {
    "winSize": (15, 15),
    "maxLevel": 2,
    "criteria": (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 10, 0.03),
}
_POINTS = 25
_FACE_PIXELS = 64
_TEMPLATE = 16  # side of the grey patch a followed face is compared with its detected look
# A detection overlapping a followed face's box this much (IoU), or centred in it, found that face.
CARRY_OVERLAP = 0.3


@dataclass
class _Face:
    # All in the pixels of the shrunk grey frame the faces are followed in.
    box: np.ndarray  # (4,) x1y1x2y2
    eyes: np.ndarray  # (2, 2)
    score: float
    points: np.ndarray  # (P, 1, 2) features on the face in the previous frame
    seeded: int  # how many points the detection gave it
    template: np.ndarray  # (_TEMPLATE, _TEMPLATE) float32, zero mean, unit norm: the face as detected
    carried: bool = False  # kept through a scheduled detection that missed it


class FaceFollower:
    """One stream's faces between detections (see the module docstring); thread-safe, one frame at a time.

    Args:
        detect_every: run the detector on every N-th frame at most N frames apart (1: on every frame,
            following nothing).
        min_points: a face followed by fewer agreeing points is lost.
        min_similarity: a followed face whose grey patch correlates less than this with its detected one is
            lost. On benchmarks/stream_detection.py's clip (detect_every=8) followed faces had a median of
            0.98 and 99% were above 0.70; cuts and faces swapped in place mostly fail the point checks first,
            so this guards against a box sliding off the face onto the scenery.
    """

    def __init__(self, detect_every: int = DEFAULT_DETECT_EVERY, min_points: int = 6, min_similarity: float = 0.6):
        self.detect_every = whole_number(detect_every, "detect_every", 1)
        self.min_points = min_points
        self.min_similarity = min_similarity
        self.detections = 0  # frames the detector ran on
        self.frames = 0
        self._faces: list[_Face] = []
        self._gray: np.ndarray | None = None  # the last frame, grey and shrunk by ``_shrink``
        self._size: tuple[int, ...] = ()  # its size before shrinking
        self._shrink = 1
        self._since = 0  # frames since the last detection
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget the followed faces: the next frame is detected in full."""
        with self._lock:
            self._gray = None
            self._faces = []

    def faces(self, bgr: np.ndarray, detect: Callable[[np.ndarray], Detections]) -> tuple[Detections, dict[str, float]]:
        """This frame's faces, from ``detect(bgr)`` when due or following fails, else followed; and the ms
        spent: "detect" when the detector ran, "follow" for following and seeding features."""
        with self._lock:
            self.frames += 1
            if self.detect_every == 1:
                start = time.perf_counter()
                found = detect(bgr)
                self.detections += 1
                return found, {"detect": _ms_since(start)}
            start = time.perf_counter()
            gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            followed = None
            if self._gray is not None and self._size == gray.shape:
                followed = self._follow(_shrink(gray, self._shrink))
            spent = {"follow": _ms_since(start)}
            if followed is not None and self._since + 1 < self.detect_every:
                self._since += 1
                return followed, spent
            start = time.perf_counter()
            found = detect(bgr)
            spent["detect"] = _ms_since(start)
            self.detections += 1
            start = time.perf_counter()
            found = self._seed(gray, found, self._blinked(found) if followed is not None else [])
            spent["follow"] += _ms_since(start)
            return found, spent

    def _blinked(self, found: Detections) -> list[_Face]:
        """The faces just followed well that a scheduled detection missed: the detector's own misses come and
        go from frame to frame, so such a face is kept, once; the next detection must find it. A face with a
        detection centred in its box was found, its followed box having slid off it (kept, it would be the
        same face twice)."""
        boxes = np.stack([face.box for face in self._faces]) * self._shrink if self._faces else np.zeros((0, 4))
        overlap = iou_matrix(boxes, found.boxes) >= CARRY_OVERLAP
        centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
        inside = np.all((centres[None] >= boxes[:, None, :2]) & (centres[None] <= boxes[:, None, 2:]), axis=2)
        missed = ~(overlap | inside).any(axis=1)
        return [face for face, lost in zip(self._faces, missed, strict=True) if lost and not face.carried]

    def _seed(self, gray: np.ndarray, found: Detections, carried: list[_Face]) -> Detections:
        """Start following the faces just detected and those ``carried`` over, on a grey frame shrunk so that
        the smallest of them keeps ~64 pixels: larger faces gain nothing from more pixels but the cost of
        bigger pyramids. Returns all of them."""
        if carried:
            found = Detections(
                np.concatenate([found.boxes, np.stack([f.box for f in carried]) * self._shrink]),
                np.concatenate([found.scores, np.float32([f.score for f in carried])]),
                np.concatenate([found.eyes, np.stack([f.eyes for f in carried]) * self._shrink]),
            )
        sides = face_sizes(found.boxes)
        # Powers of two: OpenCV shrinks by 2 and 4 on a fast path, by 3 several times slower.
        self._shrink = 1 << int(np.log2(np.clip(sides.min() // _FACE_PIXELS, 1, 4))) if len(sides) else 1
        self._size, self._since, self._faces = gray.shape, 0, []
        self._gray = small = _shrink(gray, self._shrink)
        height, width = small.shape
        first_carried = len(found.boxes) - len(carried)
        for i, (box, eyes, score) in enumerate(
            zip(found.boxes / self._shrink, found.eyes / self._shrink, found.scores, strict=True)
        ):
            x1, y1, x2, y2 = np.clip(np.round(box).astype(int), 0, [width, height, width, height])
            corners = None
            if min(x2 - x1, y2 - y1) >= 8:
                corners = cv2.goodFeaturesToTrack(small[y1:y2, x1:x2], maxCorners=_POINTS, qualityLevel=0.01,
                                                  minDistance=max(3.0, min(x2 - x1, y2 - y1) / 12), blockSize=5)
            points = np.zeros((0, 1, 2), np.float32) if corners is None else corners + np.float32([x1, y1])
            # A carried face keeps the look it was detected with, so that it cannot drift onto something else.
            template = carried[i - first_carried].template if i >= first_carried else _template(small, box)
            self._faces.append(_Face(box.astype(np.float32), eyes.astype(np.float32), float(score), points,
                                     len(points), template, carried=i >= first_carried))
        return found

    def _follow(self, gray: np.ndarray) -> Detections | None:
        """Every face moved from the previous (shrunk) frame to ``gray``; None when any cannot be followed."""
        if not self._faces:
            self._gray = gray
            return Detections.none()
        if any(len(face.points) < self.min_points for face in self._faces):
            return None
        height, width = gray.shape
        # The flow only needs the faces' surroundings: cropping both frames there spares most of the pyramids.
        boxes = np.stack([face.box for face in self._faces])
        margin = max(16.0, 0.4 * float((boxes[:, 2:] - boxes[:, :2]).max()))
        x0, y0 = np.maximum(np.floor(boxes[:, :2].min(axis=0) - margin), 0).astype(int)
        x1, y1 = np.minimum(np.ceil(boxes[:, 2:].max(axis=0) + margin), [width, height]).astype(int)
        before_roi, after_roi = self._gray[y0:y1, x0:x1], gray[y0:y1, x0:x1]
        origin = np.float32([x0, y0])
        starts = np.concatenate([face.points for face in self._faces]) - origin
        ends, ok, _ = cv2.calcOpticalFlowPyrLK(before_roi, after_roi, starts, None, **_LK)
        back, ok_back, _ = cv2.calcOpticalFlowPyrLK(after_roi, before_roi, ends, None, **_LK)
        round_trip = np.linalg.norm((back - starts).reshape(-1, 2), axis=1)
        good = (ok.ravel() == 1) & (ok_back.ravel() == 1)
        starts, ends = starts + origin, ends + origin
        moved, offset = [], 0
        for face in self._faces:
            rows = slice(offset, offset + len(face.points))
            offset += len(face.points)
            side = float(max(face.box[2] - face.box[0], face.box[3] - face.box[1]))
            # A point that does not come back to where it started (within 2% of the face) followed something else.
            keep = good[rows] & (round_trip[rows] <= max(1.0, 0.02 * side))
            if keep.sum() < max(self.min_points, face.seeded // 3):
                return None
            before, after = starts[rows][keep], ends[rows][keep]
            transform, _ = cv2.estimateAffinePartial2D(before, after, method=cv2.LMEDS)
            if transform is None:
                return None
            scale = float(np.hypot(transform[0, 0], transform[1, 0]))
            if not 0.8 <= scale <= 1.25:
                return None
            centre = (face.box[:2] + face.box[2:]) / 2
            half = (face.box[2:] - face.box[:2]) / 2 * scale
            new_centre = transform[:, :2] @ centre + transform[:, 2]
            box = np.concatenate([new_centre - half, new_centre + half]).astype(np.float32)
            if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
                return None  # part of the face is outside: the detector knows the clipped box best
            if _similarity(face.template, _template(gray, box)) < self.min_similarity:
                return None
            eyes = face.eyes @ transform[:, :2].T + transform[:, 2]
            moved.append(replace(face, box=box, eyes=eyes.astype(np.float32), points=after.reshape(-1, 1, 2)))
        self._faces, self._gray = moved, gray
        return Detections(
            np.stack([f.box for f in moved]) * self._shrink,
            np.float32([f.score for f in moved]),
            np.stack([f.eyes for f in moved]) * self._shrink,
        )


def _shrink(gray: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return gray
    return cv2.resize(gray, (gray.shape[1] // factor, gray.shape[0] // factor), interpolation=cv2.INTER_AREA)


def _template(gray: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The face's grey pixels shrunk to a small square, zero mean and unit norm, for a correlation."""
    height, width = gray.shape
    x1, y1, x2, y2 = np.clip(np.round(box).astype(int), 0, [width, height, width, height])
    if x2 - x1 < 2 or y2 - y1 < 2:
        return np.zeros((_TEMPLATE, _TEMPLATE), np.float32)
    patch = cv2.resize(gray[y1:y2, x1:x2], (_TEMPLATE, _TEMPLATE), interpolation=cv2.INTER_AREA).astype(np.float32)
    patch -= patch.mean()
    norm = float(np.linalg.norm(patch))
    return patch / norm if norm > 0 else patch


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum())


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
