"""The one recognition engine: detect faces -> crop like FER2013 -> classify in one batch -> smooth over time.

The CLI, the web app and the desktop app all call :class:`EmotionRecognizer`; none re-implements
loading, detection or preprocessing. Inference runs in ONNX Runtime only (no torch).
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from emorec.annotators import annotate as draw_faces
from emorec.calibration import AutoCalibrator, Baseline, BaselineError, LiveCalibration, apply_baseline
from emorec.classifier import EmotionClassifier, model_file, read_metadata
from emorec.config import CropGeometry, EngineConfig
from emorec.detect import Detections, create_detector
from emorec.errors import ConfigError, InputError, ModelFileError
from emorec.follow import FaceFollower
from emorec.labels import EMOTIONS, FACE_SIZE
from emorec.sources import load_frame, to_bgr
from emorec.track import FaceTracker
from emorec.types import Face, FrameResult, face_sizes

if TYPE_CHECKING:
    from emorec.stream import FrameStream

__all__ = ["BaselineError", "CropGeometry", "EmotionRecognizer", "EngineConfig", "InputError", "crop_faces"]


# Smaller tilts are left alone: the classifier reads them nearly as well as upright faces (-1.2 points at
# 10 degrees on PublicTest), and BlazeFace's eye line is itself off by a median 6 degrees on the small
# blurry faces of benchmarks/head_roll.py, where levelling faces turned by less than 10 degrees cost 1.5
# points. Heads rarely roll further than the maximum; a steeper eye line is more likely a keypoint error.
MIN_ROLL_DEGREES = 10.0
MAX_ROLL_DEGREES = 45.0
# A square turned by up to 45 degrees fits in one sqrt(2) times larger: crop that, turn it, keep the middle.
_TURN_SIZE = int(np.ceil(FACE_SIZE * np.sqrt(2))) // 2 * 2


def roll_degrees(eyes: np.ndarray) -> float:
    """The angle of the line through the eyes ((x, y), (x, y)), counter-clockwise on the image, within
    +-MAX_ROLL_DEGREES; 0 where the eyes are unknown (NaN)."""
    (x1, y1), (x2, y2) = np.asarray(eyes, dtype=np.float64)
    if not np.isfinite([x1, y1, x2, y2]).all() or (x1, y1) == (x2, y2):
        return 0.0
    angle = np.degrees(np.arctan2(y1 - y2, x2 - x1))
    angle = (angle + 90.0) % 180.0 - 90.0  # which eye comes first does not matter
    return float(np.clip(angle, -MAX_ROLL_DEGREES, MAX_ROLL_DEGREES))


def _square(bgr: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """The grayscale square of ``side`` pixels centred on (cx, cy), shrunk to ``size`` pixels; parts outside
    the frame repeat the edge pixels, so faces at the border keep their proportions."""
    height, width = bgr.shape[:2]
    left, top = round(cx - side / 2), round(cy - side / 2)
    right, bottom = left + max(1, round(side)), top + max(1, round(side))
    inside = bgr[max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
    if inside.size == 0:  # a box entirely outside the frame: nothing to see
        return np.zeros((size, size), np.uint8)
    gray = cv2.cvtColor(inside, cv2.COLOR_BGR2GRAY)
    pads = (max(-top, 0), max(bottom - height, 0), max(-left, 0), max(right - width, 0))
    if any(pads):
        gray = cv2.copyMakeBorder(gray, *pads, cv2.BORDER_REPLICATE)
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


def crop_faces(
    bgr: np.ndarray, boxes: np.ndarray, geometry: CropGeometry | None = None, eyes: np.ndarray | None = None
) -> np.ndarray:
    """Grayscale 48x48 uint8 crops (N, 48, 48) of ``boxes`` (N, 4) x1y1x2y2, levelled by ``eyes`` (N, 2, 2)
    where given (see ``emorec.detect.Detections``) and ``geometry.level_eyes`` asks for it (default:
    ``CropGeometry()``)."""
    geometry = geometry or CropGeometry()
    crops = np.empty((len(boxes), FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=np.float32)):
        side = max(x2 - x1, y2 - y1) * geometry.scale
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + geometry.shift_y * (y2 - y1)
        angle = roll_degrees(eyes[i]) if eyes is not None and geometry.level_eyes else 0.0
        if abs(angle) < MIN_ROLL_DEGREES:
            crops[i] = _square(bgr, cx, cy, side, FACE_SIZE)
            continue
        # Shrinking first (INTER_AREA, as for upright faces) and turning at 68 pixels avoids the aliasing
        # of warping a large face straight down to 48 pixels.
        wide = _square(bgr, cx, cy, side * _TURN_SIZE / FACE_SIZE, _TURN_SIZE)
        middle = (_TURN_SIZE - 1) / 2
        turn = cv2.getRotationMatrix2D((middle, middle), -angle, 1.0)
        turned = cv2.warpAffine(
            wide, turn, (_TURN_SIZE, _TURN_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        margin = (_TURN_SIZE - FACE_SIZE) // 2
        crops[i] = turned[margin : margin + FACE_SIZE, margin : margin + FACE_SIZE]
    return crops


def int8_twin(float_path: Path) -> Path | None:
    """``<name>_int8.onnx`` beside a float model, if tools/quantize_classifier.py made it from this very file."""
    twin = float_path.with_name(float_path.stem + "_int8.onnx")
    if not twin.is_file() or not float_path.is_file():
        return None
    made_from = read_metadata(twin).get("quantized", {}).get("source_sha256")
    return twin if made_from == hashlib.sha256(float_path.read_bytes()).hexdigest() else None


class EmotionRecognizer:
    """Faces and their emotions in images and video frames.

    ``rec.process(frame)`` returns a :class:`FrameResult` (faces, per-stage timings, the decoded frame);
    ``rec(frame)`` just the faces. Faces are tracked and smoothed over time only in streams: ``rec.stream()``
    is one (:class:`emorec.stream.FrameStream`) to feed frames to, ``rec.stream(source)`` one that runs a
    file, folder, camera or URL. Streams share the loaded models and may run concurrently in different
    threads. ``rec.calibrate(images)`` makes a person's :class:`~emorec.calibration.Baseline` from photos of
    their neutral face; ``baseline=`` applies it (``process``, ``__call__``, ``stream``), a stream's
    Calibrate control captures one live (``stream.calibration``), and streams can learn one per track
    (``auto_calibrate``).

    Built from one :class:`~emorec.config.EngineConfig` (``rec.config``; every setting is documented there),
    with any of its settings given as keywords on top: ``EmotionRecognizer(model="emonet_wide")``,
    ``EmotionRecognizer(config, max_faces=1)``. ``detector`` may also be a ready ``Detector`` object.
    Bad settings raise :class:`~emorec.errors.ConfigError`, a missing or unusable model
    :class:`~emorec.errors.ModelFileError`, a misspelt model name :class:`~emorec.errors.UnknownModelError`.
    """

    def __init__(self, config: EngineConfig | None = None, /, **settings):
        if config is not None and not isinstance(config, EngineConfig):
            raise ConfigError(f"expected an EngineConfig, got {type(config).__name__} "
                              "(give settings as keywords: EmotionRecognizer(model=...))")
        detector = settings.pop("detector", None)
        ready_detector = detector if detector is not None and not isinstance(detector, str) else None
        if isinstance(detector, str):
            settings["detector"] = detector
        config = (config or EngineConfig()).replace(**settings)
        if ready_detector is not None:
            config = config.replace(detector=ready_detector.name)
        self.config = config
        float_path = model_file(config.model)
        twin = int8_twin(float_path) if config.quantized is not False else None
        if config.quantized and twin is None:
            raise ModelFileError(f"no up-to-date int8 twin of {float_path}; make it with tools/quantize_classifier.py")
        self.classifier = EmotionClassifier(twin or float_path, threads=config.threads)
        self.quantized = twin is not None
        self.detector = ready_detector or create_detector(
            config.detector, score_threshold=config.min_detection_score, yunet_model=config.yunet_model,
            threads=config.threads,
        )
        self._tracker: FaceTracker | None = None  # only streams track
        self._follower: FaceFollower | None = None  # and follow faces between detections
        self.baseline: Baseline | None = None  # applied to every face unless a call passes its own
        # Streams only: (track id, baseline) of the person the Calibrate control calibrated, and that control.
        self.person_baseline: tuple[int | None, Baseline] | None = None
        self.calibration: LiveCalibration | None = None
        self._auto: AutoCalibrator | None = None
        meta = self.classifier.metadata
        # The int8 twin reads faces as its float model does, so both share the float file's identity.
        self.model_sha256: str = meta.get("quantized", {}).get("source_sha256") or hashlib.sha256(
            self.classifier.path.read_bytes()
        ).hexdigest()

    @property
    def model_info(self) -> dict:
        """Classifier name, classes, file, whether it is the int8 twin, ONNX metadata, and the detector's name."""
        meta = self.classifier.metadata
        return {
            "name": meta.get("model", self.classifier.path.stem),
            "classes": list(EMOTIONS),
            "path": str(self.classifier.path),
            "quantized": self.quantized,
            "sha256": self.model_sha256,
            "metadata": meta,
            "detector": self.detector.name,
        }

    def _stream_engine(
        self,
        *,
        smoothing: bool | None = None,
        smoothing_alpha: float | None = None,
        baseline: Baseline | None = None,
        auto_calibrate: bool | AutoCalibrator = False,
        detect_every: int | None = None,
    ) -> EmotionRecognizer:
        """The engine of one stream (:class:`~emorec.stream.FrameStream` holds it), sharing this one's models,
        with its own tracker: faces get stable track ids, and with ``smoothing`` their probabilities are
        averaged (``smoothing_alpha``: weight of the newest frame).

        ``detect_every``: the detector runs on every N-th frame, and at once when a face cannot be followed
        or on :meth:`redetect`; in between, faces are followed by optical flow (see :mod:`emorec.follow`).
        1 runs it on every frame. Raises :class:`~emorec.errors.ConfigError` for anything but a whole
        number >= 1. ``smoothing``, ``smoothing_alpha`` and ``detect_every`` default to ``rec.config``'s.

        ``baseline`` calibrates every face of the stream to one person (settable later as
        ``stream.baseline``); ``auto_calibrate`` (True, or a configured :class:`AutoCalibrator`) lets each
        track without such a baseline learn its own from its frames."""
        stream = copy.copy(self)
        stream.config = self.config.replace(**{name: value for name, value in (
            ("smoothing", smoothing), ("smoothing_alpha", smoothing_alpha), ("detect_every", detect_every))
            if value is not None})
        follower = FaceFollower(stream.config.detect_every)
        stream._tracker = FaceTracker(alpha=stream.config.smoothing_alpha if stream.config.smoothing else 1.0)
        stream._follower = follower
        stream.baseline = self.check_baseline(baseline) if baseline is not None else self.baseline
        stream.person_baseline = None
        stream.calibration = LiveCalibration(stream)
        stream.auto_calibrate = auto_calibrate
        return stream

    @property
    def auto_calibrate(self) -> bool:
        """Whether this stream learns a baseline per track (only streams can: it needs track ids)."""
        return self._auto is not None

    @auto_calibrate.setter
    def auto_calibrate(self, value: bool | AutoCalibrator) -> None:
        if isinstance(value, AutoCalibrator):
            if value.model != self.model_sha256:
                raise BaselineError("the AutoCalibrator was made for another classifier model")
            self._auto = value
        elif value and self._tracker is None:
            raise ConfigError("auto-calibration learns per track: use it on a stream, rec.stream(auto_calibrate=True)")
        else:
            self._auto = AutoCalibrator(self.model_sha256, self.model_info["name"]) if value else None

    def stream(self, source: str | int | os.PathLike | None = None, **options) -> FrameStream:
        """A stream with its own tracking, following, smoothing and calibration: fed frame by frame
        (``stream.process(frame)``), or, given an image, folder, video file, webcam index or stream URL, an
        iterable of :class:`FrameResult` that keep their frame. ``options`` are
        :class:`~emorec.stream.FrameStream`'s (smoothing, smoothing_alpha, max_frames, realtime, drop_late,
        baseline, auto_calibrate, detect_every)."""
        from emorec.stream import FrameStream

        return FrameStream(self, source, **options)

    def reset(self) -> None:
        """Forget the tracks of this stream (e.g. when its source changes), and what they taught the
        auto-calibration; a baseline set on the stream stays."""
        if self._tracker is not None:
            self._tracker.reset()
        self.redetect()
        if self._auto is not None:
            self._auto.reset()

    def redetect(self) -> None:
        """Run the full detector on this stream's next frame, whatever its schedule (a cut the caller knows
        of; each photo of a folder); tracks are kept."""
        if self._follower is not None:
            self._follower.reset()

    def check_baseline(self, baseline: Baseline) -> Baseline:
        """``baseline`` if it was made with this engine's classifier; :class:`BaselineError` otherwise, since
        another model's probabilities mean something else and must not be applied silently."""
        if not isinstance(baseline, Baseline):
            raise BaselineError(f"expected an emorec.calibration.Baseline, got {type(baseline).__name__}")
        if baseline.model != self.model_sha256:
            made_with = f"{baseline.model_name} " if baseline.model_name else ""
            raise BaselineError(
                f"this baseline was made with another classifier ({made_with}sha256 {baseline.model[:12]}...), "
                f"not {self.model_info['name']} (sha256 {self.model_sha256[:12]}...): calibrate again"
            )
        return baseline

    def baseline_from_scores(self, probs: np.ndarray, **options) -> Baseline:
        """The baseline of neutral faces this engine read as ``probs`` (N, 7) (e.g. the ``raw_scores`` of a
        few seconds of a live stream); ``options``: strength, neutral_margin, notes."""
        return Baseline.from_scores(probs, self.model_sha256, self.model_info["name"], **options)

    def calibrate(
        self, images: Iterable[str | os.PathLike | np.ndarray], *, rgb: bool = False, **options
    ) -> Baseline:
        """A person's baseline from a few images (paths or arrays) of their neutral face.

        The largest face of each image is used; images without a face, or that cannot be read, are skipped,
        and the baseline's ``notes`` say which (and which had several faces). Raises :class:`BaselineError`
        when no image gives a face. ``options``: strength, neutral_margin (see emorec.calibration).
        """
        crops, no_face, unreadable, crowded, total = [], [], [], [], 0
        for i, image in enumerate(images):
            total += 1
            name = str(image) if isinstance(image, (str, os.PathLike)) else f"image {i + 1}"
            try:
                bgr = load_frame(image, rgb)
            except InputError as exc:
                unreadable.append(str(exc))
                continue
            found = self._detect(bgr)
            if not len(found.boxes):
                no_face.append(name)
                continue
            if len(found.boxes) > 1:
                crowded.append(name)
            crops.append(crop_faces(bgr, found.boxes[:1], self.config.crop, found.eyes[:1])[0])
        notes = [f"skipped {len(no_face)} image(s) without a face: {', '.join(no_face)}"] if no_face else []
        notes += [f"skipped {problem}" for problem in unreadable]
        if crowded:
            notes.append(f"{len(crowded)} image(s) had several faces, the largest was used: {', '.join(crowded)}")
        if not crops:
            reason = "; ".join(notes) if notes else "no images given"
            raise BaselineError(f"no face to calibrate with in {total} image(s) ({reason})")
        if len(crops) < 3:
            notes.append(f"only {len(crops)} face(s): a baseline from 3 or more neutral photos is steadier")
        return self.baseline_from_scores(self.classifier.predict(np.stack(crops)), notes=tuple(notes), **options)

    def classify(self, faces_48: np.ndarray) -> np.ndarray:
        """Probabilities (N, 7) for grayscale uint8 faces (N, 48, 48) (``EmotionClassifier.predict``)."""
        faces_48 = np.asarray(faces_48)
        if faces_48.dtype != np.uint8:
            raise InputError(f"expected uint8 faces (pixels 0-255), got dtype {faces_48.dtype}")
        return self.classifier.predict(faces_48)

    def __call__(
        self, frame: str | os.PathLike | np.ndarray, *, rgb: bool = False, baseline: Baseline | None = None
    ) -> list[Face]:
        return self.process(frame, rgb=rgb, baseline=baseline).faces

    def process(
        self,
        frame: str | os.PathLike | np.ndarray,
        *,
        frame_index: int | None = None,
        rgb: bool = False,
        baseline: Baseline | None = None,
        time_s: float | None = None,
    ) -> FrameResult:
        """Detect, crop, classify (and track) the faces of an image path or a uint8 array. A stream's
        recognizer runs the detector every ``detect_every`` frames and follows its faces in between.

        Arrays are BGR as OpenCV gives them, or RGB with ``rgb=True``; gray and 4-channel images work too.
        ``baseline`` (else the stream's ``baseline``) calibrates every face to one person; ``time_s`` is the
        frame's time for auto-calibration (default: the clock). Raises :class:`InputError` for anything
        that is not a usable image, :class:`BaselineError` for a baseline of another model.
        """
        timings = {}
        start = time.perf_counter()
        bgr = load_frame(frame, rgb)
        timings["decode"] = _ms_since(start)

        if self._follower is None:  # stills: the full detector, always
            mark = time.perf_counter()
            found = self._detect(bgr)
            timings["detect"] = _ms_since(mark)
        else:
            found, spent = self._follower.faces(bgr, self._detect)
            found = self._filter(found, bgr.shape)  # faces carried over a detection still obey max_faces
            timings.update(spent)
        boxes, scores = found.boxes, found.scores

        mark = time.perf_counter()
        faces_48 = crop_faces(bgr, boxes, self.config.crop, found.eyes)
        timings["crop"] = _ms_since(mark)

        mark = time.perf_counter()
        probs = self.classifier.predict(faces_48)
        timings["classify"] = _ms_since(mark)

        track_ids: list[int | None] = [None] * len(boxes)
        if self._tracker is not None:
            mark = time.perf_counter()
            track_ids, probs = self._tracker.update(boxes, probs)
            timings["track"] = _ms_since(mark)

        baselines = self._baselines(baseline, track_ids, probs, time_s)
        faces = [
            Face(tuple(box), p, float(score), track_id)
            if base is None
            else Face(tuple(box), apply_baseline(p, base), float(score), track_id, raw_scores=p)
            for box, p, score, track_id, base in zip(
                boxes.round().astype(int), probs, scores, track_ids, baselines, strict=True
            )
        ]
        if self.calibration is not None and self.calibration.capturing:
            # The stream's Calibrate control hears every frame the stream reads, whoever feeds it.
            self.calibration.observe(time.monotonic() if time_s is None else time_s, faces)
        timings["total"] = _ms_since(start)
        return FrameResult(faces, (bgr.shape[1], bgr.shape[0]), timings, frame_index, time_s, image=bgr)

    def annotate(
        self, frame: FrameResult | np.ndarray, faces: list[Face] | None = None, *, rgb: bool = False,
        bars: bool = False,
    ) -> np.ndarray:
        """A BGR copy of the frame with each face's box, emotion and confidence (and probability bars).

        Pass the :class:`FrameResult` (its own frame and faces, decoded once by ``process``), or an array
        with the faces to draw on it.
        """
        if isinstance(frame, FrameResult):
            if frame.image is None:
                raise InputError("this FrameResult has no image to draw on")
            return draw_faces(frame.image.copy(), frame.faces if faces is None else faces, bars=bars)
        if not isinstance(frame, np.ndarray):
            raise InputError(f"annotate takes a FrameResult or an image array, got {type(frame).__name__}")
        return draw_faces(to_bgr(frame, rgb).copy(), faces or [], bars=bars)

    def _baselines(
        self, baseline: Baseline | None, track_ids: list[int | None], probs: np.ndarray, time_s: float | None
    ) -> list[Baseline | None]:
        """Each face's baseline: the call's, else the stream's (one person's file, for every face), else the
        person's whom the stream's Calibrate control calibrated (their track only), else its track's own
        (auto-calibration)."""
        baseline = baseline if baseline is not None else self.baseline
        if baseline is not None:
            return [self.check_baseline(baseline)] * len(track_ids)
        if self._auto is None or not track_ids:
            found: list[Baseline | None] = [None] * len(track_ids)
        else:  # the tracker's smoothed probabilities: the median over seconds does not need single frames
            found = self._auto.update(track_ids, probs, time.monotonic() if time_s is None else time_s)
        if self.person_baseline is not None:
            person, personal = self.person_baseline
            found = [personal if track == person else base for track, base in zip(track_ids, found, strict=True)]
        return found

    def _detect(self, bgr: np.ndarray) -> Detections:
        return self._filter(self.detector.detect(bgr), bgr.shape)

    def _filter(self, found: Detections, shape: tuple[int, ...]) -> Detections:
        """Drop boxes below ``min_face_size`` and keep the ``max_faces`` largest, largest first (by
        :func:`emorec.types.face_sizes`, the one measure of a face's size)."""
        boxes = np.clip(np.round(found.boxes), 0, [shape[1], shape[0], shape[1], shape[0]])
        sides = face_sizes(boxes)
        keep = np.flatnonzero(sides >= max(self.config.min_face_size, 1))
        keep = keep[np.argsort(-sides[keep], kind="stable")]
        if self.config.max_faces is not None:
            keep = keep[: self.config.max_faces]
        return found._replace(boxes=boxes).take(keep)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
