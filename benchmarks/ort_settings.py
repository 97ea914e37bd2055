"""Which ONNX Runtime session settings? Each setting of ``emorec.runtime.SessionSettings`` and the thread
count changed one at a time from the defaults, on the models the engine runs, in one run, interleaved.

Figures per setting: the classifier (the engine's model, the int8 twin where it is up to date) in ms per face
at batch 1 and faces/s at batch 32, on real faces (lfw_expressions close-ups, 48x48 grayscale); BlazeFace
full and short range in ms per 640x480 frame (scikit-image's astronaut on its rocket photo), pre- and
post-processing included; the three in turn (the engine's work on a frame with one face); and, in a
process of its own with only that setting's sessions, the CPU time (all threads) of the three in turn and
the peak resident memory (medians of three such processes each). Every
repetition times each setting once, in a new random order, so a machine whose load changes during the run
slows them all alike; each figure is followed by its time relative to the defaults'.

    python benchmarks/ort_settings.py [--repeats 200] [--model emonet.onnx]
        [--photos ../shared/datasets/expressions_dev/lfw_expressions]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from emorec.classifier import shipped_model_path
from emorec.cpu import cpu_summary
from emorec.detect import BLAZEFACE, BlazeFaceDetector
from emorec.engine import int8_twin
from emorec.labels import FACE_SIZE
from emorec.runtime import SessionSettings, open_session

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "expressions_dev" / "lfw_expressions"

DEFAULTS = SessionSettings()
# name -> (intra-op threads, settings): the defaults, then one change each.
CANDIDATES: dict[str, tuple[int, SessionSettings]] = {
    "defaults (1 thread)": (1, DEFAULTS),
    "2 threads": (2, DEFAULTS),
    "2 threads, spinning": (2, dataclasses.replace(DEFAULTS, spinning=True)),
    "optimization basic": (1, dataclasses.replace(DEFAULTS, optimization="basic")),
    "optimization extended": (1, dataclasses.replace(DEFAULTS, optimization="extended")),
    "optimization disabled": (1, dataclasses.replace(DEFAULTS, optimization="disabled")),
    "no memory arena": (1, dataclasses.replace(DEFAULTS, arena=False)),
    "no memory pattern": (1, dataclasses.replace(DEFAULTS, memory_pattern=False)),
    "parallel, 2 inter-op threads": (1, dataclasses.replace(DEFAULTS, inter_op_threads=2)),
}


def classifier_path(given: Path | None) -> Path:
    """``given``, or the classifier file the engine runs by default (the shipped model's int8 twin)."""
    if given is not None:
        if not given.is_file():
            raise SystemExit(f"{given}: no such ONNX model file")
        return given
    float_path = shipped_model_path()
    return int8_twin(float_path) or float_path


def real_faces(photos: Path, count: int) -> np.ndarray:
    """``count`` lfw_expressions close-ups as (N, 48, 48) uint8 grayscale, the classifier's input."""
    names = sorted(p for p in (photos / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not names:
        raise SystemExit(f"{photos / 'images'}: no photos (pass --photos)")
    faces = [
        cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
        for p in names[:count]
    ]
    return np.stack([faces[i % len(faces)] for i in range(count)])


def frame_640x480() -> np.ndarray:
    """scikit-image's astronaut (one face, ~100 px) on its rocket photo, 640x480 BGR."""
    from skimage import data

    frame = cv2.resize(cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR), (640, 480))
    frame[60:420, 140:500] = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (360, 360))
    return frame


def detector(variant: str, threads: int, settings: SessionSettings) -> BlazeFaceDetector:
    """A BlazeFace detector as ``create_detector`` makes it, its session opened with ``settings``."""
    found = BlazeFaceDetector(variant, threads=threads, tile_size=None)
    with resources.as_file(resources.files("emorec") / "assets" / BLAZEFACE[variant].asset) as path:
        found._session = open_session(path, threads, settings)  # the one thing that differs between candidates
    return found


def workloads(
    model: Path, threads: int, settings: SessionSettings, faces: np.ndarray, frame: np.ndarray
) -> dict[str, Callable]:
    session = open_session(model, threads, settings)
    name = session.get_inputs()[0].name
    one, batch = faces[:1, None].astype(np.float32), faces[:32, None].astype(np.float32)
    full, short = detector("full", threads, settings), detector("short", threads, settings)
    return {
        "classifier, 1 face": lambda: session.run(None, {name: one}),
        "classifier, 32 faces": lambda: session.run(None, {name: batch}),
        "BlazeFace full range, 640x480": lambda: full.detect(frame),
        "BlazeFace short range, 640x480": lambda: short.detect(frame),
        # The engine's frame: three sessions in turn, where one session's idle threads can slow the next.
        "all three, 1 face": lambda: (full.detect(frame), short.detect(frame), session.run(None, {name: one})),
    }


def peak_rss_of_this_process() -> float:
    """Peak resident memory in MiB: VmHWM, since ``ru_maxrss`` of a child starts at its parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def alone(candidate: str, model: Path, photos: Path) -> dict[str, float]:
    """A fresh process with only ``candidate``'s sessions: its peak RSS after running each workload 50 times,
    and its CPU time per engine frame ("all three"), which counts what spinning threads burn and which a
    loaded machine's other jobs do not inflate."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss-of", candidate, "--model", str(model), "--photos", str(photos)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed runs of each setting and workload")
    parser.add_argument("--model", type=Path, help="a classifier ONNX file (default: the engine's)")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="a folder with images/ of face close-ups")
    parser.add_argument("--rss-of", choices=list(CANDIDATES), help=argparse.SUPPRESS)
    args = parser.parse_args()

    model = classifier_path(args.model)
    faces, frame = real_faces(args.photos, 32), frame_640x480()
    if args.rss_of:
        work = workloads(model, *CANDIDATES[args.rss_of], faces, frame)
        for run in work.values():
            for _ in range(50):
                run()
        start = time.process_time()
        for _ in range(100):
            work["all three, 1 face"]()
        cpu_ms = (time.process_time() - start) * 10
        print(json.dumps({"rss_mib": peak_rss_of_this_process(), "cpu_ms": cpu_ms}))
        return 0

    print(f"CPU: {cpu_summary()}")
    print(f"load average {os.getloadavg()[0]:.1f} at start (other jobs inflate the times, not the ratios)")
    print(f"classifier {model.name}, {args.repeats} interleaved repetitions, medians")
    runs = {name: workloads(model, *candidate, faces, frame) for name, candidate in CANDIDATES.items()}
    times: dict[str, dict[str, list[float]]] = {name: {w: [] for w in work} for name, work in runs.items()}
    order = list(runs)
    for work in next(iter(runs.values())):
        for name in order:  # warm-up: the first runs of a session allocate
            runs[name][work]()
        for _ in range(args.repeats):
            random.shuffle(order)
            for name in order:
                start = time.perf_counter()
                runs[name][work]()
                times[name][work].append(time.perf_counter() - start)
    print(f"load average {os.getloadavg()[0]:.1f} at end")

    medians = {name: {w: float(np.median(t)) * 1000 for w, t in per.items()} for name, per in times.items()}
    base = medians["defaults (1 thread)"]
    # Three rounds of the own-process runs, candidates in turn, so that a change of load hits them all alike.
    rounds = [{name: alone(name, model, args.photos) for name in CANDIDATES} for _ in range(3)]
    own = {name: {k: float(np.median([r[name][k] for r in rounds])) for k in rounds[0][name]} for name in CANDIDATES}
    print(
        "| setting | classifier ms/face, batch 1 | faces/s, batch 32 | full range ms | short range ms "
        "| all three ms | all three, CPU ms | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, ms in medians.items():
        one, batch, full, short, frame_ms = ms.values()
        b1, b32, bf, bs, bframe = base.values()
        print(
            f"| {name} | {one:.3f} ({one / b1:.2f}x) | {32_000 / batch:,.0f} ({batch / b32:.2f}x) "
            f"| {full:.2f} ({full / bf:.2f}x) | {short:.2f} ({short / bs:.2f}x) "
            f"| {frame_ms:.2f} ({frame_ms / bframe:.2f}x) | {own[name]['cpu_ms']:.2f} "
            f"({own[name]['cpu_ms'] / own[next(iter(own))]['cpu_ms']:.2f}x) | {own[name]['rss_mib']:.0f} |"
        )
    print("(x: time per run relative to the defaults' time, lower is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
