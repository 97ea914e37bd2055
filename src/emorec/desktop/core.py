"""Qt-free core of the desktop app: the paced frame loop the worker thread runs, which face the side panel
follows, the rolling emotion timeline and the frame-rate meter.

Nothing here imports Qt, so the logic is testable and reusable without a display; widgets only draw it.
"""

from __future__ import annotations

import glob
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from emorec.sources import Frame
from emorec.types import Face, FrameResult


@dataclass(frozen=True)
class ProcessedFrame:
    """One frame through the engine, ready to show: the annotated picture and what was found."""

    frame: Frame  # the source frame as read: pixels, index and time
    annotated: np.ndarray  # BGR, boxes and labels drawn
    result: FrameResult
    dropped_before: int  # source frames skipped since the previous shown one, because the engine fell behind


@dataclass
class LoopSummary:
    """Counts of one run over a source, so the app can tell "ended" from "ended without a single face"."""

    frames_read: int = 0
    frames_shown: int = 0
    frames_dropped: int = 0
    frames_with_faces: int = 0


class FrameLoop:
    """Runs a source's frames through the engine at the source's own pace.

    A file source (``fps`` given) is shown in real time: each frame appears ``frame.time_s`` seconds after the
    start, and a frame whose time slot (``1 / fps`` long) has already passed when it is read is dropped rather
    than queued, so a slow engine makes the view choppy, never late. Live sources (``fps`` None) already hand
    over only their newest frame, so every frame read is processed. ``pause``, ``resume`` and ``stop`` may be
    called from any thread.
    """

    def __init__(
        self,
        frames: Iterable[Frame],
        process: Callable[[Frame], FrameResult],
        annotate: Callable[[np.ndarray, list[Face]], np.ndarray],
        fps: float | None = None,
    ):
        self._frames = frames
        self._process = process
        self._annotate = annotate
        self._period = 1.0 / fps if fps and fps > 0 else 0.0
        self._stopped = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stopped.set()
        self._running.set()  # wake a paused loop so it can see the stop

    def run(self, on_frame: Callable[[ProcessedFrame], None]) -> LoopSummary:
        """Process frames until the source ends or ``stop`` is called; ``on_frame`` gets each shown frame."""
        summary = LoopSummary()
        start = time.monotonic()
        dropped = 0
        for frame in self._frames:
            if not self._running.is_set():
                paused_at = time.monotonic()
                self._running.wait()
                start += time.monotonic() - paused_at  # the video's clock stands still while paused
            if self._stopped.is_set():
                break
            summary.frames_read += 1
            due = start + frame.time_s
            if self._period and time.monotonic() > due + self._period:
                dropped += 1
                summary.frames_dropped += 1
                continue
            result = self._process(frame)
            annotated = self._annotate(frame.image, result.faces)
            early = due - time.monotonic() if self._period else 0.0
            if early > 0 and self._stopped.wait(early):
                break
            on_frame(ProcessedFrame(frame, annotated, result, dropped))
            summary.frames_shown += 1
            summary.frames_with_faces += bool(result.faces)
            dropped = 0
        return summary


def face_at(faces: list[Face], x: float, y: float) -> Face | None:
    """The face whose box contains the point; the smallest one where boxes overlap (the one clicked on top)."""
    hits = [f for f in faces if f.box[0] <= x <= f.box[2] and f.box[1] <= y <= f.box[3]]
    return min(hits, key=_area, default=None)


def largest_face(faces: list[Face]) -> Face | None:
    return max(faces, key=_area, default=None)


def _area(face: Face) -> int:
    x1, y1, x2, y2 = face.box
    return (x2 - x1) * (y2 - y1)


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


