"""Private mode: the engine's pipeline in the visitor's browser, and the static site that carries it.

The live page's private mode (``web/static/private.js``) runs the shipped ONNX models in ONNX Runtime Web
(WebAssembly), so no camera frame leaves the device. Its numbers (anchors, thresholds, crop geometry,
tracking, smoothing, calibration) are not written into the JavaScript: :func:`pipeline_config` reads them
here from the modules that define them for Python, and the page fetches them as ``private/pipeline.json``
(served by the web app, written by ``emorec export-web``). The classifier graph holds its own preprocessing.

In the browser the default detector runs whole (BlazeFace full range's and short range's scans, merged, with
the second look at unsure faces) on frames up to ``2 * TILE_SIZE`` pixels long (longer frames are shrunk to
that, where Python's full-range scan sees them finer). Other detectors run only on servers. Like a Python
stream, the live page runs it on every ``detect_every``-th frame and follows faces in between; where Python
follows corner points by optical flow (``emorec.follow``), the page, which has no OpenCV, moves each face's box
by a block-matching search for the face's look at detection around where it was (shift only: a followed box
keeps its size), and checks the result with the follower's own test (``min_similarity``) before trusting it.

ONNX Runtime Web is not in this repository: ``make web-ort`` installs the pinned ``onnxruntime-web`` from
npm and copies the files listed in ``ORT_WEB_FILES`` into ``web/static/ort/`` (see docs/private_mode.md).
"""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

from emorec.calibration import _FLOOR, DEFAULT_NEUTRAL_MARGIN, DEFAULT_STRENGTH, NeutralCapture
from emorec.config import EngineConfig
from emorec.errors import EmorecError, RecordingError
from emorec.labels import EMOTION_COLORS_BGR, EMOTIONS, FACE_SIZE

# What the page needs of onnxruntime-web's dist/ folder: the WebAssembly-only build (no WebGPU/WebGL), its
# loader and the SIMD binary (threaded where the page is cross-origin isolated, one thread otherwise).
ORT_WEB_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm", "LICENSE")
ORT_WEB_MISSING = ("ONNX Runtime Web is not installed: run `make web-ort` in the emorec checkout (npm install of "
                   "the pinned onnxruntime-web, copied into src/emorec/web/static/ort/)")
# The detectors the page can run: the default cascade.
BROWSER_DETECTORS = ("auto", "blazeface")
# The page's follower (block matching, where Python's follows corner points by optical flow): each face is
# matched on the frame shrunk by a whole factor so that it spans at most FOLLOW_FACE_PIXELS, which bounds the
# search's cost whatever the face's size, searched up to FOLLOW_REACH face sides from where its last move
# would take it (Python's flow follows moves of about half a face a frame).
FOLLOW_FACE_PIXELS = 32
FOLLOW_REACH = 0.5
# The page's own files; the static site adds index.html (the live page) and private/ (models, runtime, numbers).
PAGE_FILES = ("live.js", "private.js", "calibrate.js", "style.css", "favicon.svg")


def ort_web_dir() -> Path | None:
    """The folder holding ``ORT_WEB_FILES`` (``web/static/ort`` of the package), or None when incomplete."""
    folder = Path(str(resources.files("emorec") / "web" / "static" / "ort"))
    return folder if all((folder / name).is_file() for name in ORT_WEB_FILES) else None


def unsupported_reason(config: EngineConfig) -> str | None:
    """Why the page cannot run ``config``'s pipeline itself (it then sends frames to the server), or None."""
    if config.detector not in BROWSER_DETECTORS:
        return f"the detector {config.detector!r} runs only on the server"
    if ort_web_dir() is None:
        return "this server was installed without ONNX Runtime Web (make web-ort)"
    return None


def model_files(classifier: Path) -> dict[str, Path]:
    """The ONNX files the page loads, by the names it fetches them under: the ``classifier`` file the engine
    runs (its int8 twin, where the engine runs that) and the two BlazeFace models."""
    from emorec.detect import BLAZEFACE

    assets = Path(str(resources.files("emorec") / "assets"))
    return {"classifier.onnx": classifier, **{spec.asset: assets / spec.asset for spec in BLAZEFACE.values()}}


def pipeline_config(config: EngineConfig, model_name: str, model_sha256: str) -> dict:
    """Every number the page's pipeline uses, from where Python defines it (see the module docstring)."""
    from emorec import detect, engine, follow, track
    from emorec.detect import BLAZEFACE

    def blazeface(variant: str, threshold: float | None, scan_scale: float | None = None) -> dict:
        spec = BLAZEFACE[variant]
        scan = {"scale": scan_scale, "stride": spec.scan_stride, "max_side": spec.scan_max_side,
                "min_face": spec.scan_min_face, "max_face": spec.scan_max_face}
        return {"model": spec.asset, "input_size": spec.input_size, "strides": list(spec.strides),
                "interpolated_anchor": spec.interpolated_anchor,
                "score_threshold": spec.score_threshold if threshold is None else threshold,
                "scan": scan if scan_scale is not None else None}

    proposal, floor = detect.full_range_thresholds(config.min_detection_score)
    tracker = track.FaceTracker()
    follower = follow.FaceFollower(config.detect_every)
    return {
        "format": "emorec-browser-pipeline",
        "model": {"name": model_name, "sha256": model_sha256, "file": "classifier.onnx"},
        "emotions": list(EMOTIONS),
        "detector": {
            # As create_detector builds the default: full range proposes faces from a lower score than its own.
            "full": blazeface("full", proposal, detect.FULL_SCAN_SCALE),
            "short": blazeface("short", config.min_detection_score, detect.SCAN_SCALE),
            "iou_threshold": 0.3,  # BlazeFaceDetector's and MergedDetector's
            "max_side": 2 * detect.TILE_SIZE,
            "check": {"face": detect.CHECK_FACE, "sure": detect.CHECK_SURE, "overlap": detect.CHECK_OVERLAP,
                      "floor": floor,
                      "looks": [blazeface("short", detect.CHECK_SHORT_THRESHOLD),
                                blazeface("full", detect.CHECK_FULL_THRESHOLD)]},
        },
        "min_face_size": config.min_face_size,
        "max_faces": config.max_faces,
        "crop": {"scale": config.crop.scale, "shift_y": config.crop.shift_y, "level_eyes": config.crop.level_eyes,
                 "min_roll": engine.MIN_ROLL_DEGREES, "max_roll": engine.MAX_ROLL_DEGREES,
                 "face_size": FACE_SIZE, "turn_size": engine._TURN_SIZE},
        "tracker": {"alpha": config.smoothing_alpha if config.smoothing else 1.0,
                    "iou_threshold": tracker.iou_threshold, "max_missed": tracker.max_missed,
                    "reach": tracker.reach, "coast": track._COAST, "sizes": track._SIZES},
        "follow": {"detect_every": follower.detect_every, "min_similarity": follower.min_similarity,
                   "template": follow._TEMPLATE, "carry_overlap": follow.CARRY_OVERLAP,
                   "face_pixels": FOLLOW_FACE_PIXELS, "reach": FOLLOW_REACH},
        "calibration": {"floor": _FLOOR, "strength": DEFAULT_STRENGTH, "neutral_margin": DEFAULT_NEUTRAL_MARGIN,
                        "min_faces": NeutralCapture(1.0).min_faces},
    }


def emotion_colors() -> dict[str, str]:
    """Each emotion's display colour as CSS hex (labels.py holds them as BGR for OpenCV)."""
    return {name: "#{2:02x}{1:02x}{0:02x}".format(*EMOTION_COLORS_BGR[name]) for name in EMOTIONS}


def export_site(folder: str | os.PathLike, config: EngineConfig | None = None) -> int:
    """Write the live page in private mode as a static site into ``folder`` (new or empty); returns its bytes.

    Any static host serves it (``python -m http.server``); once loaded it needs no network. Raises
    :class:`RecordingError` for a folder that is a file, not empty or not writable, :class:`EmorecError` when
    ONNX Runtime Web is missing or the config's detector runs only on servers.
    """
    from jinja2 import Environment, FileSystemLoader

    from emorec.engine import EmotionRecognizer

    config = config or EngineConfig()
    if config.detector not in BROWSER_DETECTORS:
        raise EmorecError(f"the detector {config.detector!r} runs only on servers; the page runs "
                          f"{' or '.join(BROWSER_DETECTORS)}")
    ort_dir = ort_web_dir()
    if ort_dir is None:
        raise EmorecError(ORT_WEB_MISSING)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RecordingError(f"{folder} is a file: give a new or empty folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise RecordingError(f"{folder} is not empty: give a new or empty folder (nothing is overwritten)")
    try:
        (folder / "private" / "ort").mkdir(parents=True, exist_ok=True)
        (folder / "static").mkdir(exist_ok=True)
    except OSError as exc:
        raise RecordingError(f"{folder}: cannot write there ({exc.strerror})") from None

    rec = EmotionRecognizer(config)  # the model the engine would run, and its identity for baselines
    web = Path(str(resources.files("emorec") / "web"))
    env = Environment(loader=FileSystemLoader(web / "templates"), autoescape=True)
    page = env.get_template("live.html").render(
        url_for=lambda endpoint, filename="": f"static/{filename}" if endpoint == "static" else "index.html",
        request={"endpoint": "pages.live"}, static_site=True, emotions=EMOTIONS, emotion_colors=emotion_colors(),
        private_mode={"base": "private/", "only": True},
    )
    (folder / "index.html").write_text(page, encoding="utf-8")
    for name in PAGE_FILES:
        shutil.copyfile(web / "static" / name, folder / "static" / name)
    for name, path in model_files(rec.classifier.path).items():
        shutil.copyfile(path, folder / "private" / name)
    for name in ORT_WEB_FILES:
        shutil.copyfile(ort_dir / name, folder / "private" / "ort" / name)
    assets = Path(str(resources.files("emorec") / "assets"))
    for name in ("NOTICE", "LICENSE-Apache-2.0.txt"):
        shutil.copyfile(assets / name, folder / "private" / name)
    numbers = pipeline_config(config, rec.model_info["name"], rec.model_sha256)
    (folder / "private" / "pipeline.json").write_text(json.dumps(numbers, indent=1), encoding="utf-8")
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
