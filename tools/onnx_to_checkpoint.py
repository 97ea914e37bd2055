"""Rebuild a training checkpoint from an exported emonet ONNX model, to fine-tune the shipped weights.

The export folds each batch norm into its convolution (weight and bias), so the checkpoint gives every
batch norm the statistics its convolution actually produces on real faces (the training split) and the
scale and shift that make it an identity on them: the rebuilt model computes what the ONNX file computes,
and batch statistics in training mode start close to the running ones. A two-view export (``--flip-tta``)
is not folded: its tensors are read back as they are. The check runs the rebuilt network with the file's
own views and prior correction (its metadata), which the checkpoint leaves out: export them again.

    python tools/onnx_to_checkpoint.py src/emorec/assets/emonet_wide.onnx runs/shipped/best.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from emorec.classifier import EmotionClassifier, read_metadata
from emorec.cli import DEFAULT_DATA
from emorec.training.checkpoint import center_crop, normalize, save_atomic
from emorec.training.data import load_fer2013
from emorec.training.export import InferenceWrapper, prior_shift
from emorec.training.models import create_model
from emorec.training.models.registry import ModelSpec


def rebuild(onnx_path: Path, faces: np.ndarray) -> tuple[torch.nn.Module, ModelSpec]:
    meta = read_metadata(onnx_path)
    if meta.get("ensemble", 1) != 1:
        raise SystemExit(f"{onnx_path}: only a single-model export can be rebuilt")
    spec = ModelSpec(**meta["spec"])
    weights = {t.name.removeprefix("models.0."): numpy_helper.to_array(t)
               for t in onnx.load(str(onnx_path)).graph.initializer}
    model = create_model(spec.name)
    state = model.state_dict()
    floating = [name for name, tensor in state.items() if tensor.is_floating_point()]
    if all(name in weights for name in floating):
        # An export that kept every tensor by name (a two-view graph is not folded): the weights as they are.
        model.load_state_dict({**state, **{name: torch.from_numpy(weights[name].copy()) for name in floating}})
        return model.eval(), spec
    convs = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)]
    norms = [name for name, module in model.named_modules() if isinstance(module, torch.nn.BatchNorm2d)]
    for conv, norm in zip(convs, norms, strict=True):
        state[f"{conv}.weight"] = torch.from_numpy(weights[f"{conv}.weight"].copy())
        bias = torch.from_numpy(weights[f"{conv}.weight_bias"].copy())
        state[f"{norm}.weight"], state[f"{norm}.bias"] = torch.ones_like(bias), bias
        state[f"{norm}.running_mean"], state[f"{norm}.running_var"] = torch.zeros_like(bias), torch.ones_like(bias)
        state[f"{norm}.running_var"] -= model.get_submodule(norm).eps  # (x - 0) / sqrt(var + eps) = x
    for name in ("classifier.3.weight", "classifier.3.bias"):
        state[name] = torch.from_numpy(weights[name].copy())
    model.load_state_dict(state)
    model.eval()

    # Each convolution's output statistics on real faces; the identity above holds for any statistics
    # once scale and shift follow them.
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in convs}
    hooks = [model.get_submodule(name).register_forward_hook(
        lambda _m, _i, out, name=name: outputs[name].append(out.detach())) for name in convs]
    with torch.no_grad():
        model(center_crop(normalize(torch.from_numpy(faces), spec), spec.input_size))
    for hook in hooks:
        hook.remove()
    for conv, norm in zip(convs, norms, strict=True):
        out = torch.cat(outputs[conv])
        mean, var = out.mean(dim=(0, 2, 3)), out.var(dim=(0, 2, 3))
        bn = model.get_submodule(norm)
        shift = bn.bias.detach().clone()
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.data.copy_(torch.sqrt(var + bn.eps))
        bn.bias.data.copy_(mean + shift)
    return model, spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", default=DEFAULT_DATA)
    args = parser.parse_args()
    data = load_fer2013(args.data)
    train_faces, _ = data.split("Training")
    faces = train_faces[np.random.default_rng(0).choice(len(train_faces), 2048, replace=False)]
    model, spec = rebuild(args.onnx, faces)

    # The export's own views and prior correction, around the rebuilt network, must compute what the file does;
    # the checkpoint keeps the network alone (export them again with --flip-tta / --prior-correction).
    meta = read_metadata(args.onnx)
    correction = meta.get("prior_correction")
    shift = prior_shift(np.array(correction["training_prior"]), correction["strength"]) if correction else None
    wrapper = InferenceWrapper([model], spec, flip_tta=bool(meta.get("flip_tta")), logit_shift=shift).eval()
    check = data.split("PublicTest")[0][:256]
    with torch.no_grad():
        rebuilt = wrapper(torch.from_numpy(check).float().unsqueeze(1)).numpy()
    diff = float(np.abs(rebuilt - EmotionClassifier(args.onnx).predict(check)).max())
    if diff > 1e-4:
        raise SystemExit(f"the rebuilt model differs from {args.onnx} by {diff:.2e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_atomic({"model_name": spec.name, "spec": spec.to_dict(), "model": model.state_dict(),
                 "source": str(args.onnx)}, args.out)
    print(f"wrote {args.out}: {spec.name} rebuilt from {args.onnx} (max probability difference {diff:.1e})")


if __name__ == "__main__":
    main()
