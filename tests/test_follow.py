"""Streams detect faces every few frames and follow them by optical flow in between (emorec.follow), on real
faces: lfw_expressions photos moved smoothly (shift, zoom, roll) over scikit-image's rocket photo. A face's
true box is where the detector puts it in the photo at rest, moved with the photo."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import LFW_EXPRESSIONS
from skimage import data

from emorec.cli import main
from emorec.detect import Detections, create_detector
from emorec.engine import EmotionRecognizer
from emorec.errors import ConfigError
from emorec.track import iou_matrix

PHOTO = 250
PEOPLE = ("AJ_Cook_0001.jpg", "Kim_Clijsters_0009.jpg", "George_W_Bush_0306.jpg")


class CountingDetector:
    """The default detector, counting the frames it runs on; the calls numbered in ``blind`` find nothing."""

    def __init__(self):
        self.inner = create_detector("auto")
        self.name = self.inner.name
        self.calls = 0
        self.blind: set[int] = set()

    def detect(self, bgr):
        self.calls += 1
        return Detections.none() if self.calls in self.blind else self.inner.detect(bgr)


@pytest.fixture(scope="module")
def detector() -> CountingDetector:
    return CountingDetector()


@pytest.fixture(scope="module")
def rec(detector) -> EmotionRecognizer:
    return EmotionRecognizer(detector=detector)


@pytest.fixture(scope="module")
def people(rec) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each photo at PHOTO px and its face's box in photo pixels, found by the detector at rest."""
    found = []
    for name in PEOPLE:
        path = LFW_EXPRESSIONS / "images" / name
        if not path.is_file():
            pytest.skip(f"lfw_expressions not found at {LFW_EXPRESSIONS}")
        photo = cv2.resize(cv2.imread(str(path)), (PHOTO, PHOTO), interpolation=cv2.INTER_AREA)
        canvas = np.full((480, 640, 3), 128, np.uint8)
        canvas[100:350, 200:450] = photo
        (face,) = rec(canvas)
        found.append((photo, np.float64(face.box) - [200, 100, 200, 100]))
    return found


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    return cv2.resize(cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR), (640, 480))


def placement(t: int, x: float, y: float) -> tuple[np.ndarray, float, float]:
    """Where a photo is at frame ``t``: the 2x3 map from photo to frame, its side on screen, its roll."""
    side = 200 + 60 * np.sin(t / 6)  # zooms between 140 and 260 px
    roll = 10 * np.sin(t / 5)
    centre = np.float64([x + 8 * t, y + 30 * np.sin(t / 4)])
    transform = cv2.getRotationMatrix2D(((PHOTO - 1) / 2, (PHOTO - 1) / 2), roll, side / PHOTO)
    transform[:, 2] += centre - (PHOTO - 1) / 2
    return transform, side, roll


def render(background, actors) -> tuple[np.ndarray, list[np.ndarray]]:
    """One frame with each (photo, face box, t, x, y) pasted, and the faces' true boxes."""
    frame, truth = background.copy(), []
    for photo, face, t, x, y in actors:
        transform, side, _ = placement(t, x, y)
        cv2.warpAffine(photo, transform, (640, 480), dst=frame, borderMode=cv2.BORDER_TRANSPARENT)
        centre = transform[:, :2] @ ((face[:2] + face[2:]) / 2) + transform[:, 2]
        half = (face[2:] - face[:2]) / 2 * side / PHOTO
        truth.append(np.concatenate([centre - half, centre + half]))
    return frame, truth


def best_iou(faces, box) -> float:
    return float(iou_matrix(np.float32([box]), np.float32([f.box for f in faces])).max()) if faces else 0.0


def matched_tracks(faces, truths) -> list[int | None]:
    """Each true box's face's track id, None where no face covers it at IoU >= 0.5 (greedy, best first) or
    where the face is hidden: its box overlaps a face drawn after it."""
    ids: list[int | None] = [None] * len(truths)
    if not faces:
        return ids
    hidden = np.triu(iou_matrix(np.float32(truths), np.float32(truths)) > 0.1, k=1).any(axis=1)
    iou = iou_matrix(np.float32(truths), np.float32([f.box for f in faces]))
    for flat in np.argsort(-iou, axis=None):
        t, f = divmod(int(flat), iou.shape[1])
        if iou[t, f] < 0.5:
            break
        if ids[t] is None and faces[f].track_id not in ids:
            ids[t] = faces[f].track_id
    return [None if h else i for i, h in zip(ids, hidden, strict=True)]


def test_faces_are_followed_between_detections_with_boxes_close_to_the_truth(rec, detector, people, background):
    photo, face = people[0]
    every, frames = 5, 24
    stream, per_frame = rec.stream(detect_every=every), rec.stream(detect_every=1)
    ious, per_frame_ious, ids, timings = [], [], set(), []
    detector.calls = 0
    for t in range(frames):
        frame, (truth,) = render(background, [(photo, face, t, 200, 240)])
        result = stream.process(frame)
        ious.append(best_iou(result.faces, truth))
        ids.update(f.track_id for f in result.faces)
        timings.append(result.timings_ms)
        calls = detector.calls
        per_frame_ious.append(best_iou(per_frame(frame), truth))
        assert detector.calls == calls + 1, "detect_every=1 runs the detector on every frame"
    assert min(ious) >= 0.6 and np.mean(ious) >= np.mean(per_frame_ious) - 0.05, (ious, per_frame_ious)
    assert ids == {1}, "one face, one track"
    detected = [i for i, ms in enumerate(timings) if "detect" in ms]
    assert detected == list(range(0, frames, every)), "on schedule: the face is never lost"
    assert all("follow" in ms and ms["total"] >= ms["follow"] for ms in timings)
    assert stream.engine._follower.detections == len(detected) and detector.calls == frames + len(detected)


def test_a_face_that_enters_is_found_at_the_next_scheduled_detection(rec, people, background):
    (first, first_face), (second, second_face) = people[:2]
    every, enters = 6, 8  # enters between the detections of frames 6 and 12
    stream = rec.stream(detect_every=every)
    seen = []
    for t in range(15):
        actors = [(first, first_face, t, 150, 240)]
        if t >= enters:
            actors.append((second, second_face, t - enters, 420, 240))
        frame, truths = render(background, actors)
        faces = stream(frame)
        seen.append(sum(best_iou(faces, truth) >= 0.5 for truth in truths))
    assert seen[:enters] == [1] * enters
    assert seen[12:] == [2] * 3, "found at frame 12, within detect_every frames of entering"


def test_a_cut_to_another_person_is_detected_at_once_and_gets_a_new_track(rec, detector, people, background):
    (first, first_face), (_, _), (third, third_face) = people
    stream = rec.stream(detect_every=10)
    for t in range(4):
        before = stream(render(background, [(first, first_face, t, 150, 240)])[0])
    detector.calls = 0
    frame, (truth,) = render(background, [(third, third_face, 0, 450, 240)])  # frame 4: no detection due
    after = stream.process(frame)
    assert detector.calls == 1, "following fails on the cut, so the detector runs"
    assert len(after.faces) == 1 and best_iou(after.faces, truth) >= 0.6
    assert after.faces[0].track_id != before[0].track_id


def test_a_detector_blink_is_bridged_once_and_a_face_that_leaves_is_dropped_at_once(rec, detector, people,
                                                                                   background):
    photo, face = people[0]
    frames = [render(background, [(photo, face, t, 200, 240)]) for t in range(10)]
    for blind, expected in (({2}, [1] * 10), ({2, 3}, [1] * 6 + [0, 0, 0, 1])):
        stream = rec.stream(detect_every=3)  # detects frames 0, 3, 6, 9: calls 1, 2, 3, 4
        detector.calls, detector.blind = 0, blind
        try:
            results = [stream.process(frame) for frame, _ in frames]
        finally:
            detector.blind = set()
        found = [sum(best_iou(r.faces, truth) >= 0.5 for truth in truths)
                 for r, (_, truths) in zip(results, frames, strict=True)]
        assert found == expected, blind
        assert {f.track_id for r in results for f in r.faces} == {1}
    stream = rec.stream(detect_every=10)
    for frame, _ in frames[:4]:
        assert len(stream(frame)) == 1
    detector.calls = 0
    assert stream(background) == [] and detector.calls == 1, "the face is gone: following fails, the detector runs"


def test_stills_detect_on_every_call(rec, detector, people, background, tmp_path):
    frame, _ = render(background, [(people[0][0], people[0][1], 0, 300, 240)])
    detector.calls = 0
    for _ in range(3):
        assert len(rec.process(frame).faces) == 1
    assert detector.calls == 3
    for i in range(3):  # the same photo three times: a folder's photos are separate pictures all the same
        cv2.imwrite(str(tmp_path / f"{i}.png"), frame)
    assert [len(r.faces) for r in rec.stream(tmp_path, detect_every=10)] == [1, 1, 1]
    assert detector.calls == 6


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "5"])
def test_bad_intervals_are_refused_clearly(rec, bad, tmp_path):
    with pytest.raises(ConfigError, match="detect_every must be a whole number >= 1"):
        rec.stream(detect_every=bad)
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ConfigError, match="detect_every"):
        rec.stream(tmp_path / "a.png", detect_every=bad)


def test_cli_detect_every(people, background, tmp_path, capsys):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for t in range(8):
        writer.write(render(background, [(people[0][0], people[0][1], t, 200, 240)])[0])
    writer.release()
    capsys.readouterr()
    for every, detected in ((1, 8), (4, 2)):
        assert main(["stream", "--source", str(path), "--detect-every", str(every)]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [len(line["faces"]) for line in lines] == [1] * 8
        assert sum("detect" in line["timings_ms"] for line in lines) == detected
    for bad in ("0", "x"):
        with pytest.raises(SystemExit) as exit_info:
            main(["video", str(path), "--detect-every", bad, "--quiet"])
        assert exit_info.value.code == 2
        assert "--detect-every: expected a whole number of frames >= 1" in capsys.readouterr().err



def test_each_person_keeps_one_track_through_crossing_and_a_brief_occlusion(rec, people, background):
    """Three people: one hidden for a third of a second behind a panel while moving on, and two crossing in
    one lane, the front one hiding the other. Lost and found again, each keeps their track."""
    (first, first_face), (second, second_face), (third, third_face) = people
    panel = cv2.resize(background[:240, :200], (200, 240))  # the top half: the first person's lane
    for every in (8, 1):
        stream = rec.stream(detect_every=every)
        tracks: list[set[int]] = [set(), set(), set()]
        for t in range(56):
            # placement() moves every photo right by 8 px a frame: the second one starts right, moving left.
            frame, truths = render(background, [(first, first_face, t, 100, 120), (third, third_face, t, 40, 360),
                                                (second, second_face, t, 580 - 16 * t, 360)])
            if 12 <= t < 22:
                left = int(truths[0][0] + truths[0][2]) // 2 - 100
                frame[:240, left : left + 200] = panel
            matched = matched_tracks(stream(frame), truths)
            for ids, track in zip(tracks, matched, strict=True):
                ids.update([track] if track is not None else [])
            if t >= 52:  # the crossing over, everyone is in sight again
                assert None not in matched, (every, t)
        assert all(len(ids) == 1 for ids in tracks) and len(set.union(*tracks)) == 3, (every, tracks)
