"""Personal calibration: a person's own neutral face as the baseline their expressions are read against.

A resting face is not the same on every person, and a generic model may read one person's rest as sad or
angry all session long. A :class:`Baseline` holds the mean log-probabilities the classifier gives that
person's neutral face; :func:`apply_baseline` then scores a face as

    softmax(log p(x) - strength * (baseline - reference))

where ``reference`` is 0 for every class but neutral, which gets ``neutral_margin``. The person's own
neutral face (x = the baseline) thus reads neutral, ahead of every other class by ``strength *
neutral_margin`` in log-odds, and an expression reads as what changed from that face. Without the
reference (the form first tried) the person's neutral face keeps whatever the model misread it as and
the correction barely helped; benchmarks/calibration.py chose the form and both numbers (docs/calibration.md,
"How"). Scores stay probabilities; ``strength`` 0 leaves them as they were.

:class:`AutoCalibrator` learns a baseline per track online: the per-class median of a track's recent
log-probabilities, so an expression that lasts less than half the window does not move it.

A baseline belongs to one classifier file (keyed by its sha256): probabilities of another model mean
something else, so the engine refuses a baseline made with another one.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emorec.errors import EmorecError, InputError
from emorec.labels import EMOTIONS, NUM_CLASSES
from emorec.outputs import write_atomic
from emorec.types import Face, largest_face

if TYPE_CHECKING:  # the engine imports this module
    from emorec.engine import EmotionRecognizer

__all__ = [
    "AutoCalibrator",
    "Baseline",
    "BaselineError",
    "DEFAULT_NEUTRAL_MARGIN",
    "DEFAULT_STRENGTH",
    "LiveCalibration",
    "NeutralCapture",
    "apply_baseline",
    "load_baseline",
]

FORMAT = "emorec-baseline"
VERSION = 1
# Chosen on lfw_expressions (benchmarks/calibration.py): the grid point with the best macro recall, and
# the one that 5-fold cross-validation by person picked in most folds.
DEFAULT_STRENGTH = 1.0
DEFAULT_NEUTRAL_MARGIN = 1.0
# Probabilities are floored before the log so that a class the model rules out (p ~ 1e-9) cannot dominate
# the baseline's mean.
_FLOOR = 1e-4
_NEUTRAL = EMOTIONS.index("neutral")
# Far beyond what helps (benchmarks/calibration.py tries strengths up to 1.25, margins up to 3), and small
# enough that the corrected log-probabilities stay finite: 1e308 made every score NaN.
MAX_STRENGTH = 10.0
MAX_NEUTRAL_MARGIN = 10.0
# A baseline file is about 500 bytes; the cap keeps a hostile one from costing memory or parsing time.
MAX_BASELINE_BYTES = 64 * 1024
_MAX_INT_DIGITS = 18  # "samples" is the only whole number; Python refuses to parse ints past 4300 digits


class BaselineError(EmorecError, ValueError):
    """A baseline that cannot be used: unreadable file, wrong classes or model, values that are not numbers."""


@dataclass(frozen=True)
class Baseline:
    """One person's neutral face as the classifier reads it, and how strongly to correct for it.

    ``log_probs`` (7,) are the mean log-probabilities of their neutral faces in FER2013 order; ``model``
    the sha256 of the classifier file that produced them; ``samples`` how many faces went into them;
    ``notes`` what calibration had to say (images skipped, several faces, few samples).
    """

    log_probs: np.ndarray
    model: str
    samples: int = 1
    strength: float = DEFAULT_STRENGTH
    neutral_margin: float = DEFAULT_NEUTRAL_MARGIN
    model_name: str = ""
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        log_probs = np.asarray(self.log_probs, dtype=np.float64)
        if log_probs.shape != (NUM_CLASSES,):
            raise BaselineError(f"baseline log_probs must have shape ({NUM_CLASSES},), got {log_probs.shape}")
        # Means (or medians) of logs of probabilities floored at _FLOOR, so between log(_FLOOR) and 0.
        if not (np.isfinite(log_probs) & (log_probs >= math.log(_FLOOR) - 1e-6) & (log_probs <= 1e-6)).all():
            raise BaselineError(f"baseline log_probs are logs of probabilities, between {math.log(_FLOOR):.2f} "
                                f"and 0; got {log_probs.tolist()}")
        for name, most in (("strength", MAX_STRENGTH), ("neutral_margin", MAX_NEUTRAL_MARGIN)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= most:
                raise BaselineError(f"baseline {name} must be a number from 0 to {most:g}, got {value!r}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise BaselineError(f"baseline samples must be a whole number >= 1, got {self.samples!r}")
        if not isinstance(self.model, str) or not self.model:
            raise BaselineError("baseline has no model identity (the classifier file's sha256)")
        object.__setattr__(self, "log_probs", log_probs)
        object.__setattr__(self, "strength", float(self.strength))
        object.__setattr__(self, "neutral_margin", float(self.neutral_margin))
        object.__setattr__(self, "notes", tuple(str(note) for note in self.notes))

    @classmethod
    def from_scores(cls, probs: np.ndarray, model: str, model_name: str = "", **options) -> Baseline:
        """The baseline of neutral faces whose probabilities (N, 7) the classifier ``model`` gave."""
        probs = np.asarray(probs, dtype=np.float64).reshape(-1, NUM_CLASSES)
        if len(probs) == 0:
            raise BaselineError("no faces to calibrate with")
        log_probs = np.log(np.clip(probs, _FLOOR, 1.0)).mean(axis=0)
        return cls(log_probs, model, samples=len(probs), model_name=model_name, **options)

    @property
    def neutral_scores(self) -> np.ndarray:
        """What the uncalibrated model made of this person's neutral face, as probabilities (7,)."""
        return _softmax(self.log_probs)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "classes": list(EMOTIONS),
            "model": {"sha256": self.model, "name": self.model_name},
            "log_probs": {name: float(v) for name, v in zip(EMOTIONS, self.log_probs, strict=True)},
            "samples": self.samples,
            "strength": self.strength,
            "neutral_margin": self.neutral_margin,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: object, source: str = "baseline") -> Baseline:
        """Parse :meth:`to_dict`'s form; :class:`BaselineError` names ``source`` and what is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BaselineError(f"{source}: not an emorec baseline (no \"format\": \"{FORMAT}\")")
        if data.get("version") != VERSION:
            raise BaselineError(f"{source}: baseline version {data.get('version')!r}; this emorec reads {VERSION}")
        if data.get("classes") != list(EMOTIONS):
            raise BaselineError(f"{source}: classes {data.get('classes')!r} differ from emorec's {list(EMOTIONS)}")
        model, log_probs = data.get("model"), data.get("log_probs")
        if not isinstance(model, dict) or not isinstance(model.get("sha256"), str):
            raise BaselineError(f"{source}: no model sha256 (which classifier the baseline belongs to)")
        if not isinstance(log_probs, dict) or sorted(log_probs) != sorted(EMOTIONS):
            raise BaselineError(f"{source}: log_probs must give a number for each of {', '.join(EMOTIONS)}")
        notes = data.get("notes", [])
        if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
            raise BaselineError(f"{source}: notes must be a list of strings")
        values = [log_probs[name] for name in EMOTIONS]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise BaselineError(f"{source}: log_probs must be numbers, got {values}")
        try:
            return cls(
                np.array(values, dtype=np.float64),
                model["sha256"],
                samples=data.get("samples", 1),
                strength=data.get("strength", DEFAULT_STRENGTH),
                neutral_margin=data.get("neutral_margin", DEFAULT_NEUTRAL_MARGIN),
                model_name=str(model.get("name", "")),
                notes=tuple(notes),
            )
        except BaselineError as exc:
            raise BaselineError(f"{source}: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "baseline") -> Baseline:
        """Parse :meth:`to_json`'s text, of whatever origin (a file, a form field): anything else, however
        large, deep or odd, is a :class:`BaselineError` that names ``source``."""
        if len(text) > MAX_BASELINE_BYTES:
            raise BaselineError(f"{source}: {len(text)} bytes; a baseline is at most {MAX_BASELINE_BYTES} bytes")

        # Python's json accepts NaN and Infinity by default; a baseline must not contain them.
        def refuse(constant: str) -> None:
            raise BaselineError(f"{source}: {constant} is not a number a baseline may hold")

        def whole_number(digits: str) -> int:
            count = len(digits.lstrip("-"))
            if count > _MAX_INT_DIGITS:
                raise BaselineError(f"{source}: a {count}-digit number is not one a baseline may hold")
            return int(digits)

        try:
            data = json.loads(text, parse_constant=refuse, parse_int=whole_number)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BaselineError(f"{source}: not JSON ({exc})") from None
        except RecursionError:
            raise BaselineError(f"{source}: not a baseline (nested too deep)") from None
        return cls.from_dict(data, source)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        write_atomic(path, lambda partial: partial.write_text(self.to_json() + "\n", encoding="utf-8"))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Baseline:
        return load_baseline(path)


def load_baseline(path: str | os.PathLike) -> Baseline:
    """Read a baseline JSON file; :class:`BaselineError` names the file and what is wrong with it."""
    from emorec.sources import open_file  # sources imports OpenCV and Pillow: only when a file is read

    try:
        with open_file(path) as file:
            text = file.read(MAX_BASELINE_BYTES + 1)  # from_json refuses more
    except InputError as exc:
        raise BaselineError(f"baseline {exc}") from None
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read ({exc.strerror})") from None
    return Baseline.from_json(text, source=str(path))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def apply_baseline(probs: np.ndarray, baseline: Baseline) -> np.ndarray:
    """Calibrated probabilities (N, 7) (each row sums to 1) of uncalibrated ones (N, 7) or (7,)."""
    probs = np.asarray(probs, dtype=np.float32)
    if baseline.strength == 0.0:
        return probs.copy()
    reference = np.zeros(NUM_CLASSES)
    reference[_NEUTRAL] = baseline.neutral_margin
    logits = np.log(np.clip(probs.astype(np.float64), _FLOOR, 1.0)) - baseline.strength * (
        baseline.log_probs - reference
    )
    return _softmax(logits).astype(np.float32)


@dataclass
class _TrackHistory:
    first_s: float
    last_seen_s: float
    last_sample_s: float
    samples: deque = field(default_factory=deque)  # (time_s, log_probs (7,)) of the last window_s


class AutoCalibrator:
    """Learns each track's baseline from its own frames, for people who never press "Calibrate".

    A track's baseline is the per-class median of its log-probabilities over the last ``window_s`` seconds
    (one sample every ``sample_every_s``), given once the face has been in view for ``warmup_s``. The
    median assumes the person is mostly at rest, which is true of most video and untrue of a photo album.
    ``update`` is guarded by a lock, like the tracker it follows.
    """

    def __init__(
        self,
        model: str,
        model_name: str = "",
        warmup_s: float = 3.0,
        window_s: float = 30.0,
        sample_every_s: float = 0.25,
        strength: float = DEFAULT_STRENGTH,
        neutral_margin: float = DEFAULT_NEUTRAL_MARGIN,
    ):
        if not 0 < sample_every_s <= warmup_s <= window_s:
            raise ValueError(
                f"need 0 < sample_every_s <= warmup_s <= window_s, got {sample_every_s}, {warmup_s}, {window_s}"
            )
        self.model, self.model_name = model, model_name
        self.warmup_s, self.window_s, self.sample_every_s = warmup_s, window_s, sample_every_s
        self.strength, self.neutral_margin = strength, neutral_margin
        self._tracks: dict[int, _TrackHistory] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._tracks = {}

    def update(self, track_ids: list[int], probs: np.ndarray, time_s: float) -> list[Baseline | None]:
        """Add this frame's probabilities (N, 7) of tracks ``track_ids``; each track's baseline, or None
        while it is still warming up."""
        probs = np.asarray(probs, dtype=np.float64).reshape(-1, NUM_CLASSES)
        baselines: list[Baseline | None] = []
        with self._lock:
            for track_id, row in zip(track_ids, probs, strict=True):
                history = self._tracks.setdefault(
                    track_id, _TrackHistory(time_s, time_s, time_s - self.sample_every_s)
                )
                history.last_seen_s = time_s
                if time_s - history.last_sample_s >= self.sample_every_s:
                    history.samples.append((time_s, np.log(np.clip(row, _FLOOR, 1.0))))
                    history.last_sample_s = time_s
                while history.samples and history.samples[0][0] < time_s - self.window_s:
                    history.samples.popleft()
                baselines.append(self._baseline(history, time_s))
            # A track unseen for a whole window has left: forget it so memory stays bounded.
            self._tracks = {k: h for k, h in self._tracks.items() if time_s - h.last_seen_s <= self.window_s}
        return baselines

    def _baseline(self, history: _TrackHistory, time_s: float) -> Baseline | None:
        if time_s - history.first_s < self.warmup_s or not history.samples:
            return None
        log_probs = np.median(np.stack([sample for _, sample in history.samples]), axis=0)
        return Baseline(log_probs, self.model, samples=len(history.samples), strength=self.strength,
                        neutral_margin=self.neutral_margin, model_name=self.model_name)


class NeutralCapture:
    """The "Calibrate" button's few seconds: collects the model's own probabilities of one person's face (the
    largest when the capture starts) while they look at the camera with a neutral face.

    ``add`` each processed frame's faces with the time; once ``duration_s`` have passed since the first
    frame, ``done`` is true and ``scores()`` gives what to build the baseline from
    (``EmotionRecognizer.baseline_from_scores``).
    """

    def __init__(self, duration_s: float = 3.0, min_faces: int = 3):
        if duration_s <= 0 or min_faces < 1:
            raise ValueError(f"need duration_s > 0 and min_faces >= 1, got {duration_s}, {min_faces}")
        self.duration_s, self.min_faces = duration_s, min_faces
        self._start: float | None = None
        self._elapsed = 0.0
        self._rows: list[np.ndarray] = []
        self.track_id: int | None = None  # the person calibrated, once seen

    def add(self, time_s: float, faces: list[Face]) -> None:
        """This frame's faces, uncalibrated. One person counts: the largest face of the first frame that shows
        one, followed by its track id where the stream tracks (``track_id``); without track ids, the largest."""
        if self._start is None:
            self._start = time_s
        self._elapsed = time_s - self._start
        if not faces:
            return
        if self._rows and self.track_id is not None:
            face = next((f for f in faces if f.track_id == self.track_id), None)
            if face is None:  # the person is out of view (or was lost): their frames only
                return
        else:
            face = largest_face(faces)
            self.track_id = face.track_id
        self._rows.append(face.raw_scores if face.raw_scores is not None else face.scores)

    @property
    def progress(self) -> float:
        """0 to 1: the share of ``duration_s`` done."""
        return min(1.0, max(0.0, self._elapsed / self.duration_s))

    @property
    def done(self) -> bool:
        return self._elapsed >= self.duration_s

    @property
    def faces(self) -> int:
        return len(self._rows)

    def scores(self) -> np.ndarray:
        """The probabilities (N, 7) collected; :class:`BaselineError` when too few frames showed a face."""
        if len(self._rows) < self.min_faces:
            raise BaselineError(
                f"saw a face in {len(self._rows)} frame(s) of {self.duration_s:g} s, need {self.min_faces}: "
                "look at the camera, with your face lit, and try again"
            )
        return np.stack(self._rows)


class LiveCalibration:
    """The "Calibrate" control of one stream (a web connection, the desktop app's source): every stream from
    ``rec.stream()`` has one, as ``stream.calibration``, and feeds it each frame it processes.

    ``start()`` begins a :class:`NeutralCapture` of the largest face; when it is done, that person's track gets
    the baseline, so their face comes out calibrated and everyone else's stays generic (a calibration belongs
    to a person). ``reset()`` goes back to the generic reading. ``state()`` is what a UI shows:
    ``{"state": "off" | "capturing" | "on", "track_id": ...}``. The baseline lives in the stream only;
    nothing is written anywhere.
    """

    def __init__(self, stream: EmotionRecognizer, duration_s: float = 3.0):
        self.stream = stream
        self.duration_s = duration_s
        self._capture: NeutralCapture | None = None
        self._error: str | None = None
        self._lock = threading.Lock()

    def start(self, duration_s: float | None = None) -> None:
        with self._lock:
            self._capture = NeutralCapture(duration_s or self.duration_s)
            self._error = None

    def reset(self) -> None:
        with self._lock:
            self._capture, self._error = None, None
        self.stream.baseline = None
        self.stream.person_baseline = None

    @property
    def capturing(self) -> bool:
        return self._capture is not None

    def observe(self, time_s: float, faces: list[Face]) -> Baseline | None:
        """Feed one processed frame's faces; the new baseline on the frame that completes the capture."""
        with self._lock:
            capture = self._capture
            if capture is None:
                return None
            capture.add(time_s, faces)
            if not capture.done:
                return None
            self._capture = None
            try:
                baseline = self.stream.baseline_from_scores(capture.scores())
            except BaselineError as exc:
                self._error = str(exc)
                return None
        self.stream.person_baseline = (capture.track_id, baseline)
        return baseline

    def state(self) -> dict:
        with self._lock:
            if self._capture is not None:
                return {"state": "capturing", "progress": round(self._capture.progress, 3),
                        "seconds": self._capture.duration_s}
            error = self._error
        person = self.stream.person_baseline
        if person is not None:
            state = {"state": "on", "samples": person[1].samples, "track_id": person[0]}
        elif self.stream.baseline is not None:
            state = {"state": "on", "samples": self.stream.baseline.samples, "track_id": None}
        else:
            state = {"state": "off"}
        return {**state, "error": error} if error else state
