"""The recognition engine on real images: inputs, results, tracking, threads and every kind of bad input."""

from __future__ import annotations

import threading
import zlib
from struct import pack

import cv2
import numpy as np
import pytest
from skimage import data

from emorec.engine import MIN_ROLL_DEGREES, CropGeometry, EmotionRecognizer, InputError, crop_faces, roll_degrees
from emorec.errors import UnknownModelError
from emorec.labels import EMOTIONS
from emorec.track import FaceTracker, iou_matrix

ASTRONAUT_FACE = (175, 70, 278, 174)
HAPPY = EMOTIONS.index("happy")


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    return cv2.resize(cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR), (640, 480))


def _moving_astronaut(background: np.ndarray, steps: int, dx: int = 12) -> list[np.ndarray]:
    portrait = cv2.resize(data.astronaut()[:, :, ::-1], (256, 256), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(steps):
        frame = background.copy()
        frame[100:356, 40 + i * dx : 296 + i * dx] = portrait
        frames.append(frame)
    return frames


def test_process_finds_the_astronaut_with_timings(rec, astronaut_bgr):
    result = rec.process(astronaut_bgr, frame_index=7)
    assert result.frame_size == (512, 512) and result.frame_index == 7
    (face,) = result.faces
    assert iou_matrix([face.box], [ASTRONAUT_FACE])[0, 0] > 0.6
    assert face.scores.shape == (7,) and abs(float(face.scores.sum()) - 1) < 1e-4
    assert face.track_id is None  # no tracking for stills
    assert {"decode", "detect", "crop", "classify", "total"} <= result.timings_ms.keys()
    assert result.timings_ms["total"] >= result.timings_ms["detect"] > 0
    assert rec(astronaut_bgr)[0].box == face.box


def test_the_smiling_astronaut_is_happy(rec, astronaut_bgr):
    # Needs the real model (the placeholder is near chance).
    assert rec(astronaut_bgr)[0].emotion == "happy"


def test_enlarged_fer2013_happy_faces_come_out_happy(rec, fer2013, background):
    # Needs the real model. FER2013 PublicTest happy faces, enlarged to 200 px in a photo, go through
    # detection and cropping; those the detector finds must still read as happy.
    faces, labels = fer2013.split("PublicTest")
    happy = faces[labels == HAPPY][:40]
    found = correct = 0
    for face in happy:
        frame = background.copy()
        frame[140:340, 220:420] = cv2.resize(face, (200, 200), interpolation=cv2.INTER_CUBIC)[:, :, None]
        result = rec(frame)
        if result:
            found += 1
            correct += result[0].emotion == "happy"
    assert found >= 8, f"the detector found only {found} of 40 enlarged FER2013 faces"
    assert correct / found >= 0.7, f"{correct} of {found} detected happy faces read as happy"


def test_rgb_gray_and_rgba_inputs_give_the_same_face(rec, astronaut_bgr):
    box = rec(astronaut_bgr)[0].box
    rgb = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2RGB)
    assert rec(rgb, rgb=True)[0].box == box
    assert rec.process(cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2BGRA)).faces[0].box == box
    rgba = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2RGBA)
    assert rec(rgba, rgb=True)[0].box == box
    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    for image in (gray, gray[:, :, None]):
        (face,) = rec(image)
        assert iou_matrix([face.box], [box])[0, 0] > 0.8


def test_image_paths_are_read(rec, astronaut_bgr, tmp_path):
    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), astronaut_bgr)
    assert len(rec(path)) == 1 and len(rec(str(path))) == 1


def test_no_faces_is_an_empty_result(rec, background):
    result = rec.process(background)
    assert result.faces == [] and result.to_dict()["faces"] == []
    assert len(rec(np.zeros((480, 640, 3), np.uint8))) == 0


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return pack(">I", len(body)) + kind + body + pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.jpg", "no such file"),
        (lambda p: p, "is a folder"),
        (lambda p: (p / "empty.jpg").write_bytes(b"") and p / "empty.jpg" or p / "empty.jpg", "empty file"),
        (lambda p: (p / "notes.png").write_text("not an image") and p / "notes.png", "not an image Pillow or OpenCV"),
        (lambda p: (p / "huge.png").write_bytes(_png_header_only(60000, 60000)) and p / "huge.png", "megapixels"),
    ],
    ids=["missing", "folder", "zero-byte", "text", "huge-png"],
)
def test_bad_files_raise_input_error_naming_the_file(rec, tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as info:
        rec.process(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((48, 48, 3), np.float32), "uint8"),
        (np.zeros((48, 48, 2), np.uint8), r"shape \(H, W\)"),
        (np.zeros((2, 48, 48, 3), np.uint8), r"shape \(H, W\)"),
        (np.zeros((0, 48, 3), np.uint8), "non-empty"),
        ([[0, 1], [2, 3]], "got list"),
        (None, "got NoneType"),
    ],
    ids=["float", "two-channels", "batch", "empty", "list", "none"],
)
def test_bad_arrays_raise_input_error(rec, image, message):
    with pytest.raises(InputError, match=message):
        rec.process(image)
    assert issubclass(InputError, ValueError)


def test_classify_batches_faces(rec, fer2013):
    faces, _ = fer2013.split("PublicTest")
    probs = rec.classify(faces[:32])
    assert probs.shape == (32, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(rec.classify(faces[:1]), probs[:1], atol=1e-5)
    assert rec.classify(faces[:0]).shape == (0, 7)
    with pytest.raises(InputError, match="uint8"):
        rec.classify(faces[:2].astype(np.float32))
    with pytest.raises(ValueError, match=r"\(N, 48, 48\)"):
        rec.classify(np.zeros((2, 64, 64), np.uint8))


def test_crop_matches_fer2013_geometry_and_handles_frame_edges(fer2013):
    faces, _ = fer2013.split("PublicTest")
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[100:292, 200:392] = cv2.resize(faces[0], (192, 192), interpolation=cv2.INTER_CUBIC)[:, :, None]
    crop = crop_faces(frame, np.array([[200, 100, 392, 292]]), CropGeometry(1.0, 0.0))
    assert crop.shape == (1, 48, 48) and crop.dtype == np.uint8
    # The same face back, up to resampling (this high-contrast face loses a few grey levels to it); a box
    # 10 pixels off correlates at about 0.3.
    assert np.corrcoef(crop[0].ravel().astype(float), faces[0].ravel().astype(float))[0, 1] > 0.98
    edge = crop_faces(frame, np.array([[600, 440, 640, 480], [-50, -50, 10, 10]]), CropGeometry(1.4, 0.1))
    assert edge.shape == (2, 48, 48)


def test_roll_degrees_reads_the_eye_line():
    assert roll_degrees([[100, 100], [140, 100]]) == 0.0
    # Right eye higher on the image (y down): the line turns counter-clockwise, whichever eye comes first.
    assert roll_degrees([[100, 100], [140, 60]]) == pytest.approx(45.0)
    assert roll_degrees([[140, 60], [100, 100]]) == pytest.approx(45.0)
    assert roll_degrees([[100, 100], [140, 110]]) == pytest.approx(-14.04, abs=0.01)
    assert roll_degrees([[100, 100], [110, 160]]) == pytest.approx(-45.0)  # capped: a keypoint error, not a head
    assert roll_degrees([[np.nan, np.nan], [np.nan, np.nan]]) == 0.0  # Haar finds no eyes


def _turned(image: np.ndarray, degrees: float) -> np.ndarray:
    """The photo turned counter-clockwise about its centre; the corners it leaves empty are gray."""
    centre = (image.shape[1] / 2, image.shape[0] / 2)
    turn = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return cv2.warpAffine(image, turn, image.shape[1::-1], borderValue=(128, 128, 128))


@pytest.mark.parametrize("degrees", [-30, 25])
def test_a_tilted_head_is_levelled_before_it_is_classified(rec, astronaut_bgr, degrees):
    upright = rec.detector.detect(astronaut_bgr)
    assert abs(roll_degrees(upright.eyes[0])) < MIN_ROLL_DEGREES  # her eyes are level: no turn
    x1, y1, x2, y2 = upright.boxes[0]
    (ex1, ey1), (ex2, ey2) = upright.eyes[0]
    assert x1 < ex1 < ex2 < x2 and y1 < ey1 < (y1 + y2) / 2 and y1 < ey2 < (y1 + y2) / 2
    reference = crop_faces(astronaut_bgr, upright.boxes, CropGeometry(), upright.eyes)[0].astype(float)

    tilted = _turned(astronaut_bgr, degrees)
    found = rec.detector.detect(tilted)
    assert len(found.boxes) == 1
    assert roll_degrees(found.eyes[0]) == pytest.approx(roll_degrees(upright.eyes[0]) + degrees, abs=6)
    levelled = crop_faces(tilted, found.boxes, CropGeometry(), found.eyes)[0].astype(float)
    plain = crop_faces(tilted, found.boxes, CropGeometry(level_eyes=False), found.eyes)[0].astype(float)
    # Her crop comes back like the upright one (correlation 0.75); unlevelled it is another picture (0.2).
    assert np.corrcoef(levelled.ravel(), reference.ravel())[0, 1] > 0.6
    assert np.corrcoef(plain.ravel(), reference.ravel())[0, 1] < 0.4
    faces = rec(tilted)
    assert faces[0].emotion == "happy" and faces[0].confidence > 0.8


def test_min_face_size_and_max_faces(astronaut_bgr):
    two = np.concatenate([astronaut_bgr, cv2.resize(astronaut_bgr, None, fx=0.5, fy=0.5).repeat(2, axis=0)], axis=1)
    both = EmotionRecognizer()(two)
    assert len(both) == 2 and both[0].box[2] - both[0].box[0] > both[1].box[2] - both[1].box[0]  # largest first
    assert EmotionRecognizer(max_faces=1)(two)[0].box == both[0].box
    assert len(EmotionRecognizer(min_face_size=80)(two)) == 1


def test_stream_keeps_the_track_id_of_a_moving_face(rec, background):
    stream = rec.stream()
    ids = [face.track_id for frame in _moving_astronaut(background, 20) for face in stream(frame)]
    assert ids == [1] * 20
    stream.reset()
    assert stream(_moving_astronaut(background, 1)[0])[0].track_id == 1
    assert rec(background) == [] and rec._tracker is None  # streams do not touch the shared recognizer


def test_two_faces_keep_their_own_ids(background):
    stream = EmotionRecognizer(max_faces=2).stream()  # the collage's seam may add a small false face
    portrait = cv2.resize(data.astronaut()[:, :, ::-1], (300, 300), interpolation=cv2.INTER_AREA)
    seen = []
    for i in range(8):
        frame = background.copy()
        frame[20 + i * 4 : 320 + i * 4, 0:300] = portrait
        frame[160 - i * 4 : 460 - i * 4, 335:635] = portrait
        faces = sorted(stream(frame), key=lambda f: f.box[0])
        seen.append([f.track_id for f in faces])
    assert seen == [[1, 2]] * 8 or seen == [[2, 1]] * 8


def test_smoothing_steadies_a_flickering_label():
    # A neutral face whose raw label jumps to happy every third frame, as a noisy classifier does.
    neutral = np.eye(7)[EMOTIONS.index("neutral")] * 0.6 + 0.4 / 7
    happy = np.eye(7)[HAPPY] * 0.55 + 0.45 / 7
    box = np.array([[100, 100, 200, 200]], np.float32)
    frames = [happy if i % 3 == 2 else neutral for i in range(30)]
    smoothed = FaceTracker(alpha=0.3)
    labels = [int(smoothed.update(box, [p])[1][0].argmax()) for p in frames]
    assert set(labels) == {EMOTIONS.index("neutral")}
    raw = FaceTracker(alpha=1.0)
    assert {int(raw.update(box, [p])[1][0].argmax()) for p in frames} == {HAPPY, EMOTIONS.index("neutral")}


def test_a_track_survives_short_gaps_only():
    tracker = FaceTracker(max_missed=3)
    box, probs = np.array([[0, 0, 50, 50]], np.float32), np.full((1, 7), 1 / 7, np.float32)
    assert tracker.update(box, probs)[0] == [1]
    for _ in range(3):
        tracker.update(np.zeros((0, 4)), np.zeros((0, 7)))
    assert tracker.update(box, probs)[0] == [1]
    for _ in range(4):
        tracker.update(np.zeros((0, 4)), np.zeros((0, 7)))
    assert tracker.update(box, probs)[0] == [2]


def test_a_face_lost_while_moving_keeps_its_track_where_it_went_and_a_stranger_gets_a_new_one():
    tracker = FaceTracker()
    probs = np.full((1, 7), 1 / 7, np.float32)

    def box(x: float) -> np.ndarray:
        return np.array([[x, 100, x + 100, 200]], np.float32)

    for t in range(6):  # 12 px a frame
        assert tracker.update(box(12 * t), probs)[0] == [1]
    for _ in range(10):  # hidden: it comes back 132 px on, clear of its last box
        tracker.update(np.zeros((0, 4)), np.zeros((0, 7)))
    assert tracker.update(box(12 * 16), probs)[0] == [1]
    assert tracker.update(np.concatenate([box(12 * 17), box(500)]), np.repeat(probs, 2, axis=0))[0] == [1, 2]


def test_streams_run_concurrently_in_threads(rec, background):
    frames = _moving_astronaut(background, 10)
    alone = rec.stream(smoothing=False)  # one stream alone, detecting and following as its threads will
    expected = [alone(frame)[0] for frame in frames]
    results, errors = {}, []

    def run(name: str) -> None:
        try:
            stream = rec.stream(smoothing=False)
            results[name] = [stream(frame)[0] for frame in frames]
        except Exception as exc:  # collected: an exception in a thread would not fail the test by itself
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for faces in results.values():
        assert [f.box for f in faces] == [f.box for f in expected]
        assert [f.track_id for f in faces] == [1] * 10
        np.testing.assert_allclose(faces[0].scores, expected[0].scores, atol=1e-5)


def test_annotate_draws_on_a_copy(rec, astronaut_bgr):
    original = astronaut_bgr.copy()
    faces = rec(astronaut_bgr)
    annotated = rec.annotate(astronaut_bgr, faces, bars=True)
    assert np.array_equal(astronaut_bgr, original)
    assert annotated.shape == astronaut_bgr.shape and annotated.dtype == np.uint8
    x1, y1, x2, y2 = faces[0].box
    changed = np.any(annotated != astronaut_bgr, axis=2)
    assert changed[y1 - 2 : y1 + 3, x1:x2].mean() > 0.5  # the box's top edge is drawn
    assert not changed[400:, 400:].any()  # far from the face nothing is drawn
    assert np.array_equal(rec.annotate(astronaut_bgr, []), astronaut_bgr)


def test_model_info_and_bad_model_files(rec, tmp_path):
    info = rec.model_info
    assert info["classes"] == list(EMOTIONS) and info["name"] and info["detector"] == "blazeface"
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        EmotionRecognizer(model=tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="corrupt.onnx"):
        EmotionRecognizer(model=corrupt)


def test_shipped_models_are_chosen_by_name(astronaut_bgr):
    from emorec.classifier import DEFAULT_SHIPPED_MODEL, SHIPPED_MODELS

    assert EmotionRecognizer().model_info["name"] == DEFAULT_SHIPPED_MODEL
    for name in SHIPPED_MODELS:
        rec = EmotionRecognizer(model=name)
        # Each ships with an up-to-date int8 twin, which the engine runs.
        assert rec.model_info["name"] == name and rec.model_info["quantized"]
        (face,) = rec(astronaut_bgr)
        assert face.emotion == "happy"
    with pytest.raises(UnknownModelError, match="did you mean 'emonet_fast'"):
        EmotionRecognizer(model="emonet_fats")


def test_the_int8_twin_is_used_only_while_it_matches_its_float_model(tmp_path, astronaut_bgr):
    onnx = pytest.importorskip("onnx")  # the 'train' extra; writing model metadata needs it
    import hashlib
    import json

    from emorec.classifier import shipped_model_path

    float_path = tmp_path / "model.onnx"
    float_path.write_bytes(shipped_model_path().read_bytes())
    # A stand-in twin: the float model itself, stamped as tools/quantize_classifier.py stamps its output.
    twin = onnx.load(str(float_path))
    entry = twin.metadata_props.add()
    entry.key = "emorec.quantized"
    entry.value = json.dumps({"source_sha256": hashlib.sha256(float_path.read_bytes()).hexdigest()})
    onnx.save(twin, str(tmp_path / "model_int8.onnx"))

    rec = EmotionRecognizer(model=float_path)
    assert rec.model_info["quantized"] and rec.model_info["path"].endswith("model_int8.onnx")
    assert len(rec(astronaut_bgr)) == 1
    assert not EmotionRecognizer(model=float_path, quantized=False).model_info["quantized"]

    changed = onnx.load(str(float_path))  # a new export: the twin is stale now
    changed.doc_string = "re-exported"
    onnx.save(changed, str(float_path))
    assert not EmotionRecognizer(model=float_path).model_info["quantized"]
    with pytest.raises(FileNotFoundError, match="tools/quantize_classifier.py"):
        EmotionRecognizer(model=float_path, quantized=True)
