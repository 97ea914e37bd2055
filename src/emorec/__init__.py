"""emorec: real-time facial emotion recognition.

    from emorec import EmotionRecognizer
    rec = EmotionRecognizer()
    result = rec.process("photo.jpg")

The public names are loaded on first use, so ``import emorec`` (and ``emorec --version``) stays fast:
the engine's OpenCV and ONNX Runtime load only when the engine is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from emorec.errors import (
    ConfigError,
    DatasetError,
    EmorecError,
    InputError,
    ModelFileError,
    RecordingError,
    RunExistsError,
    UnknownModelError,
)
from emorec.labels import EMOTIONS

_LAZY = {
    "Baseline": "emorec.calibration",
    "BaselineError": "emorec.calibration",
    "EmotionRecognizer": "emorec.engine",
    "EngineConfig": "emorec.config",
    "CropGeometry": "emorec.config",
    "Face": "emorec.types",
    "FrameResult": "emorec.types",
    "FrameStream": "emorec.stream",
    "annotate": "emorec.annotators",
}

__all__ = [
    "EMOTIONS",
    "Baseline",
    "BaselineError",
    "ConfigError",
    "CropGeometry",
    "DatasetError",
    "EmorecError",
    "EmotionRecognizer",
    "EngineConfig",
    "Face",
    "FrameResult",
    "FrameStream",
    "InputError",
    "ModelFileError",
    "RecordingError",
    "RunExistsError",
    "UnknownModelError",
    "__version__",
    "annotate",
]

if TYPE_CHECKING:
    from emorec.annotators import annotate
    from emorec.calibration import Baseline, BaselineError
    from emorec.config import CropGeometry, EngineConfig
    from emorec.engine import EmotionRecognizer
    from emorec.stream import FrameStream
    from emorec.types import Face, FrameResult


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # ~70 ms: only when asked

    try:
        return version("emorec")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        globals()[name] = _version()
        return globals()[name]
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'emorec' has no attribute {name!r}")
