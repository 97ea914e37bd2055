"""Qt-free core of the desktop app: what a shown frame carries, which face the side panel follows, the rolling
emotion timeline, the frame-rate meter and the session's faces for the summary export. The frame loop itself is
the engine's (``EmotionRecognizer.stream``).

Nothing here imports Qt, so the logic is testable and reusable without a display; widgets only draw it.
"""

from __future__ import annotations

import glob
import io
import json
import os
import sys
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emorec.errors import RecordingError
from emorec.outputs import refuse_overwriting
from emorec.recording import Timeline, write_text
from emorec.types import Face, FrameResult, face_sizes, largest_face

EXPORT_SUFFIXES = {".json": "the summary of each face", ".csv": "every face of every frame"}


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


class SessionLog:
    """Every face of every frame analysed since a source was started, for the summary export: the
    :class:`~emorec.recording.Timeline` that ``emorec video`` fills, so the export is its ``--json`` summary
    (per tracked face: frames, first and last time, dominant emotion, mean probabilities) or its ``--csv``
    rows. Filled by the engine thread and exported from the GUI thread, hence the lock. It grows with the
    session (a CSV row per face and frame), as a recording's CSV does on disk.
    """

    def __init__(self, source: str, fps: float | None):
        self._rows = io.StringIO()
        self._timeline = Timeline(fps=fps, source=source, csv_file=self._rows)
        self._lock = threading.Lock()

    def add(self, result: FrameResult) -> None:
        """One analysed frame; a photo, which has no time, counts as at 0 s."""
        with self._lock:
            self._timeline.add(result, result.time_s if result.time_s is not None else 0.0)

    @property
    def frames(self) -> int:
        return self._timeline.frames

    def summary(self) -> dict:
        """:meth:`emorec.summary.RecordingSummary.to_dict` of the session so far."""
        with self._lock:
            return self._timeline.summary.to_dict()

    def export(self, path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
        """Write the summary JSON (a ``.json`` path) or the timeline CSV (``.csv``), whole or not at all.
        :class:`RecordingError` for another suffix, a path that is one of ``inputs`` (the video analysed),
        or a file that cannot be written."""
        path = Path(path)
        if path.suffix.lower() not in EXPORT_SUFFIXES:
            choices = "; ".join(f"{suffix} for {what}" for suffix, what in EXPORT_SUFFIXES.items())
            raise RecordingError(f"{path}: export as {choices}")
        refuse_overwriting(inputs, [path], "the export")
        with self._lock:
            if path.suffix.lower() == ".json":
                text = json.dumps(self._timeline.summary.to_dict(), indent=1)
            else:
                text = self._rows.getvalue()
        return write_text(path, text)


def camera_indices(limit: int = 10) -> list[int]:
    """Camera indices worth offering. Linux lists its video devices; elsewhere probing would open each camera
    (slow, and it lights their LEDs), so the first few indices are offered and a wrong one gets a clear error."""
    if sys.platform.startswith("linux"):
        found = sorted(int(p.removeprefix("/dev/video")) for p in glob.glob("/dev/video[0-9]*"))
        return [i for i in found if i < limit] or [0]
    return list(range(4))


