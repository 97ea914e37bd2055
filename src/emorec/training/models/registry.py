"""One registry of architectures; each entry carries the preprocessing it expects.

The spec travels in checkpoints and in the exported ONNX model's metadata, so the
engine derives preprocessing from the model file instead of guessing it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch.nn as nn

from emorec.errors import UnknownModelError
from emorec.labels import FACE_SIZE


@dataclass(frozen=True)
class ModelSpec:
    """What a model needs from its input: the square crop size it sees and the pixel normalisation.

    Faces arrive as 48x48 grayscale; a model with ``input_size`` < 48 sees the centre crop
    at test time and random crops in training.
    """

    name: str
    input_size: int = FACE_SIZE
    mean: float = 0.5  # applied to pixels scaled to [0, 1]
    std: float = 0.25

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def preprocessing(self) -> tuple[int, float, float]:
        """What two models must share to read the same prepared faces (an ensemble, a teacher and its student)."""
        return self.input_size, self.mean, self.std


_REGISTRY: dict[str, tuple[ModelSpec, Callable[..., nn.Module]]] = {}


def register(spec: ModelSpec) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class/function decorator: ``@register(ModelSpec("deep"))``."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if spec.name in _REGISTRY:
            raise ValueError(f"model {spec.name!r} is registered twice")
        _REGISTRY[spec.name] = (spec, builder)
        return builder

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    return _lookup(name)[0]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered architecture by name; unknown names get close suggestions."""
    _, builder = _lookup(name)
    return builder(**kwargs)


def _lookup(name: str) -> tuple[ModelSpec, Callable[..., nn.Module]]:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownModelError(f"unknown model {name!r}{hint}; known models: {', '.join(list_models())}")
    return _REGISTRY[name]
