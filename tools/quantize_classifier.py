"""Dev-time, after each export: an int8 twin of the shipped classifier, kept only if it costs < 0.3 points.

Static QDQ quantisation (ONNX Runtime; per-channel int8 weights in 7 bits so that CPUs without VNNI compute
the same result, uint8 activations calibrated on 2,048 FER2013 Training faces, min/max averaged over
batches), checked on PublicTest (never PrivateTest); benchmarks/int8_cpus.py checks the AVX2-only kernels.
Calibration chosen on PublicTest for the third distilled emonet_wide: plain min/max over 1,024 faces cost
0.42 points, over 4,096 0.28, percentile (99.99) 0.34, entropy 0.42, the batch-averaged min/max 0.25.
The twin records the SHA-256 of the float model it came from: the engine uses it only while that float
model is unchanged, so a new export can never run with a stale twin. Needs the 'train' extra (onnx).

    python tools/quantize_classifier.py [--model emonet_fast|emonet_wide|FILE.onnx] [--data fer2013.csv.gz]

On the interim emonet (60.6% PublicTest), one thread: 1.0 -> 0.35 ms per face, 1,070 -> 2,660 faces/s
at batch 32, accuracy +0.1 points.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from emorec.classifier import model_file
from emorec.runtime import open_session
from emorec.training.data import load_fer2013
from emorec.training.export import quantize_int8

REPO = Path(__file__).resolve().parents[1]
MAX_ACCURACY_DROP = 0.003
CALIBRATION_FACES = 2048


def _accuracy_and_speed(path: Path, faces: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    session = open_session(path, threads=1)
    name = session.get_inputs()[0].name
    probs = np.concatenate(
        [
            session.run(None, {name: faces[i : i + 256].astype(np.float32)[:, None]})[0]
            for i in range(0, len(faces), 256)
        ]
    )
    timings = {}
    for batch in (1, 32):
        x = faces[:batch].astype(np.float32)[:, None]
        runs = []
        for _ in range(30):
            start = time.perf_counter()
            session.run(None, {name: x})
            runs.append(time.perf_counter() - start)
        timings[batch] = min(runs) * 1000  # the least disturbed run: other jobs share these cores
    return float((probs.argmax(1) == labels).mean()), timings[1], 32_000 / timings[32]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a shipped model's name or an ONNX file (default: the default)")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"))
    args = parser.parse_args()
    source = model_file(args.model)
    target = source.with_name(source.stem + "_int8.onnx")
    data = load_fer2013(args.data)
    train, _ = data.split("Training")
    faces, labels = data.split("PublicTest")
    calibration = train[np.random.default_rng(0).permutation(len(train))[:CALIBRATION_FACES]]

    with tempfile.TemporaryDirectory() as tmp:
        quantized = Path(tmp) / "int8.onnx"
        quantize_int8(source, quantized, calibration)
        base = _accuracy_and_speed(source, faces, labels)
        int8 = _accuracy_and_speed(quantized, faces, labels)
        for name, (acc, ms, rate) in (("float32", base), ("int8", int8)):
            print(f"{name:8s} PublicTest accuracy {acc:.2%}, batch 1 {ms:.2f} ms, batch 32 {rate:.0f} faces/s")
        drop = base[0] - int8[0]
        if drop >= MAX_ACCURACY_DROP:
            print(f"not written: int8 costs {drop:.2%} of accuracy (limit {MAX_ACCURACY_DROP:.1%})")
            target.unlink(missing_ok=True)
            return 1
        model = onnx.load(str(quantized))
        # Carry the float model's emorec.* metadata (classes, spec, card) and say what was done to it.
        props = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
        props["emorec.quantized"] = json.dumps(
            {
                "method": "onnxruntime static QDQ, per-channel int8 weights in 7 bits (reduce_range), uint8 "
                f"activations, {CALIBRATION_FACES} Training faces, batch-averaged min/max",
                "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
                "public_test_accuracy": {"float32": round(base[0], 4), "int8": round(int8[0], 4)},
            }
        )
        del model.metadata_props[:]
        for key, value in props.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(target))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
