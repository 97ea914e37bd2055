"""Face detectors behind one small interface: ``detect(bgr) -> Detections(boxes, scores, eyes)``.

Boxes are float32 ``(N, 4)`` ``(x1, y1, x2, y2)`` pixels of the input frame, scores float32 ``(N,)``, eyes
float32 ``(N, 2, 2)``: the centres (x, y) of the eye on the image's left and of the other one, NaN where a
detector finds no eyes (Haar). The engine levels the eyes before it classifies a face.

The default is Google's BlazeFace (MediaPipe face detection, Apache-2.0), converted once from the
``.tflite`` files to ONNX (see ``tools/convert_blazeface.py`` and ``assets/NOTICE``) so that it runs in
ONNX Runtime, which the classifier needs anyway: no TensorFlow, no LiteRT, no download at run time.
The anchor layout and box decoding follow MediaPipe's ``face_detection_*_range`` graph configs.
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

DETECTORS = ("auto", "blazeface", "blazeface-full", "blazeface-short", "yunet", "haar")


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
    """One BlazeFace variant: its ONNX asset, input size, SSD anchor layout and default score threshold."""

    asset: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_anchor: bool  # MediaPipe's interpolated_scale_aspect_ratio > 0 adds a second anchor per layer
    score_threshold: float


BLAZEFACE = {
    # Short range: faces within ~2 m of a selfie/webcam camera; 896 anchors.
    "short": BlazeFaceSpec("blazeface_short_range.onnx", 128, (8, 16, 16, 16), True, 0.5),
    # Full range: faces up to ~5 m away, also small faces in big photos; 2304 anchors. Threshold 0.5, not
    # MediaPipe's 0.6: 39 instead of 33 of 54 real faces, still no false one (benchmarks/detectors.py).
    "full": BlazeFaceSpec("blazeface_full_range.onnx", 192, (4,), False, 0.5),
}
# The default detector ("blazeface") takes faces at least this share of the frame's shorter side from short
# range, smaller ones from full range. Short range alone added 2 wrong boxes (a whole 139-pixel portrait
# around its 28- or 40-pixel face, 0.25 and 0.29 of the frame) on benchmarks/detectors.py's scenes; 0.3 drops
# them, and short range still finds >= 97% of lfw_expressions close-ups shrunk to 0.35 of a frame or more,
# where full range finds about 85%.
NEAR_MIN_SHARE = 0.3


def _ssd_anchor_centres(spec: BlazeFaceSpec) -> np.ndarray:
    """Anchor centres (A, 2) in [0, 1], in the model's output order (row, column, anchor).

    MediaPipe's SsdAnchorsCalculator with fixed_anchor_size: consecutive layers with the same stride
    share one grid, each layer adding one anchor (two with an interpolated scale) per cell.
    """
    centres = []
    layer = 0
    while layer < len(spec.strides):
        stride = spec.strides[layer]
        same = 0
        while layer < len(spec.strides) and spec.strides[layer] == stride:
            same += 1
            layer += 1
        per_cell = same * (2 if spec.interpolated_anchor else 1)
        grid = -(-spec.input_size // stride)
        ys, xs = np.meshgrid((np.arange(grid) + 0.5) / grid, (np.arange(grid) + 0.5) / grid, indexing="ij")
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
    16 passes. Faces whose box is smaller than ``min_share`` of the frame's shorter side are dropped.
    """

    def __init__(
        self,
        variant: str = "full",
        score_threshold: float | None = None,
        iou_threshold: float = 0.3,
        threads: int = 1,
        tile_size: int | None = 640,
        min_share: float = 0.0,
    ):
        if variant not in BLAZEFACE:
            raise ValueError(f"unknown BlazeFace variant {variant!r}; expected one of {', '.join(BLAZEFACE)}")
        self.spec = BLAZEFACE[variant]
        self.name = f"blazeface-{variant}"
        self.score_threshold = self.spec.score_threshold if score_threshold is None else float(score_threshold)
        self.iou_threshold = iou_threshold
        self.tile_size = tile_size
        self.min_share = min_share
        with resources.as_file(resources.files("emorec") / "assets" / self.spec.asset) as path:
            self._session = open_session(path, threads)
        self._input = self._session.get_inputs()[0].name
        self._anchors = _ssd_anchor_centres(self.spec)
        # Deciding on raw logits skips the sigmoid for the thousands of anchors below threshold.
        self._logit_threshold = float(np.log(self.score_threshold / (1.0 - self.score_threshold)))

    def detect(self, bgr: np.ndarray) -> Detections:
        found = self._detect_tiled(bgr)
        if self.min_share > 0:
            sides = np.maximum(found.boxes[:, 2] - found.boxes[:, 0], found.boxes[:, 3] - found.boxes[:, 1])
            found = found.take(np.flatnonzero(sides >= self.min_share * min(bgr.shape[:2])))
        return found

    def _detect_tiled(self, bgr: np.ndarray) -> Detections:
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
        size = self.spec.input_size
        # Letterbox like MediaPipe: keep the aspect ratio, centre the frame on a black square.
        scale = size / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        resized = _shrink(bgr, new_w, new_h)
        tensor = np.full((1, 3, size, size), -1.0, dtype=np.float32)
        # BGR -> RGB planes, pixels to [-1, 1] as the model was trained.
        tensor[0, :, pad_y : pad_y + new_h, pad_x : pad_x + new_w] = cv2.dnn.blobFromImage(
            resized, 1 / 127.5, mean=(127.5, 127.5, 127.5), swapRB=True
        )[0]
        regressors, logits = self._session.run(None, {self._input: tensor})
        candidates = np.flatnonzero(logits[0, :, 0] > self._logit_threshold)
        if len(candidates) == 0:
            return Detections.none()
        raw = regressors[0, candidates] / size
        anchors = self._anchors[candidates]
        centres = anchors + raw[:, :2]
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centres - half, centres + half], axis=1) * size
        boxes = (boxes - [pad_x, pad_y, pad_x, pad_y]) / scale
        # Keypoints follow the box: the first two of MediaPipe's six are the eyes (the image's left one first).
        eyes = ((anchors[:, None] + raw[:, 4:8].reshape(-1, 2, 2)) * size - [pad_x, pad_y]) / scale
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[0, candidates, 0], -100, 100)))
        keep = nms(boxes, scores, self.iou_threshold)
        boxes = np.clip(boxes[keep], 0, [width, height, width, height])
        return Detections(boxes.astype(np.float32), scores[keep].astype(np.float32), eyes[keep].astype(np.float32))


class MergedDetector:
    """Several detectors on every frame, their detections pooled and overlapping boxes merged by NMS.

    BlazeFace full range misses faces that fill most of the frame (a webcam at arm's length, a cropped
    portrait) and short range misses small ones, so the default runs both. Where both find a face their
    boxes agree (median width ratio 1.00 on close-up photos both found), so one crop geometry fits either.
    """

    def __init__(self, detectors: list[Detector], iou_threshold: float = 0.3, name: str | None = None):
        if not detectors:
            raise ValueError("MergedDetector needs at least one detector")
        self.detectors = list(detectors)
        self.iou_threshold = iou_threshold
        self.name = name or "+".join(d.name for d in self.detectors)

    def detect(self, bgr: np.ndarray) -> Detections:
        parts = [detector.detect(bgr) for detector in self.detectors]
        merged = Detections(*(np.concatenate(column) for column in zip(*parts, strict=True)))
        return merged.take(nms(merged.boxes, merged.scores, self.iou_threshold))


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


def create_detector(
    name: str | Detector = "auto",
    *,
    score_threshold: float | None = None,
    yunet_model: str | os.PathLike | None = None,
    threads: int = 1,
    tile_size: int | None = 640,
) -> Detector:
    """A detector by name (see ``DETECTORS``); a ready ``Detector`` object is returned as it is.

    ``auto`` (= ``blazeface``) runs BlazeFace full and short range and merges their boxes, chosen with
    benchmarks/detectors.py: 39 of 54 real faces, no false one on 18 face-free photos and frames, and a
    face in 98.1% of the lfw_expressions close-ups. Full range alone finds the same 39 but only 18.7% of
    the close-ups; short range alone 27 (it misses faces under ~60 px in 640x480) and adds 2 wrong boxes;
    Haar 24 with 4 false faces, in 440 ms. Running both costs short range's ~2 ms on top of full range's ~4.
    """
    if not isinstance(name, str):
        return name
    key = name.strip().lower()
    if key in ("auto", "blazeface"):
        full = BlazeFaceDetector("full", score_threshold, threads=threads, tile_size=tile_size)
        # Short range keeps only faces of at least NEAR_MIN_SHARE of the frame: smaller ones are full range's.
        short = BlazeFaceDetector("short", score_threshold, threads=threads, tile_size=None, min_share=NEAR_MIN_SHARE)
        return MergedDetector([full, short], name="blazeface")
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
