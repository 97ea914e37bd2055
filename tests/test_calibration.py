"""Personal calibration (emorec.calibration): the maths, the baseline file, bad input, the engine, the CLI,
and real faces: a person whose resting face the model misreads reads neutral once calibrated, and still
reads their expression when they show one."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from emorec.calibration import (
    DEFAULT_NEUTRAL_MARGIN,
    AutoCalibrator,
    Baseline,
    BaselineError,
    NeutralCapture,
    apply_baseline,
    load_baseline,
)
from emorec.classifier import shipped_model_path
from emorec.cli import main
from emorec.engine import EmotionRecognizer
from emorec.labels import EMOTIONS
from emorec.recording import AnnotatedVideoWriter
from emorec.types import Face

NEUTRAL = EMOTIONS.index("neutral")
ANGRY = EMOTIONS.index("angry")


def random_probs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.dirichlet(np.full(len(EMOTIONS), 0.5), size=n).astype(np.float32)


def angry_rest() -> Baseline:
    """Someone whose neutral face the model reads as 60% angry."""
    return Baseline.from_scores([[0.6, 0.02, 0.05, 0.03, 0.1, 0.02, 0.18]], "model-sha")


# ----- the maths


def test_calibrated_scores_are_probabilities():
    probs = random_probs(np.random.default_rng(0), 200)
    for strength in (0.5, 1.0, 2.0):
        calibrated = apply_baseline(probs, Baseline(angry_rest().log_probs, "m", strength=strength))
        assert calibrated.shape == probs.shape
        assert np.allclose(calibrated.sum(axis=1), 1.0, atol=1e-5)
        assert (calibrated >= 0).all()


def test_strength_zero_changes_nothing():
    probs = random_probs(np.random.default_rng(1), 50)
    zero = Baseline(angry_rest().log_probs, "m", strength=0.0)
    assert np.array_equal(apply_baseline(probs, zero), probs)


def test_the_persons_own_neutral_face_reads_neutral_and_expressions_still_read():
    baseline = angry_rest()
    rest = baseline.neutral_scores
    assert rest.argmax() == ANGRY  # uncalibrated: the resting face reads angry
    calibrated = apply_baseline(rest, baseline)
    assert calibrated.argmax() == NEUTRAL
    # at strength 1 the person's own neutral face leads every other class by the margin, in log-odds
    others = np.delete(np.log(calibrated), NEUTRAL)
    assert np.allclose(np.log(calibrated[NEUTRAL]) - others, DEFAULT_NEUTRAL_MARGIN, atol=1e-4)
    smile = np.array([0.02, 0.01, 0.01, 0.9, 0.02, 0.02, 0.02], np.float32)
    assert apply_baseline(smile, baseline).argmax() == EMOTIONS.index("happy")
    # angrier than their rest still reads angry
    scowl = np.array([0.95, 0.01, 0.01, 0.0, 0.01, 0.0, 0.02], np.float32)
    assert apply_baseline(scowl, baseline).argmax() == ANGRY


def test_baseline_rejects_values_that_are_not_log_probabilities():
    good = angry_rest().log_probs
    for log_probs in (np.where(np.arange(7) == 2, np.nan, good), -good, np.where(np.arange(7) == 2, -1e308, good)):
        with pytest.raises(BaselineError, match="logs of probabilities, between -9.21 and 0"):
            Baseline(log_probs, "m")
    with pytest.raises(BaselineError, match="shape"):
        Baseline(good[:6], "m")
    for strength in (-1, float("nan"), float("inf"), 1e308):
        with pytest.raises(BaselineError, match="strength must be a number from 0 to 10"):
            Baseline(good, "m", strength=strength)
    with pytest.raises(BaselineError, match="neutral_margin must be a number from 0 to 10"):
        Baseline(good, "m", neutral_margin=1e308)
    with pytest.raises(BaselineError, match="no faces"):
        Baseline.from_scores(np.zeros((0, 7)), "m")


# ----- the baseline file


def test_json_round_trip(tmp_path):
    baseline = Baseline(angry_rest().log_probs, "abc123", samples=4, strength=0.75, neutral_margin=1.5,
                        model_name="emonet_wide", notes=("only 2 faces",))
    path = baseline.save(tmp_path / "me.json")
    loaded = load_baseline(path)
    assert np.allclose(loaded.log_probs, baseline.log_probs, atol=1e-12)
    assert (loaded.model, loaded.samples, loaded.strength, loaded.neutral_margin, loaded.notes) == (
        "abc123", 4, 0.75, 1.5, ("only 2 faces",))
    assert Baseline.load(path).model_name == "emonet_wide"


def _edited(data: dict, **changes) -> str:
    return json.dumps({**data, **changes})


@pytest.mark.parametrize(
    "content, says",
    [
        ("{not json", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        ("[1, 2, 3]", "not an emorec baseline"),
        ("EDIT classes", "classes"),
        ("EDIT nan", "NaN"),
        ("EDIT string", "must be numbers"),
        ("EDIT missing", "a number for each"),
        ("EDIT model", "model sha256"),
        ("EDIT version", "version"),
        ("EDIT samples", "whole number"),
        ("EDIT notes", "notes"),
        ("EDIT strength", "strength"),
        ("EDIT huge strength", "strength must be a number from 0 to 10"),
        ("EDIT 5000 digits", "a 5000-digit number is not one a baseline may hold"),
        ("EDIT 4000-digit log_prob", "a 3999-digit number"),
        ("[" * 30_000 + "]" * 30_000, "nested too deep"),
        ("[" * 100_000 + "]" * 100_000, "a baseline is at most 65536 bytes"),
    ],
    ids=lambda value: value[:40] if isinstance(value, str) else None,
)
def test_bad_baseline_files_give_an_error_naming_the_file(tmp_path, content, says):
    data = angry_rest().to_dict()
    edits = {
        "EDIT classes": _edited(data, classes=list(reversed(EMOTIONS))),
        "EDIT nan": json.dumps(data).replace(str(data["log_probs"]["fear"]), "NaN"),
        "EDIT string": _edited(data, log_probs={**data["log_probs"], "sad": "-1.0"}),
        "EDIT missing": _edited(data, log_probs={k: v for k, v in data["log_probs"].items() if k != "sad"}),
        "EDIT model": _edited(data, model="emonet"),
        "EDIT version": _edited(data, version=99),
        "EDIT samples": _edited(data, samples=2.5),
        "EDIT notes": _edited(data, notes=5),
        "EDIT strength": _edited(data, strength=True),
        "EDIT huge strength": _edited(data, strength=1e308),  # what `calibrate --strength 1e308` wrote
        "EDIT 5000 digits": _edited(data, samples=1).replace('"samples": 1', '"samples": ' + "9" * 5000),
        "EDIT 4000-digit log_prob": json.dumps(data).replace(str(data["log_probs"]["fear"]), "-" + "9" * 3999),
    }
    path = tmp_path / "broken.json"
    text = edits.get(content, content)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(BaselineError, match=says) as error:
        load_baseline(path)
    assert str(path) in str(error.value)


def test_a_missing_baseline_file_is_named(tmp_path):
    with pytest.raises(BaselineError, match="no such file") as error:
        load_baseline(tmp_path / "nowhere.json")
    assert "nowhere.json" in str(error.value)


# ----- the engine


def test_a_baseline_of_another_model_is_refused(rec, astronaut_bgr, tmp_path):
    import onnx

    other_path = tmp_path / "other.onnx"
    model = onnx.load(str(shipped_model_path()))
    model.doc_string = "a retrained classifier"  # another file: another sha256, whatever its weights
    onnx.save(model, str(other_path))
    other = EmotionRecognizer(model=other_path, quantized=False)
    assert other.model_sha256 != rec.model_sha256
    theirs = other.calibrate([astronaut_bgr])
    with pytest.raises(BaselineError, match="another classifier"):
        rec(astronaut_bgr, baseline=theirs)
    with pytest.raises(BaselineError, match="another classifier"):
        rec.stream(baseline=theirs)
    stream = rec.stream()
    with pytest.raises(BaselineError, match="another classifier"):  # refused when set, not frames later
        stream.baseline = theirs


def test_the_int8_twin_shares_its_float_models_baselines(rec, astronaut_bgr):
    if not rec.quantized:
        pytest.skip("the shipped model has no int8 twin")
    float_rec = EmotionRecognizer(quantized=False)
    assert float_rec.model_sha256 == rec.model_sha256
    assert rec(astronaut_bgr, baseline=float_rec.calibrate([astronaut_bgr]))[0].calibrated


def test_calibrated_faces_keep_their_raw_scores(rec, astronaut_bgr):
    baseline = rec.calibrate([astronaut_bgr])
    plain, = rec(astronaut_bgr)
    face, = rec(astronaut_bgr, baseline=baseline)
    assert not plain.calibrated and "raw_scores" not in plain.to_dict()
    assert face.calibrated and np.allclose(face.raw_scores, plain.scores, atol=1e-6)
    assert np.isclose(face.scores.sum(), 1.0, atol=1e-5)
    assert face.emotion == "neutral"  # the very face the baseline was made of
    data = face.to_dict()
    assert data["calibrated"] and data["raw_emotion"] == plain.emotion
    assert set(data["raw_scores"]) == set(data["scores"]) == set(EMOTIONS)
    with pytest.raises(ValueError, match="raw_scores"):
        Face((0, 0, 10, 10), plain.scores, raw_scores=np.ones(3))


def test_calibrate_skips_and_reports_images_without_a_face_and_unreadable_files(rec, astronaut_bgr, tmp_path):
    blank = np.full((480, 640, 3), 90, np.uint8)
    two = np.full((512, 1100, 3), 128, np.uint8)
    two[:, :512], two[:, 588:] = astronaut_bgr, astronaut_bgr
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    baseline = rec.calibrate([blank, astronaut_bgr, two, broken])
    assert baseline.samples == 2
    notes = " | ".join(baseline.notes)
    assert "1 image(s) without a face: image 1" in notes
    assert "broken.jpg" in notes
    assert "several faces" in notes and "image 3" in notes
    assert "only 2 face(s)" in notes
    with pytest.raises(BaselineError, match="no face to calibrate with in 2 image"):
        rec.calibrate([blank, broken])
    with pytest.raises(BaselineError, match="no images given"):
        rec.calibrate([])


def test_auto_calibration_is_for_streams(rec):
    with pytest.raises(ValueError, match="use it on a stream"):
        rec.auto_calibrate = True


# ----- auto-calibration and the "Calibrate" capture


def test_auto_calibrator_waits_for_its_warm_up_then_ignores_a_short_expression():
    auto = AutoCalibrator("m", warmup_s=3.0, window_s=30.0, sample_every_s=0.25)
    rest = angry_rest().neutral_scores
    smile = np.array([0.01, 0.0, 0.0, 0.97, 0.0, 0.01, 0.01])
    baselines = []
    for tenth in range(200):  # 20 s at 10 frames/s, smiling from 10 s to 14 s
        t = tenth / 10
        baselines.append(auto.update([7], (smile if 10 <= t < 14 else rest)[None], t)[0])
    assert all(b is None for b in baselines[:30]) and all(b is not None for b in baselines[30:])
    last = baselines[-1]
    assert last.model == "m" and last.samples == 67  # every third frame: 0.3 s is the first gap >= 0.25 s
    assert apply_baseline(rest, last).argmax() == NEUTRAL  # the smile did not become the baseline
    assert apply_baseline(smile, last).argmax() == EMOTIONS.index("happy")
    auto.update([8], rest[None], 100.0)  # track 7 unseen for longer than the window: forgotten
    assert list(auto._tracks) == [8]


def test_neutral_capture_collects_the_largest_faces_raw_scores():
    capture = NeutralCapture(duration_s=3.0, min_faces=3)
    big = Face((0, 0, 100, 100), np.eye(7)[NEUTRAL], raw_scores=np.eye(7)[ANGRY])
    small = Face((200, 0, 220, 20), np.eye(7)[3])
    for tenth in range(31):
        capture.add(5.0 + tenth / 10, [small, big] if tenth % 2 else [])
        assert capture.done == (tenth == 30)
    assert capture.progress == 1.0 and capture.faces == 15
    assert (capture.scores().argmax(1) == ANGRY).all()
    empty = NeutralCapture(1.0)
    empty.add(0.0, [])
    empty.add(1.0, [small])
    with pytest.raises(BaselineError, match="saw a face in 1 frame"):
        empty.scores()


# ----- a real person whose resting face the model misreads


def _noisy_video(rng, parts: list[tuple[np.ndarray, float]], fps: float = 10.0):
    """(time_s, frame) of each part held for its seconds; every frame moved by a few pixels, lit a little
    differently and with sensor noise, so that no two frames are the same (a person sitting still)."""
    t = 0.0
    for frame, seconds in parts:
        for _ in range(round(seconds * fps)):
            dx, dy = rng.integers(-6, 7, 2)
            moved = np.roll(frame, (dy, dx), axis=(0, 1)).astype(np.float32) * rng.uniform(0.9, 1.1)
            yield t, np.clip(moved + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
            t += 1 / fps


def _readings(stream, video) -> list[tuple[float, str, str]]:
    out = []
    for t, frame in video:
        faces = stream.process(frame, time_s=t).faces
        if faces:
            out.append((t, faces[0].emotion, faces[0].to_dict().get("raw_emotion", faces[0].emotion)))
    return out


def _mostly(readings, start: float, end: float) -> str:
    labels = [emotion for t, emotion, _ in readings if start <= t < end]
    assert labels, f"no face read between {start} and {end} s"
    return max(set(labels), key=labels.count)


def test_a_misread_resting_face_reads_neutral_once_calibrated_and_expressions_still_read(rec, resting_face):
    person, (rest, *_), expressive, emotion = resting_face
    # 4 s at rest, 2 s of the expression, 3 s at rest; judged on each part's last second (smoothing lags)
    video = list(_noisy_video(np.random.default_rng(0), [(rest, 4), (expressive, 2), (rest, 3)]))
    # the person presses "Calibrate" and rests for the first 3 s (other photos of them, from other days,
    # are the harder case that benchmarks/calibration.py measures)
    baseline = rec.calibrate([frame for t, frame in video if t < 3])
    # Every frame detected, as the photos of the baseline were: this person's rest sits near a decision
    # boundary that a few pixels of crop move (what following does to labels: benchmarks/stream_detection.py).
    plain = _readings(rec.stream(detect_every=1), video)
    calibrated = _readings(rec.stream(baseline=baseline, detect_every=1), video)
    assert _mostly(plain, 3, 4) in ("angry", "sad"), person
    assert _mostly(calibrated, 3, 4) == "neutral", person
    assert _mostly(calibrated, 5, 6) == emotion, person
    assert _mostly(calibrated, 8, 9) == "neutral", person
    assert all(raw == plain_emotion for (_, _, raw), (_, plain_emotion, _) in zip(calibrated, plain, strict=True))


def test_auto_calibration_learns_the_resting_face_after_its_warm_up(rec, resting_face):
    person, (rest, *_), expressive, emotion = resting_face
    video = list(_noisy_video(np.random.default_rng(1), [(rest, 6), (expressive, 2), (rest, 2)]))
    readings = _readings(rec.stream(auto_calibrate=True), video)
    assert _mostly(readings, 0, 2.9) in ("angry", "sad"), person  # still warming up: the generic reading
    assert _mostly(readings, 5, 6) == "neutral", person
    assert _mostly(readings, 7, 8) == emotion, person


# ----- the command line


@pytest.fixture(scope="module")
def resting_files(resting_face, tmp_path_factory):
    """The resting face's photos as files, and a video of it (4 s at rest, 2 s of the expression)."""
    folder = tmp_path_factory.mktemp("resting")
    _, (rest, *_), expressive, _ = resting_face
    calibration, later = (frame for _, frame in _noisy_video(np.random.default_rng(3), [(rest, 0.2)]))
    cv2.imwrite(str(folder / "calibration.png"), calibration)
    cv2.imwrite(str(folder / "rest.png"), later)
    writer = AnnotatedVideoWriter(folder / "video.mp4", 10.0, (640, 480))
    for _, frame in _noisy_video(np.random.default_rng(2), [(rest, 6), (expressive, 2)]):
        writer.write(frame)
    writer.close()
    return folder


@pytest.mark.xfail(strict=True, reason="known regression of the default's full-range scan (docs/detection.md): its "
                   "eye line tilts this face past the 10-degree levelling threshold, and one noisy calibration "
                   "frame no longer carries over to the next")
def test_cli_calibrate_then_predict_with_the_baseline(resting_files, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 200, np.uint8))
    out = tmp_path / "me.json"
    assert main(["calibrate", str(resting_files / "calibration.png"), str(blank), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "without a face: " + str(blank) in captured.err and f"wrote {out}" in captured.out
    assert load_baseline(out).samples == 1
    report = tmp_path / "faces.json"
    assert main(["predict", str(resting_files / "rest.png"), "--baseline", str(out), "--json", str(report)]) == 0
    face = json.loads(report.read_text())[0]["faces"][0]
    assert face["emotion"] == "neutral" and face["raw_emotion"] in ("angry", "sad") and face["calibrated"]


def test_cli_refuses_a_bad_baseline_naming_it(resting_files, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "emorec-baseline", "version": 1, "classes": ["happy"]}')
    for command in (["predict", str(resting_files / "rest.png")], ["video", str(resting_files / "video.mp4")],
                    ["stream", "--source", str(resting_files / "video.mp4")]):
        assert main([*command, "--baseline", str(bad)]) == 2
        assert f"{bad}: classes" in capsys.readouterr().err
    assert main(["calibrate", str(tmp_path / "none.png"), "--out", str(tmp_path / "x.json")]) == 1
    assert "no face to calibrate with" in capsys.readouterr().err


def test_cli_video_and_stream_with_auto_calibration(resting_files, tmp_path, capsys):
    timeline = tmp_path / "timeline.csv"
    assert main(["video", str(resting_files / "video.mp4"), "--auto-calibrate", "--csv", str(timeline),
                 "--quiet"]) == 0
    import csv

    rows = list(csv.DictReader(timeline.open()))
    assert rows, "no faces in the timeline"
    late_rest = [r["emotion"] for r in rows if 5.0 <= float(r["time_s"]) < 6.0]
    assert late_rest and max(set(late_rest), key=late_rest.count) == "neutral"
    capsys.readouterr()
    assert main(["stream", "--source", str(resting_files / "video.mp4"), "--auto-calibrate"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    calibrated = [line["time_s"] for line in lines if line["faces"] and line["faces"][0].get("calibrated")]
    assert calibrated and min(calibrated) >= 3.0  # nothing calibrated before the 3 s warm-up


def test_cli_calibrate_a_folder(resting_files, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(resting_files / "calibration.png", folder / "a.png")
    shutil.copy(resting_files / "rest.png", folder / "b.png")
    assert main(["calibrate", str(folder), "--out", str(tmp_path / "me.json")]) == 0
    assert load_baseline(tmp_path / "me.json").samples == 2



def test_calibrate_belongs_to_one_person_the_largest_face_when_it_starts():
    """Two real faces in view: Calibrate captures the larger one's neutral face and calibrates their track
    only; the other person keeps the generic reading (no raw_scores), and Reset forgets it."""
    from conftest import LFW_EXPRESSIONS

    big = cv2.resize(cv2.imread(str(LFW_EXPRESSIONS / "images" / "AJ_Cook_0001.jpg")), (260, 260))
    small = cv2.resize(cv2.imread(str(LFW_EXPRESSIONS / "images" / "Aaron_Patterson_0001.jpg")), (180, 180))
    frame = np.full((480, 720, 3), 128, np.uint8)
    frame[110:370, 40:300] = big
    frame[150:330, 460:640] = small
    stream = EmotionRecognizer().stream(detect_every=1)
    assert stream.calibration.state() == {"state": "off"}
    stream.calibration.start(0.3)
    for i in range(5):
        result = stream.process(frame, time_s=i * 0.1)
    state = stream.calibration.state()
    assert state["state"] == "on" and state["samples"] >= 3
    faces = {f.track_id: f for f in stream.process(frame, time_s=0.6).faces}
    largest = max(faces.values(), key=lambda f: f.box[2] - f.box[0])
    assert len(faces) == 2 and state["track_id"] == largest.track_id
    other = next(f for f in faces.values() if f is not largest)
    assert largest.raw_scores is not None and other.raw_scores is None
    assert max(largest.scores) < max(largest.raw_scores) or largest.emotion == "neutral"
    stream.calibration.reset()
    assert stream.calibration.state() == {"state": "off"}
    assert all(f.raw_scores is None for f in stream.process(frame, time_s=0.7).faces)
    assert result.faces  # the capture saw faces on every frame it was fed
