"""The shipped model family side by side: multiply-adds and parameters counted from each ONNX graph,
FER2013 PublicTest / PrivateTest top-1 of the float model and of its int8 twin, and classifier speed.

Speed: one ONNX Runtime thread, ms for one face and faces/s for a batch of 32 PublicTest faces. Every
model and precision is timed in turn within each round (interleaved, a few calls each), so load from other
jobs slows all alike; figures are medians over the calls, and in brackets the fastest call (the least
disturbed on a shared machine: the model's own cost, with fixed per-call overhead). The CPU's flags are
printed with them: int8 speed depends on VNNI.

    python benchmarks/models.py [--rounds 100] [--data ../shared/datasets/fer2013/fer2013.csv.gz] [--also X.onnx]

``--also`` times another exported model beside the family (float), such as a candidate or the face-api.js
peer that tools/faceapi_soft_labels.py converts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from emorec.classifier import DEFAULT_SHIPPED_MODEL, SHIPPED_MODELS, EmotionClassifier, shipped_model_path
from emorec.cpu import cpu_summary
from emorec.engine import int8_twin
from emorec.training.data import load_fer2013
from emorec.training.export import graph_cost

BLOCK = 5
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--also", action="append", default=[], type=Path, metavar="ONNX",
                        help="another exported model to time beside the family; repeatable")
    args = parser.parse_args()
    data = load_fer2013(args.data)
    splits = {split: data.split(split) for split in ("PublicTest", "PrivateTest")}
    one, batch = splits["PublicTest"][0][:1], splits["PublicTest"][0][:32]

    classifiers: dict[tuple[str, str], EmotionClassifier] = {}
    for name in SHIPPED_MODELS:
        float_path = shipped_model_path(name)
        classifiers[name, "float"] = EmotionClassifier(float_path, threads=1)
        twin = int8_twin(float_path)
        if twin is not None:
            classifiers[name, "int8"] = EmotionClassifier(twin, threads=1)
    for path in args.also:
        classifiers[path.stem, "float"] = EmotionClassifier(path, threads=1)

    accuracy = {
        key: {split: float((c.predict(faces).argmax(1) == labels).mean()) for split, (faces, labels) in splits.items()}
        for key, c in classifiers.items()
    }
    timings: dict[tuple[str, str], dict[str, list[float]]] = {key: {"1": [], "32": []} for key in classifiers}
    for classifier in classifiers.values():  # warm-up: first runs allocate
        classifier.predict(batch)
    for _ in range(args.rounds):
        for key, classifier in classifiers.items():
            for size, faces in (("1", one), ("32", batch)):
                # A few calls in a row, as the engine makes them: one call after another model's would
                # find the caches holding that model's weights and time a cold start instead.
                for _ in range(BLOCK):
                    start = time.perf_counter()
                    classifier.predict(faces)
                    timings[key][size].append(time.perf_counter() - start)

    print(f"CPU: {cpu_summary()}; 1 ONNX Runtime thread; {args.rounds} interleaved rounds, medians")
    print(f"default model: {DEFAULT_SHIPPED_MODEL}\n")
    print("| model | precision | multiply-adds per face | parameters | PublicTest | PrivateTest "
          "| 1 face, median (fastest) | batch of 32, median (fastest) |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, precision), times in timings.items():
        cost = graph_cost(classifiers[name, "float"].path)  # the float graph holds the convolutions to count
        single, best_single = float(np.median(times["1"])) * 1000, min(times["1"]) * 1000
        rate, best_rate = 32 / float(np.median(times["32"])), 32 / min(times["32"])
        print(f"| {name} | {precision} | {cost['macs_per_face'] / 1e6:.1f} M | {cost['parameters'] / 1e6:.2f} M "
              f"| {accuracy[name, precision]['PublicTest']:.2%} | {accuracy[name, precision]['PrivateTest']:.2%} "
              f"| {single:.2f} ms ({best_single:.2f}) | {rate:,.0f} faces/s ({best_rate:,.0f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
