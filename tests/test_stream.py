"""The one frame loop (``EmotionRecognizer.stream``), the package's front door, and the result types, on real
faces: scikit-image's astronaut photo, moved across 640x480 frames of a video written here."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import emorec
from emorec import ConfigError, EmorecError, EmotionRecognizer, EngineConfig, Face, FrameResult, InputError
from emorec.labels import EMOTIONS
from emorec.recording import MAX_PLOTTED_TRACKS, AnnotatedVideoWriter, Recorder, Timeline
from emorec.summary import RecordingSummary, dominant_emotion

FRAMES, FPS = 12, 10.0


@pytest.fixture(scope="module")
def astronaut_video(astronaut_bgr, tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "astronaut.avi"
    face = cv2.resize(astronaut_bgr, (320, 320))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (640, 480))
    for i in range(FRAMES):
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[80:400, 40 + 10 * i : 360 + 10 * i] = face
        writer.write(frame)
    writer.release()
    return path


def test_front_door_is_light_and_complete():
    code = (
        "import sys, emorec; heavy = {'cv2', 'onnxruntime', 'numpy', 'torch'} & set(sys.modules); "
        "assert not heavy, heavy; print(emorec.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() and out.strip() != "0+unknown"
    assert set(emorec.__all__) >= {"EmotionRecognizer", "Face", "FrameResult", "EMOTIONS", "annotate",
                                   "__version__", "EmorecError", "InputError"}
    assert callable(emorec.annotate) and emorec.EMOTIONS[3] == "happy"


def test_errors_share_one_base_and_keep_their_builtin_ones():
    from emorec.errors import ConfigError, DatasetError, RecordingError, RunExistsError, UnknownModelError

    for error, builtin in ((InputError, ValueError), (DatasetError, ValueError), (ConfigError, ValueError),
                           (RecordingError, OSError), (RunExistsError, FileExistsError),
                           (UnknownModelError, KeyError)):
        assert issubclass(error, EmorecError) and issubclass(error, builtin)
    assert str(UnknownModelError("unknown model 'x'")) == "unknown model 'x'"  # no KeyError quotes


def test_constructor_takes_a_config_or_keywords_and_has_no_shared_tracker(rec, astronaut_bgr):
    with pytest.raises(ConfigError, match="give settings as keywords"):
        EmotionRecognizer("emonet_wide")
    with pytest.raises(ConfigError, match="did you mean 'smoothing'"):
        EmotionRecognizer(smoothin=True)
    config = EngineConfig(max_faces=1, detect_every=2)
    assert EmotionRecognizer(config).config == config
    assert EmotionRecognizer(config, max_faces=None).config == EngineConfig(detect_every=2)
    assert config.describe() == "max_faces=1, detect_every=2" and EngineConfig().describe() == "defaults"
    assert rec.stream().config.detect_every == rec.config.detect_every
    assert rec.stream(detect_every=3).config.detect_every == 3 and rec.config.detect_every != 3
    # The engine itself never tracks, so unrelated callers (web requests) cannot share track ids.
    assert [f.track_id for f in rec.process(astronaut_bgr).faces] == [None]
    assert [f.track_id for f in rec.process(astronaut_bgr).faces] == [None]


def test_stream_of_a_video_keeps_each_frame_its_index_and_time(rec, astronaut_video):
    with rec.stream(astronaut_video) as stream:
        assert stream.fps == pytest.approx(FPS) and not stream.live
        results = list(stream)
    assert [r.frame_index for r in results] == list(range(FRAMES))
    assert [r.time_s for r in results] == pytest.approx([i / FPS for i in range(FRAMES)])
    assert all(r.image.shape == (480, 640, 3) for r in results)
    assert all([f.track_id for f in r.faces] == [1] for r in results), "one face, one track"
    # The face moves right by 10 px a frame, and so does its box.
    lefts = [r.faces[0].box[0] for r in results]
    assert lefts[-1] - lefts[0] == pytest.approx(10 * (FRAMES - 1), abs=12)
    assert results[3].to_dict()["time_s"] == pytest.approx(0.3)


def test_two_streams_of_one_engine_do_not_share_tracks(rec, astronaut_video):
    first, second = rec.stream(astronaut_video), rec.stream(astronaut_video)
    pairs = list(zip(first, second, strict=True))
    assert all(a.faces[0].track_id == b.faces[0].track_id == 1 for a, b in pairs)


def test_stream_max_frames_says_whether_it_cut(rec, astronaut_video):
    stream = rec.stream(astronaut_video, max_frames=5)
    assert len(list(stream)) == 5 and stream.truncated
    with pytest.raises(RuntimeError, match="iterated once"):
        list(stream)
    whole = rec.stream(astronaut_video, max_frames=FRAMES)
    assert len(list(whole)) == FRAMES and not whole.truncated


def test_stream_of_an_image_and_of_a_folder(rec, astronaut_bgr, tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), astronaut_bgr)
    cv2.imwrite(str(tmp_path / "b.png"), cv2.flip(astronaut_bgr, 1))
    (single,) = list(rec.stream(tmp_path / "a.jpg"))
    assert single.frame_index == 0 and len(single.faces) == 1 and rec.stream(tmp_path / "a.jpg").fps is None
    both = list(rec.stream(tmp_path))
    assert [r.frame_index for r in both] == [0, 1]
    assert both[1].faces[0].box[0] > 512 - both[0].faces[0].box[2] - 20  # the mirrored face, in name order


def test_stream_of_bad_sources_raises_input_error_naming_them(rec, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty.mp4: empty file"):
        rec.stream(tmp_path / "empty.mp4")
    (tmp_path / "garbage.mp4").write_bytes(b"not a video" * 100)
    with pytest.raises(InputError, match="garbage.mp4"):
        list(rec.stream(tmp_path / "garbage.mp4"))


def test_annotate_uses_the_decoded_frame_without_reading_the_file_again(rec, astronaut_bgr, tmp_path, monkeypatch):
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), astronaut_bgr)
    result = rec.process(path)
    decodes = []
    monkeypatch.setattr(cv2, "imdecode", lambda *args: decodes.append(args) or None)
    annotated = rec.annotate(result, bars=True)
    assert decodes == [] and annotated.shape == astronaut_bgr.shape
    assert np.any(annotated != astronaut_bgr) and np.array_equal(result.image, astronaut_bgr)
    with pytest.raises(InputError, match="FrameResult or an image array"):
        rec.annotate(str(path), result.faces)


def test_faces_are_hashable_values():
    scores = np.full(7, 1 / 7, np.float32)
    a, b = Face((0, 0, 10, 10), scores, 0.9, 1), Face((0, 0, 10, 10), scores.copy(), 0.9, 1)
    other = Face((0, 0, 10, 10), np.roll(np.eye(7, dtype=np.float32)[0], 3), 0.9, 1)
    assert a == b and hash(a) == hash(b) and a != other
    assert a in [other, b] and len({a, b, other}) == 2
    assert FrameResult([a], (10, 10)) == FrameResult([b], (10, 10))


def test_plot_legend_stays_inside_the_figure_with_one_face(tmp_path):
    timeline = Timeline()
    scores = np.full(7, 1 / 7, np.float32)
    for i in range(5):
        timeline.add(FrameResult([Face((0, 0, 50, 50), scores, track_id=1)], (100, 100), frame_index=i), i / 10)
    fig = timeline.figure()
    fig.canvas.draw()
    (legend,) = fig.legends
    box, page = legend.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
    assert not box.overlaps(fig.axes[0].get_window_extent()), "the legend does not cover the plot"


def _face(track_id: int, **probs: float) -> Face:
    scores = np.array([probs.get(name, 0.0) for name in EMOTIONS], np.float32)
    scores += (1 - scores.sum()) / len(EMOTIONS)
    return Face((0, 0, 50, 50), scores, track_id=track_id)


def test_a_track_is_named_by_the_argmax_of_its_mean_probabilities(tmp_path):
    """Three frames lean to happy, two are clearly neutral: most frequent label happy, mean neutral. One rule
    (emorec.summary.dominant_emotion) for `emorec video`, its JSON, batch and the web upload."""
    leaning = [_face(1, happy=0.40, neutral=0.35)] * 3
    clear = [_face(1, neutral=0.90)] * 2
    recorder = Recorder(summary_path=tmp_path / "summary.json", fps=FPS, source="clip.avi")
    for i, face in enumerate(leaning + clear):
        recorder.write(FrameResult([face], (100, 100), frame_index=i), time_s=i / FPS)
    summary = recorder.close()
    (track,) = summary["tracks"]
    assert track["emotion"] == "neutral" == dominant_emotion(np.stack([f.scores for f in leaning + clear]))
    assert track["scores"]["neutral"] == max(track["scores"].values())
    assert (track["track_id"], track["frames"], track["first_s"], track["last_s"]) == (1, 5, 0.0, 0.4)
    assert summary["duration_s"] == pytest.approx(0.5) and summary["source"] == "clip.avi"
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_a_summary_spans_its_earliest_to_latest_frame_whatever_their_order():
    """A desktop session that went back in a video adds frames out of time order."""
    summary = RecordingSummary(fps=FPS)
    for time_s in (5.0, 6.0, 1.0, 2.0):
        summary.add(FrameResult([_face(1, happy=0.9)], (100, 100)), time_s)
    (track,) = summary.to_dict()["tracks"]
    assert (track["first_s"], track["last_s"]) == (1.0, 6.0) and track["frames"] == 4
    assert summary.duration_s == pytest.approx(6.0 + 1 / FPS)


def test_recorded_video_holds_each_frame_until_the_next_ones_time(tmp_path):
    """Real-time playback skips the frames the engine is too slow for: the video must still last as long as
    the source (each shown frame held until the next), in step with the CSV's time_s."""
    times = [0.0, 0.3, 0.35, 0.36, 1.0]  # 0.35 and 0.36 fall in one video frame at 10 fps: the later wins
    recorder = Recorder(video=tmp_path / "rec.avi", csv_path=tmp_path / "rec.csv", fps=FPS)
    for i, t in enumerate(times):
        recorder.write(FrameResult([], (64, 48), frame_index=i), np.full((48, 64, 3), 40 * i, np.uint8), t)
    summary = recorder.close()
    capture = cv2.VideoCapture(str(tmp_path / "rec.avi"))
    shades = []
    while (frame := capture.read())[0]:
        shades.append(round(frame[1].mean() / 40))
    capture.release()
    assert shades == [0, 0, 0, 1, 3, 3, 3, 3, 3, 3, 4]
    assert len(shades) / FPS == pytest.approx(summary["duration_s"])


def test_plot_shares_one_time_axis_and_counts_the_faces_it_leaves_out():
    timeline = Timeline(fps=FPS)
    for i in range(40):  # faces 1..10 come and go; face k is seen for 4 * k frames from frame 40 - 4 * k
        faces = [_face(k, happy=0.5) for k in range(1, 11) if i >= 40 - 4 * k]
        timeline.add(FrameResult(faces, (100, 100), frame_index=i), i / FPS)
    fig = timeline.figure()
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == MAX_PLOTTED_TRACKS
    assert [ax.get_xlim() for ax in panels] == [pytest.approx((0.0, 4.0))] * len(panels)  # the whole recording
    assert "2 more faces" in panels[-1].get_xlabel()
    assert [ax.get_title().split(":")[0] for ax in panels] == [f"face #{k}" for k in range(10, 2, -1)]


def test_mp4_is_h264(tmp_path, astronaut_bgr):
    av = pytest.importorskip("av", reason="PyAV writes H.264")
    writer = AnnotatedVideoWriter(tmp_path / "clip.mp4", 10.0, (511, 383))  # odd sides are made even
    for i in range(10):
        writer.write(cv2.resize(np.roll(astronaut_bgr, 5 * i, axis=1), (511, 383)))
    writer.close()
    with av.open(str(tmp_path / "clip.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (510, 382)
        assert sum(1 for _ in container.decode(stream)) == 10
