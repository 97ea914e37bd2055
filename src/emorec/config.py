"""The one configuration of the pipeline: which models run, how faces are found, cropped and followed.

:class:`EngineConfig` is what the engine is built from (``EmotionRecognizer(config)``), what the command
line's engine options fill in, what batch keys its results by, what the web server hands its workers and
what the desktop app runs. It is frozen, validated when made and printable, so two runs with equal configs
read faces alike. Nothing heavy is imported here: building the CLI parser reads its defaults.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field, fields, replace

from emorec.errors import ConfigError

# Streams run the detector on every N-th frame and follow faces by optical flow in between (emorec.follow).
# Chosen with benchmarks/stream_detection.py (real faces moved over photos): up to this interval face recall
# stayed at or above detecting every frame (a followed face outlives the detector's misses), and beyond it
# recall fell on one clip for little time saved. A face that enters waits up to N - 1 frames.
DEFAULT_DETECT_EVERY = 8


@dataclass(frozen=True)
class CropGeometry:
    """How a detector box becomes a FER2013-like crop: a square ``scale`` times the box's larger side,
    its centre moved down by ``shift_y`` box heights, turned so that the eyes are level (``level_eyes``,
    when the detector found them and they tilt by ``engine.MIN_ROLL_DEGREES`` or more).

    Chosen with benchmarks/crop_geometry.py (FER2013 PublicTest faces enlarged into photos: the scale that
    reads them as well as the faces classified directly) and checked on the real-photo development sets
    with benchmarks/real_photos.py; the figures are in docs/models.md (the model card's "In the pipeline")
    and docs/real_photos.md.
    """

    scale: float = 1.2
    shift_y: float = 0.0
    level_eyes: bool = True


@dataclass(frozen=True)
class EngineConfig:
    """Every setting of the pipeline, with the defaults that ship.

    Args:
        model: the classifier: a shipped model's name (``emorec.classifier.SHIPPED_MODELS``), an exported
            ONNX file, or None for the default shipped model.
        quantized: run the model's int8 twin (``NAME_int8.onnx`` beside it): None where it exists and was
            made from this very model file, True insists on it, False never.
        detector: a name from ``emorec.detect.DETECTORS``.
        yunet_model: the YuNet ONNX file for ``detector="yunet"``.
        min_face_size: faces smaller than this many pixels (either side) are dropped: mostly false
            positives, and too small to read an emotion from.
        min_detection_score: detector score threshold in [0, 1]; None for the detector's own default.
        max_faces: keep only the N largest faces; None keeps all.
        crop: how detector boxes become FER2013-like crops.
        threads: ONNX Runtime intra-op threads per model.
        detect_every: in streams, run the detector on every N-th frame and follow faces in between.
        smoothing: in streams, average each face's probabilities over its track's frames.
        smoothing_alpha: the weight of the newest frame in that average, in (0, 1].
    """

    model: str | None = None
    quantized: bool | None = None
    detector: str = "auto"
    yunet_model: str | None = None
    min_face_size: int = 24
    min_detection_score: float | None = None
    max_faces: int | None = None
    crop: CropGeometry = field(default_factory=CropGeometry)
    threads: int = 1
    detect_every: int = DEFAULT_DETECT_EVERY
    smoothing: bool = True
    smoothing_alpha: float = 0.3

    def __post_init__(self) -> None:
        # Paths are kept as text, so that configs compare, hash and print alike however they were given.
        for name in ("model", "yunet_model"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                if not isinstance(value, os.PathLike):
                    raise ConfigError(f"{name} must be a name or a path, got {type(value).__name__}")
                object.__setattr__(self, name, os.fspath(value))
        whole_number(self.min_face_size, "min_face_size", 0)
        whole_number(self.threads, "threads", 1)
        whole_number(self.detect_every, "detect_every", 1)
        if self.max_faces is not None:
            whole_number(self.max_faces, "max_faces", 1)
        if self.min_detection_score is not None:
            _fraction(self.min_detection_score, "min_detection_score", closed=True)
        _fraction(self.smoothing_alpha, "smoothing_alpha", closed=False)
        if not isinstance(self.crop, CropGeometry):
            raise ConfigError(f"crop must be a CropGeometry, got {type(self.crop).__name__}")
        if not (math.isfinite(self.crop.scale) and 0.5 <= self.crop.scale <= 3):
            raise ConfigError(f"crop.scale must be between 0.5 and 3, got {self.crop.scale}")

    def replace(self, **changes) -> EngineConfig:
        """A copy with ``changes`` (setting names as keywords); a misspelt name gets a one-line ConfigError."""
        known = [f.name for f in fields(self)]
        for name in changes:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown engine setting {name!r}{hint} (settings: {', '.join(known)})")
        return replace(self, **changes)

    def describe(self) -> str:
        """One line naming every setting that differs from the shipped defaults ('defaults' if none)."""
        default = EngineConfig()
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                   if getattr(self, f.name) != getattr(default, f.name)]
        return ", ".join(changed) or "defaults"


def whole_number(value: object, name: str, lowest: int) -> int:
    """``value`` as an int >= ``lowest`` (NumPy integers too); a ConfigError naming the setting otherwise."""
    if isinstance(value, bool) or not hasattr(value, "__index__") or value.__index__() < lowest:
        raise ConfigError(f"{name} must be a whole number >= {lowest}, got {value!r}")
    return value.__index__()


def _fraction(value: object, name: str, closed: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not ((0 <= value <= 1) if closed else (0 < value <= 1)):
        interval = "[0, 1]" if closed else "(0, 1]"
        raise ConfigError(f"{name} must be a number in {interval}, got {value!r}")
