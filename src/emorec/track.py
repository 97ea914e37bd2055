"""Keeping faces apart over time: IoU matching of boxes to tracks and EMA smoothing of their probabilities.

Labels then do not flicker from frame to frame, and each face keeps one ``track_id`` while it stays in view.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), x1y1x2y2."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(1, -1, 4)
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-6)


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # (4,) last matched box
    probs: np.ndarray  # (7,) smoothed probabilities
    missed: int = 0  # frames since the face was last seen


class FaceTracker:
    """Greedy IoU tracker with an exponential moving average of each track's probabilities.

    ``alpha`` is the weight of the newest frame (1.0 = no smoothing); a track survives ``max_missed``
    frames without a matching face, so a face lost for a blink keeps its id and its history.
    One tracker per video stream; ``update`` is guarded by a lock so a stream may be fed from any thread.
    """

    def __init__(self, alpha: float = 0.3, iou_threshold: float = 0.3, max_missed: int = 15):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self._tracks: list[Track] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget all tracks; ids start again from 1."""
        with self._lock:
            self._tracks = []
            self._ids = itertools.count(1)

    def update(self, boxes: np.ndarray, probs: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Match this frame's faces to tracks; returns each face's track id and its smoothed probabilities."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        probs = np.asarray(probs, dtype=np.float32)
        if len(probs) != len(boxes):
            raise ValueError(f"got {len(boxes)} boxes but {len(probs)} probability rows")
        with self._lock:
            assignment = self._match(boxes)
            ids, smoothed, seen = [], np.empty_like(probs), set()
            for face, track in enumerate(assignment):
                if track is None:
                    track = Track(next(self._ids), boxes[face], probs[face].copy())
                    self._tracks.append(track)
                else:
                    track.box = boxes[face]
                    track.probs = self.alpha * probs[face] + (1.0 - self.alpha) * track.probs
                    track.missed = 0
                ids.append(track.track_id)
                seen.add(track.track_id)
                smoothed[face] = track.probs
            for track in self._tracks:
                if track.track_id not in seen:
                    track.missed += 1
            self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return ids, smoothed

    def _match(self, boxes: np.ndarray) -> list[Track | None]:
        """Greedy matching, best IoU first: enough for the few faces of a frame and stable in practice."""
        assignment: list[Track | None] = [None] * len(boxes)
        if not self._tracks or not len(boxes):
            return assignment
        iou = iou_matrix(np.stack([t.box for t in self._tracks]), boxes)
        for flat in np.argsort(-iou, axis=None):
            t, f = divmod(int(flat), iou.shape[1])
            if iou[t, f] < self.iou_threshold:
                break
            if assignment[f] is None and all(a is not self._tracks[t] for a in assignment):
                assignment[f] = self._tracks[t]
        return assignment
