"""Does levelling the eyes (``CropGeometry.level_eyes``) help the engine read tilted heads?

FER2013 PublicTest faces (never PrivateTest) are turned by a random angle in +-``--max-roll`` degrees,
enlarged into 640x480 photos and run through the detector; each face it finds is cropped with and without
levelling and classified. Accuracy is printed by how far the face was turned, beside that of the same
faces classified upright as 48x48 images; also how far the detector's eye line is from the turn.

    python benchmarks/head_roll.py [--n 3589] [--max-roll 40] [--detector auto] [--model path.onnx]
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
from scenes import backgrounds, public_test_sample, random_scene, scene_parser

from emorec.engine import CropGeometry, EmotionRecognizer, crop_faces, roll_degrees
from emorec.track import iou_matrix


def turned(face48: np.ndarray, degrees: float) -> np.ndarray:
    """The face turned counter-clockwise by ``degrees`` about its centre, edges repeated into the corners."""
    turn = cv2.getRotationMatrix2D((23.5, 23.5), degrees, 1.0)
    return cv2.warpAffine(face48, turn, (48, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def main() -> int:
    parser = scene_parser(__doc__)
    parser.add_argument("--max-roll", type=float, default=40.0, help="largest turn in degrees (default 40)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    faces, labels = public_test_sample(args, rng)
    rec = EmotionRecognizer(model=args.model, detector=args.detector, max_faces=1)
    photos = backgrounds()
    rolls = rng.uniform(-args.max_roll, args.max_roll, len(faces))

    hits, plain, levelled, roll_errors = [], [], [], []
    for face, roll in zip(faces, rolls, strict=True):
        frame, (truth,) = random_scene(rng, [turned(face, roll)], photos)
        found = rec.detector.detect(frame)
        overlap = iou_matrix(found.boxes, [truth])[:, 0] if len(found.boxes) else np.zeros(0)
        hits.append(len(overlap) > 0 and overlap.max() >= 0.3)
        if not hits[-1]:
            continue
        best = found.take(np.array([int(overlap.argmax())]))
        plain.append(crop_faces(frame, best.boxes, CropGeometry(level_eyes=False))[0])
        levelled.append(crop_faces(frame, best.boxes, CropGeometry(), best.eyes)[0])
        roll_errors.append(roll_degrees(best.eyes[0]) - roll)
    hits = np.array(hits)
    truth, rolls = labels[hits], np.abs(rolls[hits])
    right = {
        "upright 48x48": rec.classify(faces[hits]).argmax(1) == truth,
        "not levelled": rec.classify(np.stack(plain)).argmax(1) == truth,
        "levelled": rec.classify(np.stack(levelled)).argmax(1) == truth,
    }
    errors = np.abs(roll_errors)
    print(f"model {rec.model_info['name']}, detector {rec.detector.name}, {len(faces)} PublicTest faces")
    print(
        f"detected {hits.mean():.1%}; eye line minus applied turn: median |error| {np.median(errors):.1f} deg, "
        f"90th percentile {np.percentile(errors, 90):.1f} deg"
    )
    bins = [(0, 10), (10, 20), (20, args.max_roll)]
    print("accuracy on the detected faces, by |turn| in degrees")
    print(f"{'':14}  {'all':>7}" + "".join(f"  {f'{lo:g}-{hi:g}':>7}" for lo, hi in bins))
    print(f"{'faces':14}  {len(truth):7d}" + "".join(f"  {((rolls >= lo) & (rolls < hi)).sum():7d}" for lo, hi in bins))
    for name, ok in right.items():
        cells = "".join(f"  {ok[(rolls >= lo) & (rolls < hi)].mean():7.2%}" for lo, hi in bins)
        print(f"{name:14}  {ok.mean():7.2%}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
