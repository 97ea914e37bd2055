"""The emotion classifier: an exported ONNX model run by ONNX Runtime (no torch).

The one place that opens classifier sessions; the engine and ``emorec evaluate`` both use it.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from emorec.labels import EMOTIONS, NUM_CLASSES
from emorec.runtime import open_session

SHIPPED_MODEL = "emonet.onnx"
FACE_SIZE = 48


def shipped_model_path() -> Path:
    """Path of the model that ships inside the package (trained by this project on FER2013)."""
    return Path(str(resources.files("emorec") / "assets" / SHIPPED_MODEL))


def _decode_metadata(session: ort.InferenceSession) -> dict:
    props = session.get_modelmeta().custom_metadata_map
    return {k.removeprefix("emorec."): json.loads(v) for k, v in props.items() if k.startswith("emorec.")}


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``emorec.*`` metadata (spec, classes, model card) of an exported model."""
    return _decode_metadata(open_session(path, threads=1))


class EmotionClassifier:
    """uint8 grayscale faces (N, 48, 48) -> probabilities (N, 7) in FER2013 order, in one ORT call."""

    def __init__(self, model_path: str | os.PathLike | None = None, threads: int = 2):
        path = Path(model_path) if model_path is not None else shipped_model_path()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX model file")
        self.session = open_session(path, threads)
        self.path = path
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = _decode_metadata(self.session)
        classes = self.metadata.get("classes", list(EMOTIONS))
        if list(classes) != list(EMOTIONS):
            raise ValueError(f"{path}: model classes {classes} differ from FER2013's {list(EMOTIONS)}")

    def predict(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.ndim != 3 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE):
            raise ValueError(f"faces must have shape (N, {FACE_SIZE}, {FACE_SIZE}), got {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, NUM_CLASSES), dtype=np.float32)
        batch = faces.astype(np.float32)[:, None]
        return self.session.run(None, {self.input_name: batch})[0]
