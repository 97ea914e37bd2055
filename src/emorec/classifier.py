"""The emotion classifier: an exported ONNX model run by ONNX Runtime (no torch).

The one place that opens classifier sessions; the engine and ``emorec evaluate`` both use it.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import numpy as np

from emorec.errors import ModelFileError, UnknownModelError
from emorec.labels import EMOTIONS, FACE_SIZE, NUM_CLASSES
from emorec.runtime import open_session

# The model family that ships in emorec/assets as NAME.onnx (with its int8 twin NAME_int8.onnx), each
# trained by this project on FER2013; docs/models.md gives their speed and accuracy. The default is
# the fast one: it meets the speed targets on CPUs without AVX-512, where emonet_wide does not, and read the
# real-photo development sets at least as well, for fewer points on FER2013's PublicTest.
SHIPPED_MODELS = ("emonet_fast", "emonet_wide")
DEFAULT_SHIPPED_MODEL = "emonet_fast"


def shipped_model_path(name: str = DEFAULT_SHIPPED_MODEL) -> Path:
    """Path of a float model that ships inside the package; UnknownModelError for another name."""
    if name not in SHIPPED_MODELS:
        raise UnknownModelError(f"no shipped model is called {name!r}; shipped models: {', '.join(SHIPPED_MODELS)}")
    return Path(str(resources.files("emorec") / "assets" / f"{name}.onnx"))


def model_file(model: str | os.PathLike | None = None) -> Path:
    """The float ONNX file for ``model``: a shipped model's name, a path to an exported model, or None for
    the default shipped model."""
    if model is None:
        return shipped_model_path()
    if isinstance(model, str) and model in SHIPPED_MODELS:
        return shipped_model_path(model)
    path = Path(model)
    if path.is_file():
        return path
    if isinstance(model, str) and not path.suffix and len(path.parts) == 1:  # a name, not a path: a misspelling?
        close = difflib.get_close_matches(model, SHIPPED_MODELS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UnknownModelError(f"unknown model {model!r}: {hint}shipped models: {', '.join(SHIPPED_MODELS)} "
                                "(or give the path of an ONNX file)")
    raise ModelFileError(f"{path}: no such ONNX model file (shipped models, by name: {', '.join(SHIPPED_MODELS)})")


def decode_metadata(props: Mapping[str, str]) -> dict:
    """An exported model's ``emorec.*`` metadata properties, decoded from JSON and named without the prefix."""
    return {k.removeprefix("emorec."): json.loads(v) for k, v in props.items() if k.startswith("emorec.")}


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``emorec.*`` metadata (spec, classes, model card) of an exported model."""
    return decode_metadata(open_session(path, threads=1).get_modelmeta().custom_metadata_map)


# The most faces one ONNX Runtime call reads: its activations grow with the batch, and a whole split of FER2013
# at once can exhaust the memory with a larger model. A frame's faces always fit in one call.
MAX_BATCH = 256


class EmotionClassifier:
    """uint8 grayscale faces (N, 48, 48) -> probabilities (N, 7) in FER2013 order, MAX_BATCH faces an ORT call."""

    def __init__(self, model: str | os.PathLike | None = None, threads: int = 2):
        path = model_file(model)
        self.session = open_session(path, threads)
        self.path = path
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = decode_metadata(self.session.get_modelmeta().custom_metadata_map)
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
        return np.concatenate([
            self.session.run(None, {self.input_name: faces[at : at + MAX_BATCH].astype(np.float32)[:, None]})[0]
            for at in range(0, len(faces), MAX_BATCH)
        ])
