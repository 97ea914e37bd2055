"""How should a detector box be cropped so that the classifier sees a FER2013-like face?

FER2013 PublicTest faces (never PrivateTest) are enlarged into 640x480 photos; the full pipeline's
accuracy for several crop geometries is compared with classifying the original 48x48 images directly.
Also printed: the geometry that maps each detected box exactly onto the pasted face (model-free).

    python benchmarks/crop_geometry.py [--n 3589] [--detector auto] [--model path.onnx]
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
from scenes import backgrounds, public_test_sample, random_scene, scene_parser

from emorec.engine import CropGeometry, EmotionRecognizer, crop_faces
from emorec.track import iou_matrix


def main() -> int:
    parser = scene_parser(__doc__)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    faces, labels = public_test_sample(args, rng)
    rec = EmotionRecognizer(model=args.model, detector=args.detector, max_faces=1)
    photos = backgrounds()

    scales = (0.9, 1.0, 1.1, 1.2, 1.3)
    shifts = (-0.1, -0.05, 0.0, 0.05, 0.1)
    geometries = [CropGeometry(s, d) for s, d in itertools.product(scales, shifts)]
    crops = {g: [] for g in geometries}
    found, exact_scale, exact_shift = [], [], []
    for face in faces:
        frame, (truth,) = random_scene(rng, [face], photos)
        boxes = rec.detector.detect(frame).boxes
        hit = len(boxes) > 0 and iou_matrix(boxes, [truth]).max() >= 0.3
        found.append(hit)
        if not hit:
            continue
        box = boxes[int(iou_matrix(boxes, [truth])[:, 0].argmax())]
        side = max(box[2] - box[0], box[3] - box[1])
        exact_scale.append((truth[2] - truth[0]) / side)
        exact_shift.append(((truth[1] + truth[3]) / 2 - (box[1] + box[3]) / 2) / (box[3] - box[1]))
        for g in geometries:
            crops[g].append(crop_faces(frame, box[None], g)[0])
    found = np.array(found)
    direct = rec.classify(faces).argmax(1) == labels
    print(
        f"model {rec.model_info['name']} ({rec.model_info['metadata'].get('note', '')}), "
        f"detector {rec.detector.name}, {len(faces)} PublicTest faces"
    )
    print(
        f"detected: {found.mean():.1%}; direct 48x48 accuracy on all {direct.mean():.2%}, "
        f"on the detected {direct[found].mean():.2%}"
    )
    print(
        f"exact mapping box -> pasted face: scale median {np.median(exact_scale):.3f} "
        f"(IQR {np.percentile(exact_scale, 25):.3f}-{np.percentile(exact_scale, 75):.3f}), shift_y median "
        f"{np.median(exact_shift):+.3f} (IQR {np.percentile(exact_shift, 25):+.3f}-"
        f"{np.percentile(exact_shift, 75):+.3f})"
    )
    print("pipeline accuracy on the detected faces (rows: scale, columns: shift_y)")
    print("scale  " + "  ".join(f"{d:+6.2f}" for d in shifts))
    for s in scales:
        row = []
        for d in shifts:
            g = CropGeometry(s, d)
            row.append((rec.classify(np.stack(crops[g])).argmax(1) == labels[found]).mean())
        print(f"{s:5.2f}  " + "  ".join(f"{a:6.2%}" for a in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
