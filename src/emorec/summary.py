"""One recording's summary: per tracked face, when it was seen, its mean probabilities and its dominant emotion.

The one home of these, so that a clip gets one answer wherever it is analysed: ``emorec video`` (its
printout, ``--json`` and plot), the desktop app's recordings, ``emorec batch``'s track rows and the web app's
video upload all collect their tracks with :class:`RecordingSummary`. Its JSON form (:meth:`to_dict`)::

    {"source": "clip.mp4", "frame_count": 240, "frames_with_faces": 236, "duration_s": 9.6, "fps": 25.0,
     "tracks": [{"track_id": 1, "frames": 236, "first_s": 0.0, "last_s": 9.56, "emotion": "happy",
                 "scores": {"angry": 0.01, ..., "neutral": 0.12}}]}

``tracks`` come longest-seen first; ``scores`` are the mean probabilities over the track's frames, in
FER2013 order, and ``emotion`` is the most probable of them. ``first_s`` and ``last_s`` are the earliest and
latest times a track was seen, whatever the order its frames came in (a desktop session that went back in a
video).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emorec.labels import EMOTIONS
from emorec.types import FrameResult


def dominant_emotion(scores: np.ndarray) -> str:
    """A track's emotion from its frames' probabilities (N, 7): the argmax of their mean.

    The mean, not the most frequent per-frame label: it weighs each frame by how sure the model was, a face
    that flickers between two close emotions gets the one it leans to over the whole track, and the answer
    always agrees with the mean probabilities shown beside it."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1, len(EMOTIONS))
    if not len(scores):
        raise ValueError("a track's dominant emotion needs at least one frame of probabilities")
    return EMOTIONS[int(np.argmax(scores.mean(axis=0)))]


@dataclass
class TrackSummary:
    """One tracked face over a recording: the time and probabilities of each frame it was seen in."""

    track_id: int
    times_s: list[float] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)  # (7,) per frame seen, EMOTIONS order

    @property
    def frames(self) -> int:
        return len(self.times_s)

    @property
    def mean_scores(self) -> dict[str, float]:
        means = np.mean(self.scores, axis=0)
        return {name: round(float(p), 4) for name, p in zip(EMOTIONS, means, strict=True)}

    @property
    def emotion(self) -> str:
        return dominant_emotion(np.stack(self.scores))

    def to_dict(self) -> dict:
        return {
            "track_id": self.track_id,
            "frames": self.frames,
            "first_s": round(min(self.times_s), 3),
            "last_s": round(max(self.times_s), 3),
            "emotion": self.emotion,
            "scores": self.mean_scores,
        }


class RecordingSummary:
    """Collects each face of each frame by track. ``source`` names what was recorded (a path, a file name,
    a camera); ``fps`` (None for photos and live sources without one) adds one frame's length to the duration.

    A face without a track id (a result that was not tracked) is told apart by its rank in the frame,
    largest first, as the engine orders faces.
    """

    def __init__(self, fps: float | None = None, source: str | None = None):
        self.fps = fps
        self.source = source
        self.frame_count = 0
        self.frames_with_faces = 0
        self._last_s = 0.0
        self._tracks: dict[int, TrackSummary] = {}

    def add(self, result: FrameResult, time_s: float) -> None:
        """One frame's faces, seen at ``time_s`` seconds from the start."""
        self.frame_count += 1
        self.frames_with_faces += bool(result.faces)
        self._last_s = max(self._last_s, time_s)
        for rank, face in enumerate(result.faces):
            track_id = face.track_id if face.track_id is not None else rank + 1
            track = self._tracks.setdefault(track_id, TrackSummary(track_id))
            track.times_s.append(time_s)
            track.scores.append(face.scores)

    @property
    def tracks(self) -> list[TrackSummary]:
        """Every track, the longest-seen first (ties: the first to appear)."""
        return sorted(self._tracks.values(), key=lambda t: (-t.frames, min(t.times_s), t.track_id))

    @property
    def duration_s(self) -> float:
        """From the start to the end of the latest frame."""
        if not self.frame_count:
            return 0.0
        return self._last_s + (1.0 / self.fps if self.fps else 0.0)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "frame_count": self.frame_count,
            "frames_with_faces": self.frames_with_faces,
            "duration_s": round(self.duration_s, 3),
            "fps": self.fps,
            "tracks": [track.to_dict() for track in self.tracks],
        }
