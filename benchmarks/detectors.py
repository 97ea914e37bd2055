"""Which face detector? Recall on real photos, false positives on face-free photos, ms per 640x480 frame.

Real faces: scikit-image's astronaut and cameraman (a profile face) and matplotlib's Grace Hopper, as they
are and re-composed: scaled so that the face is 20-200 pixels wide in 640x480 and 1920x1080 frames,
rotated in-plane, darkened, and side by side. Face-free: 13 photos from scikit-image and scikit-learn,
plus blank, uniform, noise and gradient frames. Close-ups: the photos of a labelled folder
(``expressions_dev/lfw_expressions``: one face filling most of each photo); recall there is the share of
photos in which at least one face is found.

    python benchmarks/detectors.py [--threads 1] [--haar] [--yunet-model face_detection_yunet_2023mar.onnx]
        [--photos ../shared/datasets/expressions_dev/lfw_expressions] [--photos-limit 0]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from emorec.cpu import cpu_summary
from emorec.detect import create_detector
from emorec.sources import read_image
from emorec.track import iou_matrix

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "expressions_dev" / "lfw_expressions"


def _portraits() -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Real photos with their face box (x1, y1, x2, y2), drawn by hand from the three detectors' boxes."""
    import matplotlib.cbook
    from skimage import data

    hopper = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return [
        (cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (175, 70, 278, 174)),
        (hopper, (160, 125, 370, 332)),
        (cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR), (192, 120, 275, 205)),
    ]


def _face_free() -> list[np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = [
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        data.hubble_deep_field(),
        data.horse(),
        data.stereo_motorcycle()[0],
        data.brick(),
        data.gravel(),
        data.grass(),
        data.coins(),
        data.page(),
        *load_sample_images().images,
    ]
    frames = [
        cv2.cvtColor(p, cv2.COLOR_GRAY2BGR) if p.ndim == 2 else cv2.cvtColor(p, cv2.COLOR_RGB2BGR)
        for p in (np.asarray(p, dtype=np.uint8) if p.dtype != np.uint8 else p for p in photos)
    ]
    rng = np.random.default_rng(0)
    frames += [
        np.zeros((480, 640, 3), np.uint8),
        np.full((480, 640, 3), 255, np.uint8),
        np.full((480, 640, 3), 128, np.uint8),
        rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        np.repeat(np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (480, 1))[:, :, None], 3, axis=2),
    ]
    return frames


def _place(canvas: np.ndarray, photo: np.ndarray, box, face_width: int, rng) -> tuple[int, int, int, int]:
    """Scale ``photo`` so its face is ``face_width`` pixels wide, paste it at a random place; new face box."""
    scale = face_width / (box[2] - box[0])
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = min(small.shape[0], canvas.shape[0]), min(small.shape[1], canvas.shape[1])
    fx1, fy1 = box[0] * scale, box[1] * scale
    x0 = int(rng.integers(0, canvas.shape[1] - w + 1))
    y0 = int(rng.integers(0, canvas.shape[0] - h + 1))
    canvas[y0 : y0 + h, x0 : x0 + w] = small[:h, :w]
    return (round(x0 + fx1), round(y0 + fy1), round(x0 + fx1 + face_width), round(y0 + box[3] * scale))


def positive_scenes() -> list[tuple[str, np.ndarray, list]]:
    """(kind, BGR frame, true face boxes) for the real faces, as described in the module docstring."""
    rng = np.random.default_rng(0)
    portraits = _portraits()
    background = cv2.resize(_face_free()[2], (1920, 1080))
    scenes = [("original", photo, [box]) for photo, box in portraits]
    for photo, box in portraits:
        for width in (20, 28, 40, 60, 90, 140, 200):
            canvas = cv2.resize(background, (640, 480))
            scenes.append((f"640x480 face {width}px", canvas, [_place(canvas, photo, box, width, rng)]))
        for width in (24, 32, 48, 64):
            canvas = background.copy()
            scenes.append((f"1920x1080 face {width}px", canvas, [_place(canvas, photo, box, width, rng)]))
        for angle in (-30, -15, 15, 30):
            centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            turned = cv2.warpAffine(
                photo, cv2.getRotationMatrix2D(centre, angle, 1.0), photo.shape[1::-1], borderMode=cv2.BORDER_REFLECT
            )
            scenes.append((f"rotated {angle:+d}", turned, [box]))
        dark = cv2.LUT(photo, (np.linspace(0, 1, 256) ** 2.2 * 110).astype(np.uint8))
        scenes.append(("dark", dark, [box]))
    group = cv2.resize(background, (1280, 480))
    boxes = []
    for i, (photo, box) in enumerate(portraits):
        scale = 300 / photo.shape[0]
        small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        x0 = 40 + i * 420
        group[90 : 90 + small.shape[0], x0 : x0 + small.shape[1]] = small
        boxes.append(
            tuple(
                round(v) for v in (x0 + box[0] * scale, 90 + box[1] * scale, x0 + box[2] * scale, 90 + box[3] * scale)
            )
        )
    scenes.append(("group of 3", group, boxes))
    return scenes


def close_ups(folder: Path, limit: int) -> list[np.ndarray]:
    """The photos listed in ``folder``/labels.csv (every one, or every n-th so that ``limit`` remain)."""
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        names = [row["image"] for row in csv.DictReader(f)]
    if limit and limit < len(names):
        names = names[:: -(-len(names) // limit)]
    return [read_image(folder / "images" / name) for name in names]


def _large_enough(boxes: np.ndarray, min_face_size: int) -> np.ndarray:
    return boxes[np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= min_face_size]


def evaluate(detector, positives, negatives, photos, min_face_size: int) -> dict:
    found = total = false_pos = neg_false = 0
    misses = []
    for kind, frame, truth in positives:
        boxes = detector.detect(frame).boxes
        boxes = _large_enough(boxes, min_face_size)
        iou = iou_matrix(truth, boxes) if len(boxes) else np.zeros((len(truth), 0))
        hits = (iou >= 0.3).any(axis=1) if iou.size else np.zeros(len(truth), bool)
        found += int(hits.sum())
        total += len(truth)
        false_pos += int((~(iou >= 0.3).any(axis=0)).sum()) if iou.size else 0
        misses += [kind] * int((~hits).sum())
    for frame in negatives:
        boxes = detector.detect(frame).boxes
        neg_false += len(_large_enough(boxes, min_face_size))
    photo_times, photo_hits = [], 0
    for photo in photos:
        start = time.perf_counter()
        boxes = detector.detect(photo).boxes
        photo_times.append((time.perf_counter() - start) * 1000)
        photo_hits += len(_large_enough(boxes, min_face_size)) > 0
    frames = [f for kind, f, _ in positives if kind.startswith("640x480")]
    times = []
    for frame in frames * 5:
        start = time.perf_counter()
        detector.detect(frame)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "recall": f"{found}/{total}",
        "fp_on_faces": false_pos,
        "fp_on_face_free": neg_false,
        "ms_640x480": round(float(np.median(times)), 2),
        **({"close_ups": f"{photo_hits / len(photos):.1%}", "ms_close_up": round(float(np.median(photo_times)), 2)}
           if photos else {}),
        "missed": sorted(set(misses)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-face-size", type=int, default=0, help="drop smaller boxes, as the engine does")
    parser.add_argument("--yunet-model", default=None, help="also measure YuNet with this ONNX file")
    parser.add_argument("--haar", action="store_true", help="also measure OpenCV's Haar cascade (slow)")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="folder of close-ups with labels.csv")
    parser.add_argument("--photos-limit", type=int, default=0, help="use about this many of them (0: all)")
    args = parser.parse_args()
    positives, negatives = positive_scenes(), _face_free()
    photos = close_ups(args.photos, args.photos_limit) if args.photos.is_dir() else []
    print(f"CPU: {cpu_summary()}")
    print(
        f"{sum(len(t) for _, _, t in positives)} real faces in {len(positives)} frames, "
        f"{len(negatives)} face-free frames, {len(photos)} close-up photos ({args.photos.name}), "
        f"min face size {args.min_face_size}px, {args.threads} thread(s)"
    )
    configs = [
        ("blazeface", None, 640),  # the default: full range, short range scanning at 0.3, second look (detect.py)
        ("blazeface-full", None, 640),
        ("blazeface-full", 0.6, 640),  # MediaPipe's threshold
        ("blazeface-full", 0.45, 640),
        ("blazeface-full", None, None),
        ("blazeface-short", None, None),
        ("blazeface-short", 0.3, None),
    ]
    configs += [("haar", None, None)] if args.haar else []
    configs += [("yunet", None, None)] if args.yunet_model else []
    for name, threshold, tile in configs:
        detector = create_detector(
            name, score_threshold=threshold, yunet_model=args.yunet_model, threads=args.threads, tile_size=tile
        )
        label = f"{name} score>={detector.score_threshold:g}" if hasattr(detector, "score_threshold") else name
        label += f" tiles {tile}" if tile and name.startswith("blazeface") else ""
        print(f"{label:36s} {evaluate(detector, positives, negatives, photos, args.min_face_size)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
