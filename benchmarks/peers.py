"""emorec side by side with the `fer` package (Haar cascade + TFLite mini-Xception) on the same real frames.

Frames: 640x480, each with one real face: scikit-image's astronaut and lfw_expressions close-ups (scaled to
160-300 px) on scikit-image photos without faces. Both libraries run with their defaults, as a new user
would: ``EmotionRecognizer()`` and ``fer.FER()``. `fer` needs TensorFlow, so it usually lives in a separate
environment (``--peer-python /path/to/venv/bin/python`` or ``EMOREC_PEER_PYTHON``); it runs in that
interpreter as a worker process that reads the frames from .npy files. Each measurement alternates between
the two, one call at a time (the other process waits meanwhile), so load from other jobs slows both alike;
each process times its own calls. Figures are medians and ratios (fer's time / emorec's time).

Measured: end to end per frame (fer's ``detect_emotions``, emorec's ``process``); the same on a video clip
(benchmarks/stream_detection.py's real faces in synthetic motion, ``--shots`` shots of about 60 frames),
where emorec runs as a stream (``rec.stream()``: the detector every few frames, faces followed in between)
and fer, which has no stream mode, runs ``detect_emotions`` on every frame; the face detector per
frame, the classifier for one face (fer's TFLite interpreter on a 64x64 face, emorec's ONNX model on a
48x48 face) and faces/s for 32 faces (fer's own loop over its interpreter, emorec's batch of 32).

    python benchmarks/peers.py [--peer-python /work/peers-venv/bin/python] [--model emonet_fast] [--frames 40]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "expressions_dev" / "lfw_expressions"
PEER_ENV = "EMOREC_PEER_PYTHON"
NO_PEER = 3  # exit status of the worker when `fer` cannot be imported


# ---- the worker: runs in the peer's interpreter, imports only numpy, OpenCV and fer ----------------------


def _worker(folder: Path) -> int:
    import logging

    try:
        from fer.fer import FER
    except Exception as exc:  # ImportError, or fer's own imports failing (e.g. pkg_resources)
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return NO_PEER
    logging.getLogger("fer").setLevel(logging.WARNING)
    import cv2

    frames = np.load(folder / "frames.npy")
    clip = functools.cache(lambda: np.load(folder / "clip.npy"))  # written once the worker has said hello
    detector = FER()
    # fer's own preprocessing of a face: 64x64 gray scaled to [-1, 1].
    gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    faces = np.stack([cv2.resize(g[120:360, 200:440], (64, 64)) for g in gray]).astype(np.float32) / 127.5 - 1
    work = {
        "end to end": lambda i: len(detector.detect_emotions(frames[i])),
        "video stream, end to end": lambda i: len(detector.detect_emotions(clip()[i])),  # fer has no stream mode
        "detector": lambda i: len(detector.find_faces(frames[i], gray_img=gray[i])),
        "classifier, 1 face": lambda i: len(detector._classify_emotions(faces[i : i + 1])),
        "classifier, 32 faces": lambda i: len(detector._classify_emotions(faces[np.arange(i, i + 32) % len(faces)])),
    }
    print(json.dumps({"ready": True, "version": _version("fer")}), flush=True)
    for line in sys.stdin:
        name, index = line.rsplit(" ", 1)
        start = time.perf_counter()
        found = work[name](int(index))
        print(json.dumps({"ms": (time.perf_counter() - start) * 1000, "found": found}), flush=True)
    return 0


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


class Peer:
    """The `fer` worker process: ``run(name, index)`` -> (ms, faces found), timed inside the worker."""

    def __init__(self, python: str, folder: Path):
        self._process = subprocess.Popen(
            [python, __file__, "--worker", str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"},
        )
        hello = json.loads(self._process.stdout.readline() or '{"error": "the worker exited at start"}')
        if "error" in hello:
            self._process.wait()
            raise PeerMissing(f"`fer` cannot run in {python}: {hello['error']}")
        self.version = hello["version"]

    def run(self, name: str, index: int) -> tuple[float, int]:
        self._process.stdin.write(f"{name} {index}\n")
        self._process.stdin.flush()
        reply = json.loads(self._process.stdout.readline())
        return reply["ms"], reply["found"]

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait()


class PeerMissing(RuntimeError):
    """`fer` is not installed (or does not import) in the peer interpreter."""


def find_peer_python(given: str | None) -> str:
    """The interpreter to run `fer` in: --peer-python, else $EMOREC_PEER_PYTHON, else this one."""
    python = given or os.environ.get(PEER_ENV) or sys.executable
    if not Path(python).is_file():
        raise PeerMissing(f"peer interpreter {python} does not exist")
    return python


# ---- the emorec side: runs in this interpreter --------------------------------------------------------


def real_frames(photos: Path, count: int) -> np.ndarray:
    """``count`` 640x480 BGR frames with one real face each; the face always covers the frame's centre."""
    import cv2
    from skimage import data

    backgrounds = [data.rocket(), data.coffee(), data.chelsea(), data.hubble_deep_field()]
    backgrounds = [cv2.resize(cv2.cvtColor(b, cv2.COLOR_RGB2BGR), (640, 480)) for b in backgrounds]
    names = sorted((photos / "images").glob("*.jpg"))
    if not names:
        raise SystemExit(f"{photos / 'images'}: no .jpg photos (pass --photos)")
    rng = np.random.default_rng(0)
    faces = [cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[0:300, 80:380]]
    faces += [cv2.imread(str(p)) for p in rng.choice(names, count - 1, replace=False)]
    frames = []
    for i, face in enumerate(faces):
        frame = backgrounds[i % len(backgrounds)].copy()
        side = int(rng.integers(160, 301))
        x, y = 320 - side // 2 + int(rng.integers(-40, 41)), 240 - side // 2 + int(rng.integers(-30, 31))
        frame[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        frames.append(frame)
    return np.stack(frames)


def _ours(rec, frames: np.ndarray, clip: np.ndarray):
    import cv2

    stream = rec.stream()

    def in_stream(i: int) -> int:
        if i == 0:  # each pass plays the clip from its start
            stream.reset()
        return len(stream.process(clip[i]).faces)

    gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    faces = np.stack([cv2.resize(g[120:360, 200:440], (48, 48), interpolation=cv2.INTER_AREA) for g in gray])

    def timed(fn):
        def call(i: int) -> tuple[float, int]:
            start = time.perf_counter()
            found = fn(i)
            return (time.perf_counter() - start) * 1000, found

        return call

    work = {
        "end to end": timed(lambda i: len(rec.process(frames[i]).faces)),
        "video stream, end to end": timed(in_stream),
        "detector": timed(lambda i: len(rec.detector.detect(frames[i]).boxes)),
        "classifier, 1 face": timed(lambda i: len(rec.classify(faces[i : i + 1]))),
        "classifier, 32 faces": timed(lambda i: len(rec.classify(faces[np.arange(i, i + 32) % len(faces)]))),
    }
    return work


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", help=f"the interpreter that has `fer` (default: ${PEER_ENV}, else this one)")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="a folder with images/ of face close-ups")
    parser.add_argument("--frames", type=int, default=40, help="distinct frames (the astronaut and lfw photos)")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the frames per measurement")
    parser.add_argument("--model", help="emorec's classifier: a shipped model's name or an ONNX file (default: "
                                        "the default shipped model)")
    parser.add_argument("--shots", type=int, default=3, help="shots of the video clip (about 60 frames each)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args.worker)

    from emorec.cpu import cpu_summary

    print(f"CPU: {cpu_summary()}")
    from stream_detection import synthetic_clip

    from emorec.engine import EmotionRecognizer

    rec = EmotionRecognizer(model=args.model)
    with tempfile.TemporaryDirectory() as folder:
        frames = real_frames(args.photos, args.frames)
        np.save(Path(folder) / "frames.npy", frames)
        try:
            peer = Peer(find_peer_python(args.peer_python), Path(folder))
        except PeerMissing as exc:
            print(f"skipped: {exc}. Install it apart from emorec (it needs TensorFlow), e.g.")
            print("  python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install fer 'setuptools<81'")
            print(f"then pass --peer-python /tmp/peers-venv/bin/python (or set {PEER_ENV}).")
            return 0
        clip = np.stack(synthetic_clip(rec, np.random.default_rng(0), shots=args.shots, mean_frames=60)[0])
        np.save(Path(folder) / "clip.npy", clip)
        ours = _ours(rec, frames, clip)
        print(
            f"emorec: model {rec.model_info['name']}{' (int8)' if rec.quantized else ''}, detector "
            f"{rec.detector.name}; fer {peer.version}: Haar cascade + TFLite mini-Xception, its defaults"
        )
        print(f"{len(frames)} frames x {args.repeats} passes, alternating call by call; load average "
              f"{os.getloadavg()[0]:.1f} (other jobs inflate both sides' times, not the ratios)")
        try:
            rows = []
            for name, mine in ours.items():
                sides = {"emorec": mine, "fer": lambda i, name=name: peer.run(name, i)}
                for i in range(min(3, len(frames))):  # warm-up: first runs allocate
                    for call in sides.values():
                        call(i)
                times: dict[str, list[float]] = {side: [] for side in sides}
                found = dict.fromkeys(sides, 0)
                count = len(clip) if name.startswith("video stream") else len(frames)
                for _ in range(args.repeats):
                    for i in range(count):
                        for side, call in sides.items():
                            ms, faces = call(i)
                            times[side].append(ms)
                            found[side] += faces > 0
                ours_ms, theirs_ms = (float(np.median(t)) for t in times.values())
                rows.append((name, ours_ms, theirs_ms, {k: v / args.repeats for k, v in found.items()}, count))
        finally:
            peer.close()
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    print("| median | emorec | fer | fer / emorec |")
    print("|---|---|---|---|")
    for name, ours_ms, theirs_ms, found, count in rows:
        if name == "classifier, 32 faces":
            figures = f"{32_000 / ours_ms:,.0f} faces/s | {32_000 / theirs_ms:,.0f} faces/s"
        else:
            figures = f"{ours_ms:.2f} ms | {theirs_ms:.2f} ms"
        print(f"| {name} | {figures} | {theirs_ms / ours_ms:.1f}x |")
        if name in ("end to end", "video stream, end to end", "detector"):
            print(f"|   frames with a face found ({name}) | {found['emorec']:.0f} of {count} "
                  f"| {found['fer']:.0f} of {count} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
