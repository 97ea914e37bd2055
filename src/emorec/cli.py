"""The ``emorec`` command line: one subcommand per job, each a thin call into the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

DEFAULT_DATA = "../shared/datasets/fer2013/fer2013.csv.gz"


def _cmd_train(args: argparse.Namespace) -> int:
    from emorec.train import TrainConfig, train

    config = TrainConfig(data=args.data, out=args.out, model=args.model, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, mixup=args.mixup, erasing=args.erasing,
                         seed=args.seed, device=args.device, precision=args.precision, limit=args.limit)
    try:
        out = train(config, resume=args.resume)
    except KeyboardInterrupt:
        return 130
    print(f"done: {out}/best.pt")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a CNN on FER2013 (needs the 'train' extra: torch)",
                       description="Train on the Training split, pick the best epoch on PublicTest.")
    p.add_argument("--data", default=DEFAULT_DATA, help="fer2013.csv[.gz] or an image-folder root (default: %(default)s)")
    p.add_argument("--model", default="emonet", help="architecture: emonet (default), shallow or deep")
    p.add_argument("--out", default="runs/emonet", help="run directory for checkpoints and metrics")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--mixup", type=float, default=0.0, help="mixup alpha; 0 disables")
    p.add_argument("--erasing", type=float, default=0.5, help="random-erasing probability")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--limit", type=int, default=0, help="train on the first N images only (smoke tests)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.set_defaults(func=_cmd_train)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_train]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emorec", description="Real-time facial emotion recognition.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
