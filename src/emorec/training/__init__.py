"""Training and export: the only part of emorec that imports PyTorch (``pip install emorec[train]``).

    data.py        FER2013 CSV / image-folder loading and FER+ votes (numpy only, no torch)
    models/        the architectures' registry: shallow, deep, emonet (torch)
    checkpoint.py  checkpoints written atomically and read back as data only (torch)
    augment.py     training augmentation, each kind named so that a run can leave it out (torch)
    train.py       the training loop (torch)
    export.py      ONNX export with preprocessing in the graph, int8 twins, model card metadata (torch, onnx)

The runtime (engine, CLI, web, desktop, batch, evaluation of ONNX models) never imports this package at module
level. Its names load on first use, so ``from emorec.training.data import load_fer2013`` needs no torch. (The
training loop itself is ``emorec.training.train.train``: the package does not re-export it, whose name is the
submodule's.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {
    "Fer2013": "emorec.training.data",
    "load_fer2013": "emorec.training.data",
    "read_checkpoint": "emorec.training.checkpoint",
    "load_checkpoint": "emorec.training.checkpoint",
    "save_atomic": "emorec.training.checkpoint",
    "TrainConfig": "emorec.training.train",
    "predict_proba": "emorec.training.checkpoint",
    "export_onnx": "emorec.training.export",
}

__all__ = [
    "Fer2013",
    "TrainConfig",
    "export_onnx",
    "load_checkpoint",
    "load_fer2013",
    "predict_proba",
    "read_checkpoint",
    "save_atomic",
]

if TYPE_CHECKING:
    from emorec.training.checkpoint import load_checkpoint, predict_proba, read_checkpoint, save_atomic
    from emorec.training.data import Fer2013, load_fer2013
    from emorec.training.export import export_onnx
    from emorec.training.train import TrainConfig


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'emorec.training' has no attribute {name!r}")
