"""`emorec predict`, `emorec video` and `emorec stream` end to end, on real images and videos of real faces."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage import data

from emorec.cli import main
from emorec.labels import EMOTIONS

FRAMES = 24


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    cv2.imwrite(str(folder / "astronaut.jpg"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "coffee.png"), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def fer_video(fer2013, tmp_path_factory) -> tuple:
    """An AVI of a real FER2013 face (the first PublicTest happy face the detector finds, enlarged to 220 px)
    drifting across a photo, written with cv2.VideoWriter."""
    from emorec.detect import create_detector

    detector = create_detector("auto")
    faces, labels = fer2013.split("PublicTest")
    background = cv2.resize(cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR), (640, 480))

    def frame_at(face, i):
        frame = background.copy()
        x = 150 + 6 * i
        frame[120:340, x : x + 220] = cv2.resize(face, (220, 220), interpolation=cv2.INTER_CUBIC)[:, :, None]
        return frame

    face = next(f for f in faces[labels == EMOTIONS.index("happy")] if len(detector.detect(frame_at(f, 0))[0]))
    path = tmp_path_factory.mktemp("video") / "face.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (640, 480))
    for i in range(FRAMES):
        writer.write(frame_at(face, i))
    writer.release()
    return path


def _frame_count(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_predict_annotates_images_and_goes_on_past_bad_files(images, tmp_path, capsys):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image")
    out, report, table = tmp_path / "out", tmp_path / "faces.json", tmp_path / "faces.csv"
    code = main(
        [
            "predict",
            str(images),
            str(tmp_path / "empty.jpg"),
            str(tmp_path / "notes.png"),
            str(tmp_path / "missing.jpg"),
            "--out",
            str(out),
            "--json",
            str(report),
            "--csv",
            str(table),
        ]
    )
    assert code == 1  # some inputs failed
    captured = capsys.readouterr()
    assert "empty file (0 bytes)" in captured.err and "not an image" in captured.err and "no such file" in captured.err
    assert "Traceback" not in captured.err
    assert "astronaut.jpg: " in captured.out and "coffee.png: no faces" in captured.out

    annotated = cv2.imread(str(out / "astronaut.jpg"))
    assert annotated.shape == (512, 512, 3) and (out / "coffee.png").is_file()
    records = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(report.read_text())}
    assert len(records["astronaut.jpg"]["faces"]) == 1 and records["coffee.png"]["faces"] == []
    assert "empty file" in records["empty.jpg"]["error"] and records["astronaut.jpg"]["error"] is None
    rows = list(csv.DictReader(table.open()))
    face_rows = [r for r in rows if r["face"] != ""]
    assert len(face_rows) == 1 and face_rows[0]["emotion"] in EMOTIONS and len(rows) == 5


def test_predict_refuses_to_write_over_its_inputs(images, tmp_path, capsys):
    photos = tmp_path / "t"
    photos.mkdir()
    for image in images.iterdir():
        (photos / image.name).write_bytes(image.read_bytes())
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    other_spelling = str(photos / ".." / "t")
    for command in (["predict", str(photos), "--out", str(photos)], ["predict", str(photos), "--out", other_spelling],
                    ["predict", str(photos), "--csv", str(photos / "coffee.png")],
                    ["calibrate", str(photos), "--out", str(photos / "astronaut.jpg")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "would overwrite the input" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before


def test_predict_keeps_one_output_per_input_when_names_repeat(images, tmp_path, capsys):
    (tmp_path / "dirA").mkdir()
    (tmp_path / "dirB").mkdir()
    astronaut = cv2.imread(str(images / "astronaut.jpg"))
    cv2.imwrite(str(tmp_path / "dirA" / "x.png"), astronaut)
    cv2.imwrite(str(tmp_path / "dirB" / "x.png"), cv2.flip(astronaut, 1))
    out = tmp_path / "o"
    assert main(["predict", str(tmp_path / "dirA"), str(tmp_path / "dirB"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["x-2.png", "x.png"]
    first, second = cv2.imread(str(out / "x.png")), cv2.imread(str(out / "x-2.png"))
    # Each its own photo, not one of them twice: the second is the mirror image of the first.
    assert np.abs(first.astype(int) - second).mean() > 5 * np.abs(cv2.flip(first, 1).astype(int) - second).mean()
    assert "dirB/x.png is annotated as x-2.png" in capsys.readouterr().err


def test_predict_exits_0_when_every_image_is_read(images, capsys):
    assert main(["predict", str(images / "astronaut.jpg")]) == 0
    assert "1 of 1 images done" in capsys.readouterr().out


def test_predict_reports_a_bad_model_without_traceback(images, tmp_path, capsys):
    assert main(["predict", str(images), "--model", str(tmp_path / "nope.onnx")]) == 2
    assert "nope.onnx" in capsys.readouterr().err


def test_video_round_trip(fer_video, tmp_path, capsys):
    out, timeline, plot = tmp_path / "annotated.mp4", tmp_path / "timeline.csv", tmp_path / "timeline.png"
    code = main(["video", str(fer_video), "--out", str(out), "--csv", str(timeline), "--plot", str(plot), "--quiet"])
    assert code == 0
    assert _frame_count(out) == FRAMES
    rows = list(csv.DictReader(timeline.open()))
    assert len(rows) >= FRAMES * 0.8  # the face is found in (nearly) every frame
    assert [int(r["frame"]) for r in rows] == sorted(int(r["frame"]) for r in rows)
    assert {r["track_id"] for r in rows} == {"1"}  # one face, one track
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert f"{FRAMES} frames" in printed and "face #1" in printed


def test_video_of_a_happy_face_is_mostly_happy(fer_video, tmp_path):
    # Needs the real model.
    timeline = tmp_path / "timeline.csv"
    assert main(["video", str(fer_video), "--csv", str(timeline), "--quiet"]) == 0
    emotions = [r["emotion"] for r in csv.DictReader(timeline.open())]
    assert emotions.count("happy") / len(emotions) >= 0.8


@pytest.mark.parametrize("content", [b"", b"this is not a video" * 100], ids=["zero-byte", "garbage"])
def test_video_rejects_unreadable_files(tmp_path, capsys, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    assert main(["video", str(bad), "--csv", str(tmp_path / "t.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.mp4" in err and "Traceback" not in err


def test_video_rejects_a_missing_file_and_an_unknown_output_type(fer_video, tmp_path, capsys):
    assert main(["video", str(tmp_path / "missing.mp4"), "--quiet"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["video", str(fer_video), "--out", str(tmp_path / "out.xyz"), "--quiet"]) == 2
    assert "unsupported video type" in capsys.readouterr().err


def test_video_refuses_to_write_over_its_input(fer_video, tmp_path, capsys):
    clip = tmp_path / "clip.avi"
    clip.write_bytes(fer_video.read_bytes())
    for option in ("--out", "--csv", "--plot"):
        assert main(["video", str(clip), option, str(clip), "--quiet"]) == 2
        assert "would overwrite the input" in capsys.readouterr().err
    assert clip.read_bytes() == fer_video.read_bytes()


def test_stream_prints_one_json_line_per_frame(fer_video, capsys):
    assert main(["stream", "--source", str(fer_video)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["frame_index"] for line in lines] == list(range(FRAMES))
    assert sum(bool(line["faces"]) for line in lines) >= FRAMES * 0.8
    assert all(face["track_id"] == 1 for line in lines for face in line["faces"])
    assert main(["stream", "--source", str(fer_video), "--max-frames", "5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5


def test_stream_reads_a_folder_of_photos_photo_by_photo(tmp_path, capsys):
    """Unrelated photos are not a video: each reads as `predict` reads it (nothing smoothed across them), and
    each line names its photo; only videos have a time."""
    from conftest import LFW_EXPRESSIONS, lfw_frame

    rows = list(csv.DictReader((LFW_EXPRESSIONS / "labels.csv").open()))
    sad, happy = (next(r["image"] for r in rows if r["emotion"] == e) for e in ("sad", "happy"))
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "1-sad.png"), lfw_frame(sad))  # the same place in the frame: one "track" to a tracker
    cv2.imwrite(str(photos / "2-happy.png"), lfw_frame(happy))
    assert main(["predict", str(photos), "--json", str(tmp_path / "p.json")]) == 0
    expected = {r["path"]: r["faces"] for r in json.loads((tmp_path / "p.json").read_text())}
    capsys.readouterr()
    assert main(["stream", "--source", str(photos)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["path"] for line in lines] == [str(photos / "1-sad.png"), str(photos / "2-happy.png")]
    assert all(line["time_s"] is None for line in lines)
    for line in lines:
        (face,) = line["faces"]
        (alone,) = expected[line["path"]]
        assert face["emotion"] == alone["emotion"] and face["track_id"] == 1
        assert face["scores"] == pytest.approx(alone["scores"], abs=1e-3)


def test_stream_stops_quietly_when_its_reader_goes_away(fer_video):
    """`emorec stream ... | head -1`: the reader closes the pipe after one line; no traceback follows."""
    proc = subprocess.Popen([sys.executable, "-m", "emorec.cli", "stream", "--source", str(fer_video)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert json.loads(proc.stdout.readline())["frame_index"] == 0
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err


def test_stream_reports_a_bad_source(tmp_path, capsys):
    assert main(["stream", "--source", str(tmp_path / "missing.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_frames_without_faces_give_empty_results(tmp_path, capsys):
    path = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    for _ in range(5):
        writer.write(np.full((240, 320, 3), 90, np.uint8))
    writer.release()
    assert main(["stream", "--source", str(path)]) == 0
    assert [json.loads(line)["faces"] for line in capsys.readouterr().out.splitlines()] == [[]] * 5
    assert main(["video", str(path), "--plot", str(tmp_path / "p.png"), "--quiet"]) == 0
    assert "5 frames, 0 with faces" in capsys.readouterr().out


def test_stream_reads_a_live_mjpeg_url(mjpeg_server, capsys):
    assert main(["stream", "--source", mjpeg_server, "--max-frames", "4"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4
    indices = [line["frame_index"] for line in lines]
    assert indices == sorted(set(indices))  # newest frames only, never one twice
    assert all(len(line["faces"]) == 1 and line["faces"][0]["track_id"] == 1 for line in lines)
