"""CNN architectures for 48x48 grayscale faces (PyTorch; only needed for training and export)."""

from emorec.training.models import deep, emonet, shallow  # noqa: F401  (registers the architectures)
from emorec.training.models.registry import ModelSpec, create_model, get_spec, list_models

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models"]
