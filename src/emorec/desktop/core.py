"""Qt-free core of the desktop app: what a shown frame carries, which face the side panel follows, the rolling
emotion timeline and the frame-rate meter. The frame loop itself is the engine's (``EmotionRecognizer.stream``).

Nothing here imports Qt, so the logic is testable and reusable without a display; widgets only draw it.
"""

from __future__ import annotations

import glob
import sys
from collections import deque
from dataclasses import dataclass

import numpy as np

from emorec.types import Face, FrameResult, face_sizes, largest_face


@dataclass(frozen=True)
class ProcessedFrame:
    """One frame through the engine, ready to show: what was found (with the frame's pixels, index and time)
    and the annotated picture."""

    result: FrameResult
    annotated: np.ndarray  # BGR, boxes and labels drawn
    dropped_before: int  # source frames skipped since the previous shown one, because the engine fell behind


@dataclass
class LoopSummary:
    """Counts of one run over a source, so the app can tell "ended" from "ended without a single face"."""

    frames_read: int = 0
    frames_shown: int = 0
    frames_dropped: int = 0
    frames_with_faces: int = 0


def face_at(faces: list[Face], x: float, y: float) -> Face | None:
    """The face whose box contains the point; the smallest one where boxes overlap (the one clicked on top)."""
    hits = [f for f in faces if f.box[0] <= x <= f.box[2] and f.box[1] <= y <= f.box[3]]
    return min(hits, key=lambda face: face_sizes(face.box)[0], default=None)


class FaceSelection:
    """Which face the side panel follows: the one the user clicked, else the largest.

    A click is remembered by the engine's track id, so the choice survives the face moving; where faces carry
    no track id it is remembered by the clicked point.
    """

    def __init__(self) -> None:
        self._track_id: int | None = None
        self._point: tuple[float, float] | None = None

    def click(self, faces: list[Face], x: float, y: float) -> Face | None:
        """Select the face under the point, or go back to following the largest face when the click missed."""
        face = face_at(faces, x, y)
        self._track_id = face.track_id if face is not None else None
        self._point = (x, y) if face is not None and face.track_id is None else None
        return face

    def clear(self) -> None:
        self._track_id = None
        self._point = None

    def pick(self, faces: list[Face]) -> tuple[Face | None, bool]:
        """The face to follow in this frame, and whether it is the clicked one (False: the largest)."""
        if self._track_id is not None:
            chosen = next((f for f in faces if f.track_id == self._track_id), None)
        elif self._point is not None:
            chosen = face_at(faces, *self._point)
        else:
            chosen = None
        return (chosen, True) if chosen is not None else (largest_face(faces), False)


class EmotionTimeline:
    """The last ``span_s`` seconds of one face's probabilities, for the rolling plot; None marks "no face"."""

    def __init__(self, span_s: float = 10.0):
        self.span_s = span_s
        self._points: deque[tuple[float, np.ndarray | None]] = deque()

    def add(self, t: float, scores: np.ndarray | None) -> None:
        self._points.append((t, None if scores is None else np.asarray(scores, dtype=np.float32)))
        while self._points and self._points[0][0] < t - self.span_s:
            self._points.popleft()

    def clear(self) -> None:
        self._points.clear()

    def points(self) -> list[tuple[float, np.ndarray | None]]:
        return list(self._points)

    def __len__(self) -> int:
        return len(self._points)


class RateMeter:
    """Events per second over a sliding window (frames shown, for the status bar)."""

    def __init__(self, window_s: float = 2.0):
        self.window_s = window_s
        self._ticks: deque[float] = deque()

    def tick(self, t: float) -> None:
        self._ticks.append(t)
        while self._ticks[0] < t - self.window_s:
            self._ticks.popleft()

    def reset(self) -> None:
        self._ticks.clear()

    @property
    def rate(self) -> float:
        if len(self._ticks) < 2 or self._ticks[-1] <= self._ticks[0]:
            return 0.0
        return (len(self._ticks) - 1) / (self._ticks[-1] - self._ticks[0])


def camera_indices(limit: int = 10) -> list[int]:
    """Camera indices worth offering. Linux lists its video devices; elsewhere probing would open each camera
    (slow, and it lights their LEDs), so the first few indices are offered and a wrong one gets a clear error."""
    if sys.platform.startswith("linux"):
        found = sorted(int(p.removeprefix("/dev/video")) for p in glob.glob("/dev/video[0-9]*"))
        return [i for i in found if i < limit] or [0]
    return list(range(4))


