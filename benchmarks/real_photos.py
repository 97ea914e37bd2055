"""Real photos: lfw_expressions through the whole pipeline, ckplus48 through the classifier alone.

Prints, for each set, the face detection rate, top-1, macro recall (over the classes the set contains),
per-class recall and how often each class is predicted against how often it occurs, with the CPU; writes
report.json, confusion.png and predictions.csv per set under --out. Both are development sets: choices
made on them (the crop scale below) are dev-set choices, not test figures.

    python benchmarks/real_photos.py [--model path.onnx] [--float] [--out docs/results/real_photos]
        [--crop-scales 1.0,1.1,1.2,1.3,1.4]   # also: lfw_expressions top-1 through the pipeline per crop scale

The same as ``emorec evaluate --photos DIR [--classifier-only]``, for both sets at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emorec.engine import CropGeometry
from emorec.photo_eval import evaluate_photos, format_photo_report, write_photo_report

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "expressions_dev"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="classifier ONNX file (default: the shipped model)")
    parser.add_argument("--float", action="store_true", help="never the int8 twin")
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--dev", type=Path, default=DEV, help="folder holding lfw_expressions/ and ckplus48/")
    parser.add_argument("--out", type=Path, default=None, help="write each set's report files under OUT/<set>/")
    parser.add_argument("--limit", type=int, default=0, help="about N evenly spaced photos per set (0: all)")
    parser.add_argument("--crop-scales", default="", help="comma-separated crop scales to compare on lfw_expressions")
    args = parser.parse_args()
    quantized = False if args.float else None

    for name, classifier_only in (("lfw_expressions", False), ("ckplus48", True)):
        report = evaluate_photos(args.dev / name, args.model, classifier_only=classifier_only,
                                 detector=args.detector, quantized=quantized, limit=args.limit)
        print(format_photo_report(report), end="\n\n")
        if args.out:
            write_photo_report(report, args.out / name)

    for scale in (float(s) for s in args.crop_scales.split(",") if s.strip()):
        report = evaluate_photos(args.dev / "lfw_expressions", args.model, detector=args.detector,
                                 quantized=quantized, crop=CropGeometry(scale=scale), limit=args.limit)
        print(f"lfw_expressions, crop scale {scale:g}: face found {report.detection_rate:.1%}, "
              f"top-1 {report.accuracy:.1%}, macro recall {report.macro_recall:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
