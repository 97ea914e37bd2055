"""A weight-space blend of two checkpoints of one architecture: (1 - weight) * A + weight * B.

Fine-tuning a model on new targets (FER+ votes) moves it away from what it read well before (FER2013's
labels); blending the weights of the model before and after (Wortsman et al., "Robust fine-tuning of
zero-shot models", 2022) trades one against the other along a line, without training, and often reads
shifted data (real photos) better than either end. Both checkpoints must descend from the same weights,
or the blend is meaningless. Batch-norm statistics are blended like the weights.

    python tools/interpolate_checkpoints.py runs/shipped_emonet_fast/best.pt runs/emonet_fast_mix05/best.pt \\
        --weight 0.5 --out runs/emonet_fast_wise05/best.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from emorec.training.checkpoint import read_checkpoint, save_atomic


def interpolate(a: dict, b: dict, weight: float) -> dict:
    """B's checkpoint with each floating-point tensor replaced by (1 - weight) * A's + weight * B's."""
    if a["model_name"] != b["model_name"] or a["spec"] != b["spec"]:
        raise SystemExit(f"different architectures: {a['model_name']} and {b['model_name']}")
    if a["model"].keys() != b["model"].keys():
        raise SystemExit("the two checkpoints hold different tensors")
    blended = {name: torch.lerp(a["model"][name], tensor, weight) if tensor.is_floating_point() else tensor
               for name, tensor in b["model"].items()}
    return {**b, "model": blended}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="the checkpoint at weight 0 (e.g. the model before fine-tuning)")
    parser.add_argument("b", type=Path, help="the checkpoint at weight 1 (the fine-tuned one)")
    parser.add_argument("--weight", type=float, required=True, help="B's share, in [0, 1]")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not 0 <= args.weight <= 1:
        raise SystemExit("--weight must be in [0, 1]")
    blended = interpolate(read_checkpoint(args.a), read_checkpoint(args.b), args.weight)
    blended["interpolated"] = {"a": str(args.a), "b": str(args.b), "weight": args.weight}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(blended, args.out)
    print(f"wrote {args.out}: {1 - args.weight:g} x {args.a} + {args.weight:g} x {args.b}")


if __name__ == "__main__":
    main()
