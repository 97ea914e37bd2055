"""Face detectors on real photos: faces found where they are, none on face-free photos and blank frames."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from emorec.detect import (
    BLAZEFACE,
    BlazeFaceDetector,
    CropCheck,
    Detections,
    HaarDetector,
    _ssd_anchor_centres,
    create_detector,
    nms,
)
from emorec.sources import read_image
from emorec.track import iou_matrix

ASTRONAUT_FACE = (175, 70, 278, 174)  # drawn by hand; every detector agrees within a few pixels
DEV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "expressions_dev"
CLOSE_UPS = DEV / "lfw_expressions"


@pytest.fixture(scope="module", params=["blazeface", "blazeface-full", "blazeface-short"])
def blazeface(request):
    """The default (full and short range merged) and each BlazeFace variant alone."""
    return create_detector(request.param)


@pytest.fixture(scope="module")
def close_ups() -> list[np.ndarray]:
    """100 real close-up photos (every 21st of lfw_expressions: 350x350, the face filling most of the frame)."""
    labels = CLOSE_UPS / "labels.csv"
    if not labels.is_file():
        pytest.skip(f"lfw_expressions not found at {CLOSE_UPS}")
    with open(labels, newline="", encoding="utf-8") as f:
        names = [row["image"] for row in csv.DictReader(f)]
    return [read_image(CLOSE_UPS / "images" / name) for name in names[::21][:100]]


def _face_free_photos() -> list[np.ndarray]:
    return [cv2.cvtColor(img, cv2.COLOR_RGB2BGR) for img in (data.coffee(), data.chelsea(), data.rocket())]


def _eyes_in_upper_half_of_their_boxes(found) -> bool:
    x1, y1, x2, y2 = (found.boxes[:, [i]] for i in range(4))
    xs, ys = found.eyes[..., 0], found.eyes[..., 1]
    return bool(np.all((x1 < xs) & (xs < x2) & (y1 < ys) & (ys < (y1 + y2) / 2) & (xs[:, :1] < xs[:, 1:])))


def test_anchors_match_the_model_outputs():
    # 896 and 2304 are the models' output rows; a wrong anchor layout would shift every box.
    assert len(_ssd_anchor_centres(BLAZEFACE["short"])) == 896
    assert len(_ssd_anchor_centres(BLAZEFACE["full"])) == 2304
    # Short range scans inputs of any size that is a multiple of 16: one row per anchor of the larger grids.
    scan = BlazeFaceDetector("short", tile_size=None, scan_scale=0.3)
    regressors, _ = scan._session.run(None, {scan._input: np.zeros((1, 3, 144, 192), np.float32)})
    assert len(_ssd_anchor_centres(BLAZEFACE["short"], 144, 192)) == regressors.shape[1] == 2 * 18 * 24 + 6 * 9 * 12
    # So does full range, in multiples of 32 (its upsampling follows the input's size).
    scan = BlazeFaceDetector("full", tile_size=None, scan_scale=0.4)
    regressors, _ = scan._session.run(None, {scan._input: np.zeros((1, 3, 192, 256), np.float32)})
    assert len(_ssd_anchor_centres(BLAZEFACE["full"], 192, 256)) == regressors.shape[1] == 48 * 64


@pytest.mark.parametrize("variant, scale", [("short", 0.3), ("full", 0.4)])
def test_scan_boxes_follow_the_face_in_frames_of_any_size(astronaut_bgr, variant, scale):
    # Scan inputs are padded right and down to multiples of 16 (32), not centred: boxes must map back all the same.
    scan = BlazeFaceDetector(variant, tile_size=None, scan_scale=scale)
    x1, y1, x2, y2 = ASTRONAUT_FACE
    for top, left, bottom, right in ((0, 0, 0, 0), (157, 301, 42, 530), (11, 3, 700, 0)):
        frame = cv2.copyMakeBorder(astronaut_bgr, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(90, 90, 90))
        found = scan.detect(frame)
        assert len(found.boxes) == 1 and _eyes_in_upper_half_of_their_boxes(found), frame.shape
        assert iou_matrix(found.boxes, [(x1 + left, y1 + top, x2 + left, y2 + top)])[0, 0] > 0.6, frame.shape


def test_blazeface_finds_the_astronaut(blazeface, astronaut_bgr):
    found = blazeface.detect(astronaut_bgr)
    boxes, scores = found.boxes, found.scores
    assert boxes.shape == (1, 4) and boxes.dtype == np.float32
    assert found.eyes.shape == (1, 2, 2) and _eyes_in_upper_half_of_their_boxes(found)
    assert iou_matrix(boxes, [ASTRONAUT_FACE])[0, 0] > 0.6
    assert scores[0] > 0.8


def test_blazeface_boxes_follow_the_face_when_the_frame_is_padded(astronaut_bgr):
    # Letterboxing must map boxes back to frame pixels for any aspect ratio.
    detector = BlazeFaceDetector("full")
    wide = cv2.copyMakeBorder(astronaut_bgr, 0, 0, 300, 100, cv2.BORDER_CONSTANT, value=(90, 90, 90))
    tall = cv2.copyMakeBorder(astronaut_bgr, 200, 50, 0, 0, cv2.BORDER_CONSTANT, value=(90, 90, 90))
    x1, y1, x2, y2 = ASTRONAUT_FACE
    for frame, (dx, dy) in ((wide, (300, 0)), (tall, (0, 200))):
        found = detector.detect(frame)
        assert len(found.boxes) == 1 and _eyes_in_upper_half_of_their_boxes(found)
        assert iou_matrix(found.boxes, [(x1 + dx, y1 + dy, x2 + dx, y2 + dy)])[0, 0] > 0.6


@pytest.mark.parametrize("value", [0, 128, 255])
def test_no_faces_in_uniform_frames(blazeface, value):
    boxes, scores, _ = blazeface.detect(np.full((480, 640, 3), value, np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_no_faces_in_noise(blazeface):
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert len(blazeface.detect(noise)[0]) == 0


def test_no_faces_in_face_free_photos(blazeface):
    for photo in _face_free_photos():
        assert len(blazeface.detect(photo)[0]) == 0


def test_tiling_finds_a_small_face_in_a_big_photo(astronaut_bgr):
    # The astronaut's face 50 px wide in a 1920x1080 photo: 5 px after shrinking to 192, lost in one pass.
    big = cv2.resize(cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR), (1920, 1080))
    small = cv2.resize(astronaut_bgr, (240, 240), interpolation=cv2.INTER_AREA)
    big[500:740, 700:940] = small
    scale = 240 / 512
    truth = [
        (
            700 + ASTRONAUT_FACE[0] * scale,
            500 + ASTRONAUT_FACE[1] * scale,
            700 + ASTRONAUT_FACE[2] * scale,
            500 + ASTRONAUT_FACE[3] * scale,
        )
    ]
    found = BlazeFaceDetector("full", tile_size=640).detect(big)
    assert len(found.boxes) == 1 and iou_matrix(found.boxes, truth)[0, 0] > 0.5
    assert _eyes_in_upper_half_of_their_boxes(found)  # keypoints moved out of the tile like the box
    assert len(BlazeFaceDetector("full", tile_size=None).detect(big)[0]) == 0


def test_haar_fallback_finds_the_astronaut(astronaut_bgr):
    boxes, scores, eyes = HaarDetector().detect(astronaut_bgr)
    assert len(boxes) == 1 and iou_matrix(boxes, [ASTRONAUT_FACE])[0, 0] > 0.6
    assert np.all(scores == 1.0) and eyes.shape == (1, 2, 2) and np.isnan(eyes).all()  # no eyes: no levelling


def test_nms_merges_overlapping_boxes():
    boxes = np.array([[10, 10, 110, 110], [12, 12, 112, 112], [300, 300, 400, 400]], np.float32)
    keep = nms(boxes, np.array([0.7, 0.9, 0.8], np.float32), 0.3)
    assert keep.tolist() == [1, 2]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3).shape == (0,)


def test_unknown_detector_name_suggests_a_close_one():
    with pytest.raises(ValueError, match="did you mean 'blazeface-full'"):
        create_detector("blazefase-full")


def test_yunet_needs_a_model_file(tmp_path):
    with pytest.raises(ValueError, match="needs the path of a YuNet ONNX file"):
        create_detector("yunet")
    with pytest.raises(FileNotFoundError, match="no such file"):
        create_detector("yunet", yunet_model=tmp_path / "missing.onnx")
    corrupt = tmp_path / "yunet.onnx"
    corrupt.write_bytes(b"not an onnx model")
    with pytest.raises(ValueError, match="OpenCV cannot load it"):
        create_detector("yunet", yunet_model=corrupt)


def test_a_detector_object_is_used_as_given():
    detector = HaarDetector()
    assert create_detector(detector) is detector


def test_the_default_finds_close_up_faces(close_ups):
    # Full range alone finds under a fifth of these; short range's scan, merged in by default, nearly all
    # (CropCheck looks again at the unsure ones with black around the photo, not at the same photo).
    assert len(close_ups) == 100
    found = sum(len(create_detector("auto").detect(photo).boxes) > 0 for photo in close_ups)
    full_only = sum(len(create_detector("blazeface-full").detect(photo).boxes) > 0 for photo in close_ups)
    assert found >= 95 and full_only < 50, (found, full_only)


def test_the_default_finds_a_face_filling_the_frame(astronaut_bgr):
    x1, y1, x2, y2 = ASTRONAUT_FACE
    face = astronaut_bgr[y1 - 10 : y2 + 10, x1 - 10 : x2 + 10]
    close_up = cv2.resize(face, (480, 480), interpolation=cv2.INTER_CUBIC)
    found = create_detector("auto").detect(close_up)
    assert len(found.boxes) == 1 and _eyes_in_upper_half_of_their_boxes(found)
    assert iou_matrix(found.boxes, [(40, 40, 440, 440)])[0, 0] > 0.6


def test_the_default_boxes_the_face_not_a_small_portrait(astronaut_bgr):
    # Short range letterboxed alone boxes a whole small portrait as a face (benchmarks/detectors.py's
    # scenes); the default's scan drops boxes under SCAN_MIN_FACE input pixels, and full range finds the face.
    background = cv2.resize(cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR), (640, 480))
    scale = 40 / (ASTRONAUT_FACE[2] - ASTRONAUT_FACE[0])
    portrait = cv2.resize(astronaut_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    background[60 : 60 + portrait.shape[0], 150 : 150 + portrait.shape[1]] = portrait
    face = [150 + ASTRONAUT_FACE[0] * scale, 60 + ASTRONAUT_FACE[1] * scale,
            150 + ASTRONAUT_FACE[2] * scale, 60 + ASTRONAUT_FACE[3] * scale]
    short = create_detector("blazeface-short").detect(background).boxes
    assert len(short) and iou_matrix(short, [face]).max() < 0.3  # the whole portrait, not the face
    merged = create_detector("auto").detect(background).boxes
    assert all(iou_matrix(merged, [face])[:, 0] >= 0.3)


def _one_face_photos(folder: Path, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``count`` square photos of ``folder`` (every 7th) with their face box: short range's one
    face in the photo alone, as benchmarks/group_photos.py takes them."""
    labels = folder / "labels.csv"
    if not labels.is_file():
        pytest.skip(f"dev photos not found at {folder}")
    with open(labels, newline="", encoding="utf-8") as f:
        names = [row["image"] for row in csv.DictReader(f)][::7]
    short = create_detector("blazeface-short")
    photos = []
    for photo in (read_image(folder / "images" / name) for name in names):
        boxes = short.detect(photo).boxes
        if photo.shape[0] == photo.shape[1] >= 300 and len(boxes) == 1:
            photos.append((photo, boxes[0]))
        if len(photos) == count:
            return photos
    raise AssertionError(f"fewer than {count} one-face photos in {folder}")


def _sheet(photos, rows: int, cols: int, width: int, height: int, background: np.ndarray):
    """The photos side by side in square cells, centred on ``background``: the frame and its face boxes."""
    frame = cv2.resize(background, (width, height), interpolation=cv2.INTER_AREA)
    side = min(width // cols, height // rows)
    x0, y0 = (width - cols * side) // 2, (height - rows * side) // 2
    boxes = []
    for i, (photo, box) in enumerate(photos):
        x, y = x0 + (i % cols) * side, y0 + (i // cols) * side
        frame[y : y + side, x : x + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
        boxes.append(box * side / photo.shape[0] + np.float32([x, y, x, y]))
    return frame, np.array(boxes)


@pytest.mark.parametrize(
    "folder, rows, cols, width, height",
    [
        ("lfw_expressions", 4, 4, 1280, 720),  # 16 news close-ups, faces 138-175 px: the old default found 1
        # 8 of them at about 250 px, 10 px clear of the top and bottom (at 960x480 a face cut by the
        # frame's bottom edge is lost: docs/detection.md)
        ("lfw_expressions", 2, 4, 1000, 520),
        ("london", 3, 6, 1280, 720),  # 18 studio portraits, faces 70-85 px
    ],
)
def test_the_default_finds_every_face_of_a_group_sheet(folder, rows, cols, width, height):
    photos = _one_face_photos(DEV / folder, rows * cols)
    clutter = cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR)
    frame, truth = _sheet(photos, rows, cols, width, height, clutter)
    found = create_detector("auto").detect(frame)
    iou = iou_matrix(truth, found.boxes)
    assert (iou.max(axis=1) >= 0.3).all(), f"missed {np.flatnonzero(iou.max(axis=1) < 0.3).tolist()}"
    assert len(found.boxes) == len(truth)  # and nothing else


@pytest.mark.parametrize(
    "folder, rows, cols, group, at, size",
    [
        # 18 studio portraits with faces of 35-40 px in a 720p frame: 6 px in full range's 192 px letterbox and
        # 11 in short range's scan, so the default up to its full-range scan found none; 14-16 px scanned.
        ("london", 3, 6, (640, 360), (300, 200), (1280, 720)),
        # 12 news close-ups (tight crops) of 80-118 px in a webcam-sized frame: that default found 10.
        ("lfw_expressions", 3, 4, (480, 360), (80, 60), (640, 480)),
    ],
)
def test_the_default_finds_small_faces_of_a_group_photo(folder, rows, cols, group, at, size):
    photos = _one_face_photos(DEV / folder, rows * cols)
    clutter = cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR)
    sheet, truth = _sheet(photos, rows, cols, *group, clutter)
    frame = cv2.resize(clutter, size, interpolation=cv2.INTER_AREA)
    frame[at[1] : at[1] + group[1], at[0] : at[0] + group[0]] = sheet
    truth += np.float32([*at, *at])
    for name in ("auto", "blazeface-tiled"):
        found = create_detector(name).detect(frame)
        assert (iou_matrix(truth, found.boxes).max(axis=1) >= 0.3).all() and len(found.boxes) == len(truth), name


@pytest.mark.parametrize("photo", ["hubble_deep_field", "chelsea", "stereo_motorcycle", "gravel", "brick"])
@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_the_default_finds_no_face_in_face_free_frames(photo, size):
    # Scanning at 0.3 boxed stars, the cat, gravel and brick as faces before SCAN_MIN_FACE and CropCheck.
    image = getattr(data, photo)()
    image = image[0] if isinstance(image, tuple) else image
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
    assert len(create_detector("auto").detect(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)).boxes) == 0


def test_crop_check_keeps_sure_and_confirmed_faces_only(astronaut_bgr):
    check = CropCheck([BlazeFaceDetector("short", 0.7, tile_size=None)])
    rough_face = np.float32(ASTRONAUT_FACE) + np.float32([-20, 15, 5, 30])  # as full range boxes small faces
    sky = np.float32([380, 20, 480, 120])
    unknown_eyes = np.full((3, 2, 2), np.nan, np.float32)
    kept = check(astronaut_bgr, Detections(np.stack([rough_face, sky, sky]), np.float32([0.6, 0.6, 0.8]), unknown_eyes))
    # The sure patch of sky is kept unseen, the unsure one dropped, the unsure face confirmed as the second
    # look found it: a tight box, with eyes.
    assert len(kept.boxes) == 2 and kept.scores[0] == pytest.approx(0.8) and kept.boxes[0].tolist() == sky.tolist()
    assert kept.scores[1] >= 0.7 and iou_matrix(kept.boxes[1:], [ASTRONAUT_FACE])[0, 0] > 0.8
    assert _eyes_in_upper_half_of_their_boxes(kept.take(np.array([1])))


def test_crop_check_holds_faces_proposed_under_its_floor_to_the_first_look(astronaut_bgr):
    # The default's full range proposes faces from 0.3; under the floor only the first (strictest) look may
    # confirm them, and a thumbnail, which gets no look, keeps none of them.
    looks = [BlazeFaceDetector("short", 0.99, tile_size=None), BlazeFaceDetector("full", 0.5, tile_size=None)]
    check = CropCheck(looks, floor=0.5)
    face = Detections(np.float32([ASTRONAUT_FACE]), np.float32([0.6]), np.full((1, 2, 2), np.nan, np.float32))
    assert len(check(astronaut_bgr, face).boxes) == 1  # short range is not that sure; full range confirms it
    assert len(check(astronaut_bgr, face._replace(scores=np.float32([0.4]))).boxes) == 0
    thumbnail = cv2.resize(astronaut_bgr, (120, 120), interpolation=cv2.INTER_AREA)
    box = np.float32([ASTRONAUT_FACE]) * 120 / 512
    assert len(check(thumbnail, face._replace(boxes=box)).boxes) == 1
    assert len(check(thumbnail, Detections(box, np.float32([0.4]), face.eyes)).boxes) == 0


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 200, 3), (480, 640, 3), (3000, 4000, 3)])
def test_the_default_copes_with_odd_frame_sizes(shape):
    assert len(create_detector("auto").detect(np.full(shape, 128, np.uint8)).boxes) == 0
