"""Frame sources: video files in order, live captures newest-frame-only, clear errors naming the source."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from emorec.sources import InputError, Source, _LatestFrameReader, expand_image_paths, parse_source


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    """40 frames whose brightness encodes their index, so a reader can tell which frame it got."""
    path = tmp_path_factory.mktemp("video") / "numbered.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (160, 120))
    for i in range(40):
        writer.write(np.full((120, 160, 3), i * 6, np.uint8))
    writer.release()
    return path


def test_a_video_file_yields_every_frame_in_order(numbered_video):
    with Source(numbered_video) as source:
        assert not source.live and source.fps == pytest.approx(20.0) and source.frame_count == 40
        frames = list(source)
    assert [f.index for f in frames] == list(range(40))
    assert frames[10].time_s == pytest.approx(0.5)
    assert [round(float(f.image.mean()) / 6) for f in frames] == list(range(40))


def test_a_video_file_seeks_while_it_is_read(numbered_video, tmp_path):
    """Forwards, backwards, past the end (its last frame), and just as its last frame was read."""
    got = []
    with Source(numbered_video) as source:
        assert source.seekable
        for frame in source:
            got.append((frame.index, round(float(frame.image.mean()) / 6), frame.time_s))
            if len(got) == 3:
                source.seek(1.5)
            elif len(got) == 5:
                source.seek(0.2)
            elif len(got) == 7:
                source.seek(99.0)
            elif len(got) == 8:
                source.seek(1.0)  # after the last frame: the next read goes there, not to the end
            elif len(got) == 10:
                break
    assert [index for index, _, _ in got] == [0, 1, 2, 30, 31, 4, 5, 39, 20, 21]
    assert all(index == shown for index, shown, _ in got), "each frame is the one its index says"
    assert got[3][2] == pytest.approx(1.5)
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    with Source(photo) as still, pytest.raises(InputError, match="only a video file can be sought"):
        still.seek(1.0)


def test_a_live_reader_hands_a_slow_consumer_only_the_newest_frames(numbered_video):
    reader = _LatestFrameReader(cv2.VideoCapture(str(numbered_video)), "test capture")
    got = []
    for frame in reader:
        got.append(frame.index)
        time.sleep(0.02)  # a consumer slower than the capture
    reader.stop()
    assert got == sorted(set(got))  # never the same frame twice, never backwards
    assert len(got) < 40  # frames were skipped instead of queued


def test_parse_source():
    assert parse_source("0") == 0 and parse_source(2) == 2
    assert parse_source("rtsp://camera/stream") == "rtsp://camera/stream"
    assert parse_source("clip.mp4") == "clip.mp4"


def test_unopenable_sources_are_named_in_the_error(tmp_path):
    with pytest.raises(InputError, match="missing.mp4: no such file"):
        Source(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="no images in this folder"):
        Source(tmp_path)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(InputError, match="garbage.mp4"):
        with Source(garbage) as source:
            list(source)


def test_folders_expand_to_their_images_with_relative_names(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.jpg", "b.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    items = expand_image_paths([tmp_path, tmp_path / "missing.jpg"])
    assert [str(rel) for _, rel in items] == ["a/x.jpg", "b.png", "missing.jpg"]
