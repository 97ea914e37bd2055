"""Engine speed on real faces: ms per 640x480 frame end to end and per stage, classifier faces/s, peak memory.

Frames: scikit-image's astronaut and matplotlib's Grace Hopper portraits in a 640x480 photo (1 face, and
4 faces in a 2x2 collage); faces for the classifier: FER2013 PublicTest. Figures are medians.
Targets on 2 cores: <= 5 ms per frame with one face; classifier <= 1 ms for one face, >= 2000 faces/s batched.

    python benchmarks/engine.py [--threads 1] [--repeats 200] [--against blazeface-full]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
from skimage import data

from emorec.cpu import cpu_summary
from emorec.engine import EmotionRecognizer
from emorec.training.data import load_fer2013

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"


def scenes() -> dict[str, np.ndarray]:
    """'1 face' and '4 faces' 640x480 BGR frames of real portraits on a face-free photo."""
    background = cv2.resize(cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR), (640, 480))
    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    hopper = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    one = background.copy()
    one[60:420, 140:500] = cv2.resize(astronaut, (360, 360), interpolation=cv2.INTER_AREA)
    # Head-and-shoulders crops (face about half the crop), so each face is ~100 px in the 2x2 collage.
    heads = [astronaut[20:240, 120:340], hopper[40:420, 80:460]]
    four = background.copy()
    for i in range(4):
        y, x = 240 * (i // 2) + 10, 320 * (i % 2) + 60
        four[y : y + 220, x : x + 220] = cv2.resize(heads[i % 2], (220, 220), interpolation=cv2.INTER_AREA)
    return {"1 face": one, "4 faces": four}


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: first ONNX Runtime runs allocate
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per model")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument(
        "--against",
        default=None,
        metavar="DETECTOR",
        help="also time the engine with this detector, frame by frame in turn with --detector, so that both "
        "see the same load (e.g. blazeface-full, the default before close-up faces were added)",
    )
    args = parser.parse_args()

    rec = EmotionRecognizer(model=args.model, detector=args.detector, threads=args.threads)
    print(f"CPU: {cpu_summary()}")
    print(
        f"model {rec.model_info['name']}, detector {rec.detector.name}, {args.threads} ORT thread(s), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other jobs slow these figures down)"
    )
    for name, frame in scenes().items():
        stream = rec.stream(smoothing=True, detect_every=1)  # every frame in full: see stream_detection.py
        stages: dict[str, list[float]] = {}
        for i in range(args.repeats):
            for stage, ms in stream.process(frame, frame_index=i).timings_ms.items():
                stages.setdefault(stage, []).append(ms)
        faces = len(stream.process(frame).faces)
        with tempfile.NamedTemporaryFile(suffix=".jpg") as jpeg:
            cv2.imwrite(jpeg.name, frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
            from_file = median_ms(lambda path=jpeg.name, s=stream: s.process(path), args.repeats)
        per_stage = ", ".join(f"{stage} {np.median(ms):.2f}" for stage, ms in stages.items() if stage != "total")
        print(
            f"640x480, {name} ({faces} found): {np.median(stages['total']):.2f} ms per frame end to end "
            f"(array in; {from_file:.2f} ms from a JPEG file); stages ms: {per_stage}"
        )

    if args.against:
        other = EmotionRecognizer(model=args.model, detector=args.against, threads=args.threads)
        for name, frame in scenes().items():
            ms: dict[str, list[float]] = {rec.detector.name: [], other.detector.name: []}
            for _ in range(args.repeats):
                for engine in (rec, other):
                    ms[engine.detector.name].append(engine.process(frame).timings_ms["total"])
            mine, theirs = (float(np.median(v)) for v in ms.values())
            print(
                f"640x480, {name}, in turn: {rec.detector.name} {mine:.2f} ms, {other.detector.name} {theirs:.2f} ms "
                f"per frame ({mine / theirs:.2f}x)"
            )

    faces, _ = load_fer2013(args.data).split("PublicTest")
    one_ms = median_ms(lambda: rec.classify(faces[:1]), args.repeats * 5)
    batch_ms = median_ms(lambda: rec.classify(faces[:32]), args.repeats)
    print(
        f"classifier: batch 1 {one_ms:.3f} ms ({1000 / one_ms:.0f} faces/s), "
        f"batch 32 {batch_ms:.2f} ms ({32_000 / batch_ms:.0f} faces/s)"
    )
    print(f"peak memory (RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
