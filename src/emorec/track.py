"""Keeping faces apart over time: matching boxes to tracks (overlap, then distance, where each track is
expected to be) and EMA smoothing of their probabilities.

Labels then do not flicker from frame to frame, and each face keeps one ``track_id`` while it stays in view
and through short spells out of sight (behind someone, or missed by the detector between detections).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

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


# Frames a lost face's box is moved on at its last speed before it is assumed to stay put.
_COAST = 8
# How much a face's size may change from one frame to the next (log of the ratio); the last box of a face
# that went behind someone is only its part still in sight.
_SIZES = float(np.log(1.5))


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # (4,) last matched box
    probs: np.ndarray  # (7,) smoothed probabilities
    missed: int = 0  # frames since the face was last seen
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # centre shift per frame

    def predicted(self) -> np.ndarray:
        """Where the face is expected now: its last box moved on at its recent speed, for a few frames at
        most, since people who move out of sight seldom keep going straight."""
        return self.box + np.tile(self.velocity * min(self.missed + 1, _COAST), 2)


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


class FaceTracker:
    """Greedy tracker with an exponential moving average of each track's probabilities.

    A face is matched to the track whose predicted box (the last one moved on at the track's speed) it
    overlaps most, at IoU >= ``iou_threshold``; a face left over then goes to the nearest track left over
    whose predicted centre is within ``reach`` face sizes of it, if the two are of similar size; both bounds widen
    while the track is lost (a face that moved fast, or came back from behind someone, overlaps its old box
    little or not at all, and may have come nearer or gone farther meanwhile). A track survives
    ``max_missed`` frames without a matching face, so a face lost for a while keeps its id and its history.
    ``alpha`` is the weight of the newest frame (1.0 = no smoothing). One tracker per video stream;
    ``update`` is guarded by a lock so a stream may be fed from any thread.
    """

    def __init__(self, alpha: float = 0.3, iou_threshold: float = 0.3, max_missed: int = 45, reach: float = 0.75):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.reach = reach
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
                    shift = (_centres(boxes[face : face + 1]) - _centres(track.box[None]))[0] / (track.missed + 1)
                    # A lost face's speed is only known roughly: the new one counts less.
                    weight = 0.5 / (track.missed + 1)
                    track.velocity = weight * shift + (1.0 - weight) * track.velocity
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
        """Greedy matching, best IoU first, then nearest first: enough for the few faces of a frame."""
        assignment: list[Track | None] = [None] * len(boxes)
        if not self._tracks or not len(boxes):
            return assignment
        predicted = np.stack([t.predicted() for t in self._tracks])
        taken: set[int] = set()
        iou = iou_matrix(predicted, boxes)
        for flat in np.argsort(-iou, axis=None):
            t, f = divmod(int(flat), iou.shape[1])
            if iou[t, f] < self.iou_threshold:
                break
            if assignment[f] is None and t not in taken:
                assignment[f] = self._tracks[t]
                taken.add(t)
        # Distance in face sizes (of the two, on average), so that the same reach suits near and far faces; the
        # size mismatch adds to it, so that of two lost faces the one of the right size is taken.
        # At least a pixel: an empty box must not divide by zero.
        sides = np.sqrt(np.maximum(np.prod(predicted[:, 2:] - predicted[:, :2], axis=1), 1.0))[:, None]
        face_sides = np.sqrt(np.maximum(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1), 1.0))[None]
        distance = np.linalg.norm(_centres(predicted)[:, None] - _centres(boxes)[None], axis=2)
        distance /= np.sqrt(sides * face_sides)
        mismatch = np.abs(np.log(face_sides / sides))
        widen = np.minimum(1.0 + np.float32([t.missed for t in self._tracks]) / 4, 4.0)[:, None]
        cost = np.where((distance > self.reach * widen) | (mismatch > _SIZES * np.sqrt(widen)), np.inf,
                        distance + mismatch)
        for flat in np.argsort(cost, axis=None):
            t, f = divmod(int(flat), cost.shape[1])
            if not np.isfinite(cost[t, f]):
                break
            if assignment[f] is None and t not in taken:
                assignment[f] = self._tracks[t]
                taken.add(t)
        return assignment
