"""The original design's shallow CNN: two conv layers (64 3x3, 128 5x5) and FC 256."""

from __future__ import annotations

import torch.nn as nn

from emorec.labels import FACE_SIZE, NUM_CLASSES
from emorec.training.models.registry import ModelSpec, register


def _conv_block(c_in: int, c_out: int, kernel: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Dropout(dropout),
    )


@register(ModelSpec("shallow", input_size=FACE_SIZE))
class ShallowCNN(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.25):
        super().__init__()
        self.features = nn.Sequential(_conv_block(1, 64, 3, dropout), _conv_block(64, 128, 5, dropout))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * 12 * 12, 256),
            nn.BatchNorm1d(256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(256, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
