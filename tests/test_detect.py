"""Face detectors on real photos: faces found where they are, none on face-free photos and blank frames."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from emorec.detect import BLAZEFACE, BlazeFaceDetector, HaarDetector, _ssd_anchor_centres, create_detector, nms
from emorec.sources import read_image
from emorec.track import iou_matrix

ASTRONAUT_FACE = (175, 70, 278, 174)  # drawn by hand; every detector agrees within a few pixels
CLOSE_UPS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "expressions_dev" / "lfw_expressions"


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
    # Full range alone finds under a fifth of these; short range, merged in by default, nearly all.
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


def test_the_default_takes_only_large_faces_from_short_range(astronaut_bgr):
    # Short range alone boxes a whole small portrait as a face (benchmarks/detectors.py's scenes); the
    # default leaves faces that small to full range, which finds the real one or nothing.
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
