"""Training checkpoints: written atomically, read back as data only, and the model they hold run on faces.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts: the architecture by name
(``model_name``) and its preprocessing (``spec``), never a pickled class, so moving or renaming modules does
not break a saved ``.pt`` file, and loading one from elsewhere cannot run code. ``emorec evaluate`` scores a
``.pt`` file with :func:`load_checkpoint` and :func:`predict_proba` from here, without the training loop.

A float model that ``emorec export`` wrote is a checkpoint too: its graph keeps the network's weights under
their PyTorch names and its metadata the spec and the training run, so the shipped models can be fine-tuned,
taught from or exported again when the run directory that made them is gone.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from emorec.classifier import decode_metadata
from emorec.errors import CheckpointError
from emorec.training.models import create_model
from emorec.training.models.registry import ModelSpec


def save_atomic(obj: dict, path: Path) -> None:
    """Write to a temporary file and rename, so a kill mid-write never leaves a broken checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# What every checkpoint :func:`train` writes holds; last.pt also holds the optimiser's and the run's state.
CHECKPOINT_KEYS = ("model_name", "spec", "model")


def read_checkpoint(path: str | os.PathLike, keys: tuple[str, ...] = CHECKPOINT_KEYS,
                    device: str | torch.device = "cpu") -> dict:
    """A checkpoint's contents, read as data only (``weights_only``: tensors, numbers, strings, lists, dicts),
    so a .pt file from elsewhere cannot run code when it is loaded; it must hold ``keys``. An ``.onnx`` file
    is read with :func:`read_exported_model`. A ``CheckpointError`` says in one line why a file cannot be used."""
    ckpt = read_exported_model(path) if str(path).lower().endswith(".onnx") else _load_data_only(path, device)
    missing = [key for key in keys if not isinstance(ckpt, dict) or key not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint of emorec train (no {', '.join(missing)})")
    return ckpt


def _load_data_only(path: str | os.PathLike, device: str | torch.device) -> object:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        code = re.search(r"GLOBAL (\S+)", str(exc))
        if code:
            raise CheckpointError(f"{path}: refused: it holds a Python object ({code.group(1)}) that loading would "
                                  "run; a checkpoint holds only tensors, numbers, strings, lists and dicts") from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint") from None
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror})") from None
    except (RuntimeError, EOFError, ValueError):  # a truncated or damaged archive
        raise CheckpointError(f"{path}: damaged or truncated checkpoint") from None
    except LookupError:  # bytes that are no pickle: the data-only unpickler reads them as opcodes and fails on one
        raise CheckpointError(f"{path}: not a PyTorch checkpoint") from None


# The names ``emorec export`` gives one model's weights inside its graph (InferenceWrapper.models[0]).
EXPORTED_PREFIX = "models.0."


def read_exported_model(path: str | os.PathLike) -> dict:
    """The checkpoint inside a float model written by ``emorec export``: the weights of its one network, its
    spec, the training config and best epoch of its model card (``config``, ``epoch``, ``run``) and, where it
    was prior-corrected, the class prior it learnt (``training_prior``).
    Ensembles and int8 twins hold no single network's float weights and are refused in one line."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise CheckpointError(f"{path}: reading an ONNX model needs the onnx package: pip install 'emorec[train]'") \
            from None
    try:
        graph_model = onnx.load(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror})") from None
    except Exception:  # onnx raises protobuf's DecodeError, or others, on bytes that are no model
        raise CheckpointError(f"{path}: not an ONNX model") from None
    meta = decode_metadata({prop.key: prop.value for prop in graph_model.metadata_props})
    if "spec" not in meta:
        raise CheckpointError(f"{path}: not a model written by emorec export (no emorec.spec metadata)")
    if "quantized" in meta:
        raise CheckpointError(f"{path}: an int8 model holds no float weights; pass its float twin")
    if meta.get("ensemble", 1) != 1:
        raise CheckpointError(f"{path}: an ensemble of {meta['ensemble']} networks; a checkpoint holds one")
    spec = meta["spec"]
    weights = {init.name[len(EXPORTED_PREFIX):]: torch.from_numpy(numpy_helper.to_array(init).copy())
               for init in graph_model.graph.initializer if init.name.startswith(EXPORTED_PREFIX)}
    state = create_model(spec["name"]).state_dict()
    # BatchNorm's step counter is training state that the exported graph has no use for.
    missing = [name for name in state if name not in weights and not name.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(f"{path}: its graph lacks {len(missing)} of {spec['name']}'s weights "
                              f"(e.g. {missing[0]})")
    state.update({name: weights[name] for name in state if name in weights})
    checkpoint = {"model_name": spec["name"], "spec": spec, "model": state, "config": {}}
    if "prior_correction" in meta:
        checkpoint["training_prior"] = meta["prior_correction"]["training_prior"]
    runs = meta.get("runs", [])
    if len(runs) == 1:
        checkpoint.update(config=runs[0].get("train_config", {}), epoch=runs[0].get("best_epoch"), run=runs[0])
    return checkpoint


def load_checkpoint(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelSpec, dict]:
    """Rebuild a model from a checkpoint written by :func:`train`; returns (model in eval mode, spec, checkpoint)."""
    ckpt = read_checkpoint(path)
    model = create_model(ckpt["model_name"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ModelSpec(**ckpt["spec"]), ckpt


# ---------------------------------------------------------------- running a checkpoint's model


def normalize(images: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """uint8 (N, 48, 48) or float 0-255 (N, 1, H, W) faces -> normalised float (N, 1, H, W)."""
    x = images.float()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return (x / 255.0 - spec.mean) / spec.std


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    offset = (x.shape[-1] - size) // 2
    return x[..., offset:offset + size, offset:offset + size]


@torch.no_grad()
def predict_proba(model: torch.nn.Module, images: np.ndarray, spec: ModelSpec, batch_size: int = 512,
                  tta: bool = False, device: torch.device | None = None) -> np.ndarray:
    """Softmax probabilities (N, 7) of a PyTorch model on uint8 (N, 48, 48) faces; centre crop, optional flip TTA."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize(torch.from_numpy(images[start:start + batch_size]), spec).to(device)
        x = center_crop(x, spec.input_size).contiguous(memory_format=torch.channels_last)
        probs = F.softmax(model(x).float(), dim=1)
        if tta:
            probs = (probs + F.softmax(model(torch.flip(x, dims=[3])).float(), dim=1)) / 2
        out.append(probs.cpu().numpy())
    return np.concatenate(out)
