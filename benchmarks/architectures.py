"""Which blocks make a fast classifier in ONNX Runtime: emonet_fast's plain 3x3 convolutions against
depthwise-separable and inverted-residual (MobileNetV2-style) networks of about the same multiply-adds.

Untrained weights (speed does not depend on them), exported and quantised exactly as the shipped models
(``export_onnx``, ``quantize_int8`` calibrated on 256 PublicTest faces). One ONNX Runtime thread; each
network and precision is timed in turn within each round; medians. emonet_wide is the reference.

    python benchmarks/architectures.py [--rounds 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch.nn as nn

from emorec.classifier import EmotionClassifier
from emorec.cpu import cpu_summary
from emorec.labels import NUM_CLASSES
from emorec.training.data import load_fer2013
from emorec.training.export import export_onnx, graph_cost, quantize_int8
from emorec.training.models import create_model, get_spec

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"


def _bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]


class _Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


def _separable(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False), *_bn_relu(c_in),
                         nn.Conv2d(c_in, c_out, 1, bias=False), *_bn_relu(c_out))


def depthwise_separable() -> nn.Sequential:
    """emonet's four stages with each 3x3 convolution split into depthwise 3x3 + pointwise 1x1, twice as wide
    and deeper (1, 2, 3, 2 blocks), residual where shapes allow."""
    layers: list[nn.Module] = [nn.Conv2d(1, 32, 3, padding=1, bias=False), *_bn_relu(32)]
    c_in = 32
    for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), (1, 2, 3, 2), strict=True)):
        if stage:
            layers.append(nn.MaxPool2d(2))
        layers.append(_separable(c_in, width))
        layers += [_Residual(_separable(width, width)) for _ in range(blocks - 1)]
        c_in = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, NUM_CLASSES))


def _inverted(c_in: int, c_out: int, expand: int, stride: int) -> nn.Module:
    hidden = c_in * expand
    body = nn.Sequential(nn.Conv2d(c_in, hidden, 1, bias=False), *_bn_relu(hidden),
                         nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), *_bn_relu(hidden),
                         nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
    return _Residual(body) if stride == 1 and c_in == c_out else body


def inverted_residual() -> nn.Sequential:
    """MobileNetV2's blocks (expansion 4, linear bottleneck) at 40x40: widths 24-192, then a 512 1x1 head."""
    layers: list[nn.Module] = [nn.Conv2d(1, 16, 3, padding=1, bias=False), *_bn_relu(16)]
    c_in = 16
    for width, expand, repeats, stride in ((24, 1, 1, 1), (32, 4, 2, 2), (64, 4, 3, 2), (128, 4, 3, 2), (192, 4, 2, 1)):
        for i in range(repeats):
            layers.append(_inverted(c_in, width, expand, stride if i == 0 else 1))
            c_in = width
    return nn.Sequential(*layers, nn.Conv2d(c_in, 512, 1, bias=False), *_bn_relu(512),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, NUM_CLASSES))


CANDIDATES: dict[str, Callable[[], nn.Module]] = {
    "emonet_wide (reference)": lambda: create_model("emonet_wide"),
    "emonet_fast (plain 3x3)": lambda: create_model("emonet_fast"),
    "depthwise-separable": depthwise_separable,
    "inverted residual": inverted_residual,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    faces = load_fer2013(args.data).split("PublicTest")[0]
    one, batch = faces[:1], faces[:32]
    spec = get_spec("emonet_fast")  # every candidate reads the same 40x40 centre crop

    classifiers: dict[tuple[str, str], EmotionClassifier] = {}
    costs: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, build) in enumerate(CANDIDATES.items()):
            float_path, int8_path = Path(tmp) / f"{i}.onnx", Path(tmp) / f"{i}_int8.onnx"
            export_onnx([build().eval()], spec, float_path)
            quantize_int8(float_path, int8_path, faces[:256])
            costs[name] = graph_cost(float_path)
            classifiers[name, "float"] = EmotionClassifier(float_path, threads=1)
            classifiers[name, "int8"] = EmotionClassifier(int8_path, threads=1)

    times: dict[tuple[str, str], dict[int, list[float]]] = {key: {1: [], 32: []} for key in classifiers}
    for classifier in classifiers.values():
        classifier.predict(batch)  # warm-up: first runs allocate
    for _ in range(args.rounds):
        for key, classifier in classifiers.items():
            for size, x in ((1, one), (32, batch)):
                start = time.perf_counter()
                classifier.predict(x)
                times[key][size].append(time.perf_counter() - start)

    print(f"CPU: {cpu_summary()}; 1 ONNX Runtime thread; {args.rounds} interleaved rounds, medians\n")
    print("| network | multiply-adds | parameters | float: 1 face | float: batch 32 | int8: 1 face | int8: batch 32 |")
    print("|---|---|---|---|---|---|---|")
    for name in CANDIDATES:
        cells = []
        for precision in ("float", "int8"):
            t = times[name, precision]
            cells += [f"{np.median(t[1]) * 1000:.2f} ms", f"{32 / np.median(t[32]):,.0f} faces/s"]
        print(f"| {name} | {costs[name]['macs_per_face'] / 1e6:.1f} M | {costs[name]['parameters'] / 1e6:.2f} M | "
              + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
