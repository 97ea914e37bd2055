"""Stream detection: the full detector on every frame against every N-th frame with faces followed in between.

The clip is real faces in synthetic motion: lfw_expressions photos (real close-up faces, shrunk to 250x250; a dev set)
pasted into scikit-image's face-free photos (640x480) and moved smoothly from frame to frame (shift, zoom,
roll up to 12 degrees), in shots of one or two people with hard cuts between them, the second person of a
two-person shot entering mid-shot. A face's true box is where the full detector puts it in the photo at
rest, moved with the photo, so the detector's own box style is the truth; a face counts as found when a box
covers its true box at IoU >= 0.5.

Every mode (detector x interval) runs its own stream over the same frames, frame by frame in turn (the order
rotating), so that other jobs on the machine slow all modes alike. Figures per mode: face recall, mean IoU of
the found faces, frames the detector ran on, boxes that match no face, agreement of the emotion label with
the per-frame pipeline (default detector, detect_every=1) on faces both found (smoothed labels, as streams
give them; --no-smoothing for raw ones), and mean ms per frame (the detector's cost spread over all frames)
for detect, follow, crop, classify and the whole frame.

    python benchmarks/stream_detection.py [--shots 12] [--every 1,2,3,5,8,12] [--detectors blazeface,blazeface-full]
        [--seed 0] [--model emonet_fast] [--no-smoothing]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scenes import backgrounds

from emorec.cpu import cpu_summary
from emorec.engine import EmotionRecognizer
from emorec.stream import FrameStream
from emorec.track import iou_matrix

LFW = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "expressions_dev" / "lfw_expressions"
PHOTO = 250  # side the photos (mostly 350x350 close-ups) are shrunk to before they move
STAGES = ("detect", "follow", "crop", "classify", "total")


@dataclass
class Actor:
    """One photo on screen: its pixels, its face's box in the photo, and its path (centre, size, roll) per frame."""

    photo: np.ndarray
    face: np.ndarray  # (4,) the face's box in photo pixels
    centre: np.ndarray  # (T, 2)
    side: np.ndarray  # (T,) the photo's side on screen
    roll: np.ndarray  # (T,) degrees, counter-clockwise
    enters: int = 0  # first frame of the shot it is seen in

    def place(self, t: int) -> np.ndarray:
        """The 2x3 affine map from photo pixels to frame pixels at frame ``t`` of its shot."""
        size = self.photo.shape[0]
        scale = self.side[t] / size
        turn = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), float(self.roll[t]), float(scale))
        turn[:, 2] += self.centre[t] - (size - 1) / 2
        return turn

    def true_box(self, t: int) -> np.ndarray:
        """The face's box on screen: its centre mapped, its size scaled (a box the detector would give)."""
        transform = self.place(t)
        centre = transform[:, :2] @ ((self.face[:2] + self.face[2:]) / 2) + transform[:, 2]
        half = (self.face[2:] - self.face[:2]) / 2 * self.side[t] / self.photo.shape[0]
        return np.concatenate([centre - half, centre + half])


@dataclass
class Mode:
    """One way of running the stream, with what it measured."""

    name: str
    stream: FrameStream
    found: int = 0
    ious: list[float] = field(default_factory=list)
    stray: int = 0
    labels: dict[tuple[int, int], str] = field(default_factory=dict)  # (frame, true face) -> emotion
    ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))


def face_photos(rec: EmotionRecognizer, rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` lfw_expressions photos of different people whose one face the detector finds at rest, each
    with that face's box in photo pixels."""
    with open(LFW / "labels.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng.shuffle(rows)
    chosen, people = [], set()
    for row in rows:
        if row["person"] in people:
            continue
        photo = cv2.imread(str(LFW / "images" / row["image"]))
        if photo is None or photo.shape[0] != photo.shape[1] or photo.shape[0] < PHOTO:
            continue  # the few small, uneven crops in the set
        photo = cv2.resize(photo, (PHOTO, PHOTO), interpolation=cv2.INTER_AREA)
        canvas = np.full((480, 640, 3), 128, np.uint8)
        canvas[115:365, 195:445] = photo
        faces = rec(canvas)
        if len(faces) != 1:
            continue
        chosen.append((photo, np.float64(faces[0].box) - [195, 115, 195, 115]))
        people.add(row["person"])
        if len(chosen) == count:
            break
    return chosen


def smooth(rng: np.random.Generator, frames: int, low: float, high: float) -> np.ndarray:
    """A smooth random path between ``low`` and ``high``: two sines of random period and phase."""
    t = np.arange(frames)
    wave = sum(np.sin(2 * np.pi * t / rng.uniform(40, 120) + rng.uniform(0, 2 * np.pi)) for _ in range(2)) / 2
    return low + (high - low) * (wave + 1) / 2


def synthetic_clip(
    rec: EmotionRecognizer, rng: np.random.Generator, shots: int, mean_frames: int
) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """The frames, and each frame's true face boxes."""
    photos = face_photos(rec, rng, 2 * shots)
    scenery = backgrounds()
    frames, truths = [], []
    for shot in range(shots):
        # Shots of uneven length, so that cuts fall between scheduled detections as often as on them.
        shot_frames = int(rng.integers(mean_frames * 3 // 4, mean_frames * 5 // 4 + 1))
        two = shot % 3 == 2  # every third shot has two people, the second entering mid-shot
        actors = []
        for i in range(2 if two else 1):
            photo, face = photos[2 * shot + i]
            # The photo's side on screen; its face is ~0.8 of it: one person from ~95 px to a close-up of
            # ~260 px (over half the frame's height), two people smaller, one on each side.
            side = smooth(rng, shot_frames, *((130, 240) if two else (120, 320)))
            lane = (170 + 300 * i) if two else 320
            reach = 40 if two else 120
            centre = np.column_stack([smooth(rng, shot_frames, lane - reach, lane + reach),
                                      smooth(rng, shot_frames, 200, 280)])
            actors.append(Actor(photo, face, centre, side, smooth(rng, shot_frames, -12, 12),
                                enters=shot_frames // 3 if i == 1 else 0))
        background = scenery[shot % len(scenery)]
        for t in range(shot_frames):
            frame = background.copy()
            boxes = []
            for actor in actors:
                if t < actor.enters:
                    continue
                cv2.warpAffine(actor.photo, actor.place(t), (640, 480), dst=frame, borderMode=cv2.BORDER_TRANSPARENT)
                boxes.append(actor.true_box(t))
            frames.append(frame)
            truths.append(boxes)
    return frames, truths


def score(mode: Mode, index: int, truth: list[np.ndarray], faces) -> None:
    """Match the mode's faces to the true boxes (greedy, best IoU first, >= 0.5) and count."""
    if not faces:
        return
    boxes = np.float32([f.box for f in faces])
    iou = iou_matrix(np.float32(truth).reshape(-1, 4), boxes) if truth else np.zeros((0, len(faces)))
    matched_faces = set()
    for flat in np.argsort(-iou, axis=None):
        t, f = divmod(int(flat), iou.shape[1])
        if iou[t, f] < 0.5:
            break
        if f in matched_faces or (index, t) in mode.labels:
            continue
        matched_faces.add(f)
        mode.found += 1
        mode.ious.append(float(iou[t, f]))
        mode.labels[(index, t)] = faces[f].emotion
    mode.stray += len(faces) - len(matched_faces)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=12)
    parser.add_argument("--shot-frames", type=int, default=60)
    parser.add_argument("--every", default="1,2,3,5,8,12", help="detection intervals to compare")
    parser.add_argument("--detectors", default="blazeface,blazeface-full", help="detectors to compare")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="the classifier: a shipped model's name or an ONNX file")
    parser.add_argument("--no-smoothing", action="store_true",
                        help="compare raw per-frame labels instead of the smoothed ones streams give by default")
    args = parser.parse_args()
    if not (LFW / "labels.csv").is_file():
        print(f"lfw_expressions not found at {LFW}", file=sys.stderr)
        return 2

    print(f"CPU: {cpu_summary()}")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other jobs slow every mode alike)")
    engines = {name: EmotionRecognizer(model=args.model, detector=name) for name in args.detectors.split(",")}
    reference_engine = next(iter(engines.values()))
    print(f"classifier: {reference_engine.model_info['name']}{' (int8)' if reference_engine.quantized else ''}")
    frames, truths = synthetic_clip(reference_engine, np.random.default_rng(args.seed), args.shots, args.shot_frames)
    total_faces = sum(len(t) for t in truths)
    print(f"clip: {len(frames)} frames of 640x480, {args.shots} shots (cuts between them), {total_faces} faces; "
          "real lfw_expressions faces in synthetic motion")

    modes = [Mode(f"{name}, detect_every={k}", engine.stream(smoothing=not args.no_smoothing, detect_every=int(k)))
             for name, engine in engines.items() for k in args.every.split(",")]
    for index, (frame, truth) in enumerate(zip(frames, truths, strict=True)):
        turn = index % len(modes)
        for mode in modes[turn:] + modes[:turn]:
            result = mode.stream.process(frame, frame_index=index)
            for stage in STAGES:
                mode.ms[stage] += result.timings_ms.get(stage, 0.0)
            score(mode, index, truth, result.faces)

    reference = modes[0]
    labels = "raw" if args.no_smoothing else "smoothed (the streams' default)"
    print(f"\nagreement: {labels} emotion label equal to {reference.name}'s on faces both found; "
          "ms: mean per frame")
    print(f"{'mode':34} {'recall':>7} {'IoU':>5} {'detected':>9} {'stray':>5} {'agree':>6}   "
          + " ".join(f"{s:>8}" for s in STAGES))
    for mode in modes:
        both = [key for key in mode.labels if key in reference.labels]
        agree = np.mean([mode.labels[k] == reference.labels[k] for k in both]) if both else float("nan")
        follower = mode.stream.engine._follower
        print(f"{mode.name:34} {mode.found / total_faces:7.1%} {np.mean(mode.ious):5.3f} "
              f"{follower.detections / follower.frames:9.1%} {mode.stray:5d} {agree:6.1%}   "
              + " ".join(f"{mode.ms[s] / len(frames):8.2f}" for s in STAGES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
