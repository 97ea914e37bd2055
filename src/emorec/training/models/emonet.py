"""emonet: a VGG-style CNN sized for real time on a CPU; its wide and fast variants ship.

Four stages of two 3x3 conv + batch norm + ReLU, each halving the resolution, then global average
pooling. ``emonet_fast`` (width 24, 0.66 M parameters), ``emonet`` (width 32, 1.2 M) and
``emonet_wide`` (width 48, 2.6 M) differ only in channel count; ``emonet_teacher`` (width 64, 4.7 M) is a
teacher to distil from, not shipped. Each sees 40x40 crops of the 48x48 face
(random in training, centre at test), the recipe that carries small FER2013 models past 70% top-1.
"""

from __future__ import annotations

import torch.nn as nn

from emorec.labels import NUM_CLASSES
from emorec.training.models.registry import ModelSpec, register


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


@register(ModelSpec("emonet", input_size=40))
class EmoNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 32, dropout: float = 0.4):
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        stages, c_in = [], 1
        for c_out in widths:
            stages.append(_stage(c_in, c_out))
            c_in = c_out
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register(ModelSpec("emonet_wide", input_size=40))
def emonet_wide(num_classes: int = NUM_CLASSES, dropout: float = 0.4) -> EmoNet:
    """emonet with 1.5x the channels: about 2.2x the compute, for more capacity where emonet underfits."""
    return EmoNet(num_classes, width=48, dropout=dropout)


@register(ModelSpec("emonet_fast", input_size=40))
def emonet_fast(num_classes: int = NUM_CLASSES, dropout: float = 0.4) -> EmoNet:
    """emonet with half emonet_wide's channels: a quarter of its compute, the size for CPUs without AVX-512.

    Narrow plain 3x3 convolutions beat depthwise-separable and inverted-residual blocks of the same
    multiply-adds in ONNX Runtime's int8 kernels (benchmarks/architectures.py), so the fast model keeps them.
    """
    return EmoNet(num_classes, width=24, dropout=dropout)


@register(ModelSpec("emonet_teacher", input_size=40))
def emonet_teacher(num_classes: int = NUM_CLASSES, dropout: float = 0.4) -> EmoNet:
    """emonet at width 64, for a teacher trained on FER+ votes from scratch: too slow to ship, and the students
    learn from its soft targets what they have no capacity to learn alone."""
    return EmoNet(num_classes, width=64, dropout=dropout)
