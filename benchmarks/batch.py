"""Batch throughput of `emorec.batch.analyze`: frames/s with decoding, for 1 and 2 workers, in the local process
pool and on a local Ray cluster (``ray.init()`` on this machine).

The videos are made here from real photos: LFW expression photos (``expressions_dev/lfw_expressions``; one
photo per video, or scikit-image's astronaut where the folder is absent), each 250-px face drifting across a
640x480 frame, written with OpenCV as MPEG-4 part 2 at 30 fps. Every run starts from an empty results folder.
Prints, per configuration: wall-clock frames/s from start to summary (worker start-up and model loading
included), the workers' own rate (frames over the time spent inside analyze_file), scaling efficiency from
1 to 2 workers, Ray's overhead against the local pool, peak memory per worker, and what a cluster of N
2-core machines would give on paper.

    python benchmarks/batch.py [--videos 4] [--seconds 15] [--repeats 3] [--no-ray]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from emorec.batch import analyze
from emorec.cpu import cpu_summary

LFW = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "expressions_dev" / "lfw_expressions" / "images"
FPS, SIZE = 30.0, (640, 480)


def photos(count: int) -> list[np.ndarray]:
    """``count`` different real photos: LFW photos spread over the folder, else the astronaut, shifted."""
    found = sorted(LFW.glob("*.jpg")) if LFW.is_dir() else []
    files = found[:: max(1, len(found) // count)][:count]
    if len(files) == count:
        return [cv2.imread(str(f)) for f in files]
    from skimage import data

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    return [np.roll(astronaut, 10 * i, axis=1) for i in range(count)]


def make_videos(folder: Path, count: int, seconds: float) -> int:
    """``count`` videos of ``seconds`` each; returns the total number of frames."""
    frames = int(seconds * FPS)
    background = np.full((SIZE[1], SIZE[0], 3), 110, np.uint8)
    for i, photo in enumerate(photos(count)):
        face = cv2.resize(photo, (250, 250), interpolation=cv2.INTER_AREA)
        writer = cv2.VideoWriter(str(folder / f"video{i}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
        for t in range(frames):
            frame = background.copy()
            x, y = 40 + (t * 2) % (SIZE[0] - 330), 100 + int(40 * np.sin(t / 20))
            frame[y : y + 250, x : x + 250] = face
            writer.write(frame)
        writer.release()
    return frames * count


def run(videos: Path, executor: str, workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="emorec-batch-bench-") as out:
        started = time.perf_counter()
        rows = analyze([videos], out=out, executor=executor, workers=workers, progress=False).to_pylist()
        wall = time.perf_counter() - started
    frames = sum(r["frames"] for r in rows)
    assert all(r["status"] == "done" for r in rows), [r["error"] for r in rows]
    return {
        "frames": frames,
        "wall_fps": frames / wall,
        "worker_fps": frames / sum(r["seconds"] for r in rows) * workers,
        "peak_mib": max(r["peak_rss_mib"] for r in rows),
        "found": sum(r["frames_with_faces"] for r in rows) / frames,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each video")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration; the best counts")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    print(f"CPU: {cpu_summary()}")
    print(f"load average before: {os.getloadavg()[0]:.1f} (the machine is shared: other jobs slow these figures)")
    with tempfile.TemporaryDirectory(prefix="emorec-batch-videos-") as folder:
        total = make_videos(Path(folder), args.videos, args.seconds)
        print(f"{args.videos} videos x {args.seconds:g} s at {FPS:g} fps, 640x480, one face: {total} frames")
        executors = ["local"] if args.no_ray else ["local", "ray"]
        results: dict[tuple[str, int], dict] = {}
        # Other jobs share the machine: every configuration runs --repeats times, interleaved, and keeps its
        # best run (the one least slowed down by them). Ray runs only while it is needed (its own processes
        # take CPU too).
        for repeat in range(args.repeats):
            for executor in executors:
                if executor == "ray":
                    import ray

                    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                             configure_logging=False)
                for workers in (1, 2):
                    r = run(Path(folder), executor, workers)
                    print(f"run {repeat + 1}: {executor:5} {workers} worker(s): {r['wall_fps']:6.1f} frames/s "
                          f"wall clock, {r['worker_fps']:6.1f} inside the workers, peak {r['peak_mib']:.0f} MiB "
                          f"per worker, face found in {r['found']:.0%} of frames, load {os.getloadavg()[0]:.1f}")
                    best = results.get((executor, workers))
                    if best is None or r["wall_fps"] > best["wall_fps"]:
                        results[executor, workers] = r
                if executor == "ray":
                    ray.shutdown()
        for (executor, workers), r in results.items():
            print(f"best: {executor:5} {workers} worker(s): {r['wall_fps']:6.1f} frames/s wall clock, "
                  f"{r['worker_fps']:6.1f} inside the workers, peak {r['peak_mib']:.0f} MiB per worker")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    for executor in executors:
        one, two = results[executor, 1]["wall_fps"], results[executor, 2]["wall_fps"]
        print(f"{executor}: scaling efficiency 1 -> 2 workers {two / (2 * one):.2f}")
    if "ray" in executors:
        for workers in (1, 2):
            local, ray_fps = results["local", workers]["wall_fps"], results["ray", workers]["wall_fps"]
            print(f"Ray against the local pool, {workers} worker(s): {(local - ray_fps) / local:+.0%} slower")
    # A 2-core machine runs two workers; the rate of one worker alone is the one least disturbed by other jobs.
    per_machine = 2 * results["local", 1]["worker_fps"]
    print(f"per worker {per_machine / 2:.0f} frames/s, so about {per_machine:.0f} per 2-core machine")
    for machines in (4, 16, 64):
        print(f"on paper, {machines} 2-core machines: about {per_machine * machines:,.0f} frames/s "
              f"({per_machine * machines / FPS:,.0f}x real time for 30 fps video), if storage keeps up")


if __name__ == "__main__":
    main()
