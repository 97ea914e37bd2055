"""The desktop app on real FER2013 faces, driven through its widgets with pytest-qt on Qt's offscreen platform.

The test video is made here from two PublicTest faces enlarged into 640x480 frames: a smiling woman (the
largest face, labelled happy) and a surprised face. ``EMOREC_SCREENSHOTS=1`` also saves the window to
docs/screenshots/desktop.png for docs/desktop.md.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication exists: no display needed
pytest.importorskip("PySide6.QtWidgets", reason="the desktop extra (PySide6) is not installed")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed")

import cv2  # noqa: E402
from PySide6.QtCore import QPoint, Qt  # noqa: E402

from emorec.desktop.core import EmotionTimeline, FaceSelection  # noqa: E402
from emorec.desktop.widgets import TimelinePlot  # noqa: E402
from emorec.desktop.window import MainWindow  # noqa: E402
from emorec.engine import EmotionRecognizer  # noqa: E402
from emorec.labels import EMOTIONS, emotion_id  # noqa: E402
from emorec.recording import AnnotatedVideoWriter  # noqa: E402
from emorec.types import Face  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HAPPY_INDEX, SURPRISE_INDEX = 30, 329  # PublicTest positions; both found by BlazeFace when enlarged like this
HAPPY_AT, SURPRISE_AT = (40, 60, 240), (400, 200, 160)  # x, y, side in the frame
VIDEO_FPS, VIDEO_FRAMES = 10.0, 40
WAIT_MS = 20_000  # generous: a training run shares the CPU


@pytest.fixture(scope="module")
def faces_frame(fer2013) -> np.ndarray:
    """A 640x480 BGR frame with the happy face (large, left) and the surprised face (smaller, right)."""
    images, labels = fer2013.split("PublicTest")
    assert labels[HAPPY_INDEX] == emotion_id("happy") and labels[SURPRISE_INDEX] == emotion_id("surprise")
    frame = np.full((480, 640), 128, np.uint8)
    for index, (x, y, side) in ((HAPPY_INDEX, HAPPY_AT), (SURPRISE_INDEX, SURPRISE_AT)):
        frame[y : y + side, x : x + side] = cv2.resize(images[index], (side, side), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


@pytest.fixture(scope="module")
def faces_video(faces_frame, tmp_path_factory) -> Path:
    """4 s of the two faces at 10 fps, drifting right (so it is a video, not a still)."""
    path = tmp_path_factory.mktemp("video") / "two_faces.mp4"
    writer = AnnotatedVideoWriter(path, VIDEO_FPS, (640, 480))
    for i in range(VIDEO_FRAMES):
        writer.write(np.roll(faces_frame, i // 4, axis=1))
    writer.close()
    return path


@pytest.fixture(scope="module")
def faces_image(faces_frame, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("image") / "two_faces.png"
    cv2.imwrite(str(path), faces_frame)
    return path


@pytest.fixture
def dialogs() -> list[tuple[str, str]]:
    """(title, text) of every error dialog the window would have shown."""
    return []


@pytest.fixture
def window(qtbot, recognizer, dialogs, tmp_path):
    win = MainWindow(recognizer, out_dir=tmp_path / "captures", error_dialog=lambda _, t, x: dialogs.append((t, x)))
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def wait_for_faces(qtbot, window: MainWindow, count: int = 2) -> None:
    qtbot.waitUntil(
        lambda: window.last_frame is not None and len(window.last_frame.result.faces) == count, timeout=WAIT_MS
    )


def wait_until_idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: window.start_button.text() == "Start", timeout=WAIT_MS)


def shown_probabilities(window: MainWindow) -> np.ndarray:
    return np.array([window.bars.bars[name].value() / 1000 for name in EMOTIONS])


def click_frame_point(qtbot, window: MainWindow, x: float, y: float) -> None:
    """Click the live view where frame pixel (x, y) is drawn (the frame is scaled to fit, centred)."""
    view = window.view
    scale = min(view.width() / 640, view.height() / 480)
    left, top = (view.width() - 640 * scale) / 2, (view.height() - 480 * scale) / 2
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(round(left + x * scale), round(top + y * scale)))


# ----- the window on real faces


def test_video_plays_with_seven_probabilities_of_the_largest_face(qtbot, window, faces_video, dialogs):
    window.start(faces_video)
    wait_for_faces(qtbot, window)
    faces = window.last_frame.result.faces
    largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    assert largest.box[0] < 320, "the happy face on the left is the largest"
    qtbot.waitUntil(lambda: "largest face" in window.bars.title.text(), timeout=WAIT_MS)
    probs = shown_probabilities(window)
    assert len(window.bars.bars) == 7 and list(window.bars.bars) == list(EMOTIONS)
    assert probs.sum() == pytest.approx(1.0, abs=0.01)
    assert " fps" in window.fps_label.text() and window.latency_label.text().startswith("latency")
    assert window.faces_label.text() == "2 faces"
    wait_until_idle(qtbot, window)
    assert not dialogs
    assert "end of" in window.statusBar().currentMessage()
    assert 0 < len(window.timeline) <= VIDEO_FRAMES
    # Shown at the source's pace, not as fast as the engine can go: 40 frames at 10 fps span ~3.9 s.
    times = [t for t, _ in window.timeline.points()]
    assert times[-1] - times[0] > 3.0


def test_known_happy_face_is_labelled_happy(qtbot, window, faces_video):
    """Needs the trained model (the 2-epoch placeholder is near chance)."""
    window.start(faces_video)
    wait_for_faces(qtbot, window)
    qtbot.waitUntil(lambda: "largest face" in window.bars.title.text(), timeout=WAIT_MS)
    assert window.bars.title.text().startswith("happy "), window.bars.title.text()
    assert shown_probabilities(window).argmax() == emotion_id("happy")


def test_clicking_a_face_makes_the_panel_follow_it(qtbot, window, faces_image, dialogs):
    window.start(faces_image)
    wait_for_faces(qtbot, window)
    wait_until_idle(qtbot, window)  # an image is one frame: the engine thread is done, the frame stays
    faces = window.last_frame.result.faces
    small = min(faces, key=lambda f: f.box[2] - f.box[0])
    large = max(faces, key=lambda f: f.box[2] - f.box[0])
    assert np.allclose(shown_probabilities(window), large.scores, atol=0.001)

    click_frame_point(qtbot, window, (small.box[0] + small.box[2]) / 2, (small.box[1] + small.box[3]) / 2)
    assert "selected face" in window.bars.title.text()
    assert window.bars.title.text().startswith(small.emotion)
    assert np.allclose(shown_probabilities(window), small.scores, atol=0.001)

    click_frame_point(qtbot, window, 620, 20)  # background: back to the largest face
    assert "largest face" in window.bars.title.text()
    assert np.allclose(shown_probabilities(window), large.scores, atol=0.001)
    assert not dialogs


def test_snapshot_saves_the_annotated_frame(qtbot, window, recognizer, faces_image, faces_frame):
    assert not window.snapshot_button.isEnabled(), "nothing to save before any source"
    window.start(faces_image)
    wait_for_faces(qtbot, window)
    assert window.snapshot_button.isEnabled()
    path = window.save_snapshot()
    assert path is not None and path.parent == window.out_dir
    saved = cv2.imread(str(path))
    assert not np.array_equal(saved, faces_frame), "boxes and labels are drawn on the snapshot"
    assert np.array_equal(saved, recognizer.annotate(faces_frame, window.last_frame.result.faces))
    qtbot.mouseClick(window.snapshot_button, Qt.MouseButton.LeftButton)
    assert len(list(window.out_dir.glob("*.png"))) == 2


def test_record_writes_annotated_video_and_csv_timeline(qtbot, window, faces_video):
    window.start(faces_video)
    qtbot.waitUntil(lambda: window.last_frame is not None, timeout=WAIT_MS)
    qtbot.mouseClick(window.record_button, Qt.MouseButton.LeftButton)
    assert window.recording is not None and window.recording_label.text().startswith("REC")
    video, timeline = window.recording
    # The message shares the status bar with the permanent labels; all of it must be readable.
    bar = window.statusBar()
    permanent = sum(w.sizeHint().width() for w in (window.recording_label, window.faces_label, window.fps_label,
                                                     window.latency_label))
    assert bar.fontMetrics().horizontalAdvance(bar.currentMessage()) < bar.width() - permanent - 40
    wait_until_idle(qtbot, window)  # the recording ends with the source
    assert window.recording is None and not window.record_button.isChecked()
    assert "recorded" in window.statusBar().currentMessage()

    capture = cv2.VideoCapture(str(video))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape == (480, 640, 3) and frames > 5
    with open(timeline, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) > 10
    assert {row["emotion"] for row in rows} <= set(EMOTIONS)
    assert len({row["track_id"] for row in rows}) == 2
    probs = np.array([[float(row[name]) for name in EMOTIONS] for row in rows])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=0.01)


def test_record_keeps_the_sources_timing_when_the_engine_drops_frames(qtbot, window, faces_video, monkeypatch):
    """40 frames at 10 fps are 4 s of source. An engine at ~4 fps is shown fewer than half of them (playback
    drops the late ones), yet the MP4 lasts as long as the source it recorded (17.4 s of a video gave 11.8 s),
    and each CSV row's time_s is its place in the MP4."""
    process = EmotionRecognizer.process

    def slow_process(self, *args, **kwargs):
        time.sleep(0.25)
        return process(self, *args, **kwargs)

    monkeypatch.setattr(EmotionRecognizer, "process", slow_process)
    window.start(faces_video)
    assert not window.record_button.isEnabled(), "not before the source is open: its frame rate is unknown"
    qtbot.waitUntil(window.record_button.isEnabled, timeout=WAIT_MS)
    window.record_button.click()
    video, timeline = window.recording
    wait_until_idle(qtbot, window)
    with open(timeline, newline="") as f:
        rows = list(csv.DictReader(f))
    shown = sorted({int(row["frame"]) for row in rows})
    assert 5 < len(shown) < VIDEO_FRAMES / 2, "the slow engine skipped frames"
    first = shown[0]
    assert all(float(row["time_s"]) == pytest.approx((int(row["frame"]) - first) / VIDEO_FPS) for row in rows)
    capture = cv2.VideoCapture(str(video))
    fps, written = capture.get(cv2.CAP_PROP_FPS), 0
    while capture.read()[0]:
        written += 1
    capture.release()
    # At the video's rate, up to the end of the last frame shown (playback may drop the last one or two).
    assert fps == pytest.approx(VIDEO_FPS) and shown[-1] >= VIDEO_FRAMES - 4
    assert written == shown[-1] + 1 - first


def test_unwritable_output_folder_gets_a_dialog(qtbot, window, dialogs, faces_video, tmp_path):
    window.out_dir = tmp_path / "a-file"
    window.out_dir.write_text("not a folder")
    window.start(faces_video)
    qtbot.waitUntil(lambda: window.last_frame is not None, timeout=WAIT_MS)
    assert window.save_snapshot() is None
    assert dialogs[-1][0] == "Cannot save the snapshot" and "a-file" in dialogs[-1][1]
    window.record_button.click()
    assert dialogs[-1][0] == "Cannot record" and "a-file" in dialogs[-1][1]
    assert not window.record_button.isChecked() and window.recording is None
    assert window.engine.isRunning(), "the video goes on"


def test_pause_stops_the_frames_and_resume_continues(qtbot, window, faces_video):
    window.start(faces_video)
    qtbot.waitUntil(lambda: window.last_frame is not None, timeout=WAIT_MS)
    qtbot.mouseClick(window.pause_button, Qt.MouseButton.LeftButton)
    assert window.pause_button.text() == "Resume"
    qtbot.wait(300)  # let a frame already in flight arrive
    paused_at = window.last_frame.result.frame_index
    qtbot.wait(700)
    assert window.last_frame.result.frame_index == paused_at
    qtbot.mouseClick(window.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.last_frame.result.frame_index > paused_at, timeout=WAIT_MS)


def test_stream_url_source(qtbot, window, dialogs, mjpeg_server):
    window.kind.setCurrentIndex(window.kind.findData("stream"))
    assert window.path.isVisible() and not window.browse_button.isVisible()
    assert "URL" in window.path.placeholderText()
    window.path.setText(mjpeg_server)
    window.start_button.click()
    wait_for_faces(qtbot, window, count=1)
    assert window.engine.fps is None and not dialogs  # live: shown as it comes, never paced
    window.stop()
    window.path.clear()
    window.start_button.click()
    assert dialogs[-1][0] == "No URL given"


@pytest.mark.parametrize("width", [260, 300, 340, 400, 520])
def test_timeline_legend_never_touches_the_tick_labels(qtbot, width):
    plot = TimelinePlot(EmotionTimeline())
    qtbot.addWidget(plot)
    plot.resize(width, 220)
    entries, area, ticks = plot.layout_for(plot.fontMetrics())
    for _, box in entries:
        assert 0 <= box.left() and box.right() <= width
        assert not any(box.intersects(tick) for tick in ticks), (width, box, ticks)
        assert box.bottom() < area.top()


def test_closing_the_window_stops_the_engine_thread(qtbot, recognizer, faces_video, tmp_path):
    win = MainWindow(recognizer, out_dir=tmp_path)
    qtbot.addWidget(win)
    win.show()
    win.start(faces_video)
    qtbot.waitUntil(lambda: win.last_frame is not None, timeout=WAIT_MS)
    engine = win.engine
    assert engine.isRunning()
    win.close()
    assert engine.isFinished() and win.engine is None


def test_screenshot_of_the_window(qtbot, window, faces_video, tmp_path):
    window.resize(1100, 620)
    window.start(faces_video)
    wait_for_faces(qtbot, window)
    qtbot.waitUntil(lambda: len(window.timeline) >= 35, timeout=WAIT_MS)
    window.pause_button.click()
    keep = os.environ.get("EMOREC_SCREENSHOTS") == "1"
    path = REPO / "docs" / "screenshots" / "desktop.png" if keep else tmp_path / "desktop.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(path))
    shot = cv2.imread(str(path))
    assert shot.shape[:2] == (window.height(), window.width())
    assert shot.std() > 20, "the window is drawn, not blank"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12 on")
def test_painting_keeps_its_references_to_none(qtbot, window, faces_image):
    """PySide6 6.12.0 drops a reference to None on every call that returns nothing: on Python 3.11 the app
    aborted with "deallocating None" after ~20 s of video. This catches such a PySide6 being installed."""
    window.start(faces_image)
    wait_for_faces(qtbot, window)
    before = sys.getrefcount(None)
    for _ in range(100):
        window.grab()
    assert sys.getrefcount(None) > before - 100


# ----- bad sources get a dialog, not a crash


@pytest.mark.parametrize(
    ("make_source", "title", "says"),
    [
        (lambda d: d / "missing.mp4", "Cannot open the source", "no such file"),
        (lambda d: d / "empty.mp4", "Cannot open the source", "empty file"),
        (lambda d: d / "corrupt.mp4", "Cannot open the source", "cannot open as a video"),
        (lambda d: d / "corrupt.png", "Cannot open the source", "not an image"),
        (lambda d: 99, "Camera not available", "camera 99"),
    ],
    ids=["missing", "zero-byte", "corrupt-video", "corrupt-image", "no-camera"],
)
def test_bad_source_shows_a_dialog(qtbot, window, dialogs, tmp_path, make_source, title, says):
    (tmp_path / "empty.mp4").touch()
    noise = np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    (tmp_path / "corrupt.mp4").write_bytes(noise)
    (tmp_path / "corrupt.png").write_bytes(noise)
    window.start(make_source(tmp_path))
    qtbot.waitUntil(lambda: bool(dialogs), timeout=WAIT_MS)
    wait_until_idle(qtbot, window)
    assert len(dialogs) == 1
    assert dialogs[0][0] == title and says in dialogs[0][1]
    assert window.last_frame is None


def test_image_without_faces_says_so(qtbot, window, dialogs, tmp_path):
    from skimage import data

    path = tmp_path / "coffee.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    window.start(path)
    qtbot.waitUntil(lambda: bool(dialogs), timeout=WAIT_MS)
    assert dialogs == [("No faces found", dialogs[0][1])] and "coffee.png" in dialogs[0][1]
    assert window.last_frame is not None and window.bars.title.text() == "no face"


def test_start_with_no_file_chosen_asks_for_one(window, dialogs):
    window.kind.setCurrentIndex(window.kind.findData("video"))
    window.path.clear()
    window.start_button.click()
    assert dialogs and dialogs[0][0] == "No file chosen" and window.engine is None


# ----- the Qt-free core


def test_realtime_stream_drops_frames_when_the_engine_is_slower_than_the_source(recognizer, faces_video, monkeypatch):
    stream = recognizer.stream(faces_video, realtime=True)
    assert stream.fps == pytest.approx(VIDEO_FPS)
    process = stream.engine.process

    def slow_process(*args, **kwargs):
        time.sleep(0.25)  # an engine at 4 fps against a 10 fps video
        return process(*args, **kwargs)

    monkeypatch.setattr(stream.engine, "process", slow_process)
    start = time.monotonic()
    shown = list(stream)
    elapsed = time.monotonic() - start
    assert stream.frames_read == VIDEO_FRAMES
    assert len(shown) + stream.frames_dropped == VIDEO_FRAMES
    assert stream.frames_dropped >= VIDEO_FRAMES // 2
    assert elapsed < VIDEO_FRAMES / VIDEO_FPS + 1.0, "dropping keeps it in real time instead of lagging"
    assert [r.frame_index for r in shown] == sorted(r.frame_index for r in shown)


def test_face_selection_follows_the_clicked_track_then_falls_back_to_the_largest():
    scores = np.full(7, 1 / 7, np.float32)
    big, small = Face((0, 0, 100, 100), scores, track_id=1), Face((200, 0, 250, 50), scores, track_id=2)
    selection = FaceSelection()
    assert selection.pick([small, big]) == (big, False)
    assert selection.click([small, big], 220, 20) is small
    moved = Face((210, 5, 260, 55), scores, track_id=2)
    assert selection.pick([big, moved]) == (moved, True)
    assert selection.pick([big]) == (big, False)  # the clicked face left the picture
    assert selection.click([big, small], 500, 400) is None
    assert selection.pick([big, small]) == (big, False)


def test_timeline_keeps_only_its_span():
    timeline = EmotionTimeline(span_s=2.0)
    for i in range(50):
        timeline.add(i * 0.1, None if i % 10 == 0 else np.full(7, 1 / 7))
    times = [t for t, _ in timeline.points()]
    assert times[0] >= 4.9 - 2.0 - 1e-9 and times[-1] == pytest.approx(4.9)


# ----- personal calibration


@pytest.fixture(scope="module")
def resting_video(resting_face, tmp_path_factory) -> Path:
    """10 s at 10 fps of a real person whose resting face the model misreads (see conftest), sitting still:
    each frame moved by a pixel or two and with sensor noise."""
    _, (rest, *_), _, _ = resting_face
    path = tmp_path_factory.mktemp("video") / "resting.mp4"
    rng = np.random.default_rng(0)
    writer = AnnotatedVideoWriter(path, VIDEO_FPS, (640, 480))
    for _ in range(100):
        moved = np.roll(rest, tuple(rng.integers(-2, 3, 2)), axis=(0, 1)).astype(np.float32)
        writer.write(np.clip(moved + rng.normal(0, 3, rest.shape), 0, 255).astype(np.uint8))
    writer.close()
    return path


def test_calibrate_button_reads_the_resting_face_as_neutral(qtbot, window, resting_video, dialogs, tmp_path):
    assert not window.calibrate_button.isEnabled(), "nothing to calibrate with before a source runs"
    window.start(resting_video)
    wait_for_faces(qtbot, window, count=1)
    qtbot.waitUntil(lambda: "largest face" in window.bars.title.text(), timeout=WAIT_MS)
    assert window.bars.title.text().split()[0] in ("angry", "sad"), "the generic reading of this resting face"
    assert "Not calibrated" in window.calibration_label.text() and not window.save_baseline_button.isEnabled()

    window.calibrate_button.click()
    assert window.calibration_progress.isVisible() and not window.calibrate_button.isEnabled()
    assert "neutral face for 3 seconds" in window.calibration_label.text()
    qtbot.wait(50)  # let the layout take the prompt in
    label = window.calibration_label
    assert label.height() >= label.heightForWidth(label.width()), "the prompt's lines are all shown"
    for button in (window.calibrate_button, window.reset_calibration_button, window.save_baseline_button,
                   window.load_baseline_button):
        assert button.width() >= button.sizeHint().width(), f"{button.text()} is cut off"
    qtbot.waitUntil(lambda: 0 < window.calibration_progress.value() < 100, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.baseline is not None, timeout=WAIT_MS)
    assert not window.calibration_progress.isVisible() and "Calibrated" in window.calibration_label.text()
    qtbot.waitUntil(lambda: "calibrated)" in window.bars.title.text(), timeout=WAIT_MS)
    assert window.bars.title.text().startswith("neutral "), window.bars.title.text()
    assert shown_probabilities(window).argmax() == emotion_id("neutral")
    assert window.last_frame.result.faces[0].raw_scores.argmax() != emotion_id("neutral")

    saved = window.save_baseline(tmp_path / "me.json")
    assert saved is not None and json.loads(saved.read_text())["samples"] >= 3
    window.reset_calibration_button.click()
    assert window.baseline is None and not window.reset_calibration_button.isEnabled()
    qtbot.waitUntil(lambda: "calibrated)" not in window.bars.title.text(), timeout=WAIT_MS)
    assert window.load_baseline(saved) is not None and window.baseline.samples >= 3
    qtbot.waitUntil(lambda: "calibrated)" in window.bars.title.text(), timeout=WAIT_MS)
    window.stop()
    assert not dialogs


def test_a_loaded_baseline_applies_to_the_next_source(qtbot, window, recognizer, resting_face, resting_video,
                                                     tmp_path):
    _, (rest, *_), _, _ = resting_face
    recognizer.calibrate([rest]).save(tmp_path / "me.json")
    assert window.load_baseline(tmp_path / "me.json") is not None
    window.start(resting_video)
    qtbot.waitUntil(lambda: "calibrated)" in window.bars.title.text(), timeout=WAIT_MS)
    assert window.bars.title.text().startswith("neutral ")
    window.stop()


def test_bad_baseline_files_get_a_dialog_naming_them(window, dialogs, tmp_path):
    not_json = tmp_path / "notes.json"
    not_json.write_text("these are my notes")
    other_model = tmp_path / "other.json"
    data = {"format": "emorec-baseline", "version": 1, "classes": list(EMOTIONS), "samples": 3,
            "model": {"sha256": "0" * 64, "name": "someone else's model"},
            "log_probs": {name: -2.0 for name in EMOTIONS}}
    other_model.write_text(json.dumps(data))
    for path, says in ((not_json, "not JSON"), (other_model, "another classifier"),
                       (tmp_path / "gone.json", "no such file")):
        assert window.load_baseline(path) is None
        title, text = dialogs.pop()
        assert title == "Cannot use the baseline" and str(path) in text and says in text
    assert window.baseline is None


def test_calibrate_on_a_still_image_calibrates_the_followed_face_at_once(qtbot, window, faces_image, dialogs):
    window.start(faces_image)
    wait_for_faces(qtbot, window)
    wait_until_idle(qtbot, window)  # one frame: nothing more will come for a capture to read
    small = min(window.last_frame.result.faces, key=lambda f: f.box[2] - f.box[0])
    click_frame_point(qtbot, window, (small.box[0] + small.box[2]) / 2, (small.box[1] + small.box[3]) / 2)
    window.calibrate_button.click()
    assert window.baseline is not None and window.baseline.samples == 1
    assert not window.calibration_progress.isVisible() and "Calibrated" in window.calibration_label.text()
    assert "face #" in window.statusBar().currentMessage()
    # The photo is read again against the baseline, still following the clicked face: its own neutral face.
    qtbot.waitUntil(lambda: "selected face" in window.bars.title.text() and "calibrated)" in window.bars.title.text(),
                    timeout=WAIT_MS)
    assert window.bars.title.text().startswith("neutral "), window.bars.title.text()
    wait_until_idle(qtbot, window)
    assert window.calibrate_button.isEnabled() and window.reset_calibration_button.isEnabled()
    assert not dialogs


def test_calibrate_after_a_video_ended_or_on_a_faceless_image_says_why(qtbot, window, faces_video, dialogs,
                                                                         tmp_path):
    window.start(faces_video)
    wait_until_idle(qtbot, window)
    window.calibrate_button.click()
    ((title, text),) = dialogs
    assert title == "Nothing to calibrate with" and "two_faces.mp4 has ended" in text and "press Start" in text
    assert not window.calibrating and not window.calibration_progress.isVisible()
    assert window.calibrate_button.isEnabled() and window.baseline is None
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    window.start(blank)
    wait_until_idle(qtbot, window)
    dialogs.clear()  # "No faces found"
    window.calibrate_button.click()
    assert dialogs == [("No face to calibrate with", dialogs[0][1])] and "wall.png" in dialogs[0][1]
    assert not window.calibrating and window.baseline is None


def test_calibrating_without_a_source_says_what_to_do(window, dialogs):
    window.start_calibration()
    assert dialogs == [("Nothing to calibrate with", "Start the camera first, then press Calibrate.")]


# ----- a real video file: seeking, and every frame analysed


def decoded_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video, decoded from the start (no seeking), to check where a seek landed."""
    capture = cv2.VideoCapture(str(path))
    for _ in range(index + 1):
        ok, frame = capture.read()
        assert ok
    capture.release()
    return frame


def test_seeking_in_a_real_video_lands_where_asked(qtbot, window, pyfeat_video, dialogs):
    window.start(pyfeat_video)
    qtbot.waitUntil(lambda: window.seek_row.isVisible(), timeout=WAIT_MS)
    assert window.seek_bar.maximum() == 471 and window.position_label.text().endswith("/ 0:19.7")
    window.pause_button.click()
    qtbot.wait(300)  # a frame in flight arrives

    window.seek(12.0)  # paused: the frame there is shown, and the video stays paused
    qtbot.waitUntil(lambda: window.last_frame.result.frame_index == round(12.0 * 23.976), timeout=WAIT_MS)
    shown = window.last_frame.result
    assert shown.time_s == pytest.approx(12.0, abs=0.05) and window.position_label.text().startswith("0:12.0 /")
    assert window.seek_bar.value() == shown.frame_index
    assert np.abs(shown.image.astype(int) - decoded_frame(pyfeat_video, shown.frame_index)).mean() < 1.0
    qtbot.wait(500)
    assert window.last_frame.result.frame_index == shown.frame_index, "still paused"

    # A click on the seek bar's groove, a quarter of the way along, goes to about a quarter of the video.
    bar = window.seek_bar
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=QPoint(bar.width() // 4, bar.height() // 2))
    qtbot.waitUntil(lambda: window.last_frame.result.frame_index < 200, timeout=WAIT_MS)
    assert abs(window.last_frame.result.time_s - 19.7 / 4) < 1.0

    window.pause_button.click()  # resume: it plays on from there to the end
    wait_until_idle(qtbot, window)
    window.seek(18.0)  # after the end: played again from there
    assert window.start_button.text() == "Stop"
    qtbot.waitUntil(lambda: window.last_frame.result.time_s is not None and window.last_frame.result.time_s < 18.5,
                    timeout=WAIT_MS)
    assert window.last_frame.result.time_s >= 17.9
    wait_until_idle(qtbot, window)
    assert window.last_frame.result.frame_index > 18.0 * 23.976
    assert not dialogs


@pytest.mark.slow
def test_every_frame_analyses_each_frame_of_a_real_video(qtbot, window, pyfeat_video, dialogs, tmp_path):
    assert not window.every_frame.isVisible(), "a camera has no frames to wait for"
    window.kind.setCurrentIndex(window.kind.findData("video"))
    assert window.every_frame.isVisible()
    window.every_frame.setChecked(True)
    window.start(pyfeat_video)
    qtbot.waitUntil(lambda: window.start_button.text() == "Start", timeout=180_000)
    summary = window.engine.summary
    assert summary.frames_dropped == 0 and summary.frames_shown == summary.frames_read == 472
    assert window.last_frame.result.frame_index == 471
    assert "0 dropped" in window.statusBar().currentMessage() and not dialogs

    # Its export is the summary `emorec video --json` gives for the file: the same rule, the same faces.
    from emorec.cli import main

    exported = window.export_summary(tmp_path / "desktop.json")
    assert main(["video", str(pyfeat_video), "--json", str(tmp_path / "cli.json"), "--quiet"]) == 0
    desktop, cli = (json.loads((tmp_path / name).read_text()) for name in ("desktop.json", "cli.json"))
    assert exported is not None and desktop["frame_count"] == cli["frame_count"] == 472
    assert desktop["duration_s"] == cli["duration_s"] and desktop["tracks"], "a face is seen"
    assert [(t["track_id"], t["frames"], t["emotion"]) for t in desktop["tracks"]] == \
        [(t["track_id"], t["frames"], t["emotion"]) for t in cli["tracks"]]
    for ours, theirs in zip(desktop["tracks"], cli["tracks"], strict=True):
        assert ours["scores"] == pytest.approx(theirs["scores"], abs=0.002)


def test_export_saves_the_summary_and_the_timeline_never_over_the_video(qtbot, window, faces_video, dialogs,
                                                                         tmp_path):
    assert not window.export_button.isEnabled() and window.export_summary(tmp_path / "early.json") is None
    assert dialogs.pop()[0] == "Nothing to export"
    window.start(faces_video)
    wait_until_idle(qtbot, window)
    assert window.export_button.isEnabled(), "what a video showed can be exported after it ended"
    shown = window.engine.summary.frames_shown
    summary = json.loads(window.export_summary(tmp_path / "out" / "faces.json").read_text())
    assert summary["source"] == str(faces_video) and summary["frame_count"] == shown
    assert summary["fps"] == VIDEO_FPS and len(summary["tracks"]) == 2
    happy = max(summary["tracks"], key=lambda t: t["scores"]["happy"])
    assert happy["emotion"] == "happy" and sum(happy["scores"].values()) == pytest.approx(1.0, abs=0.01)
    with open(window.export_summary(tmp_path / "faces.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len({row["frame"] for row in rows}) == shown and {row["track_id"] for row in rows} == {"1", "2"}
    assert not dialogs

    before = faces_video.read_bytes()
    sneaky = tmp_path / "link.json"
    sneaky.symlink_to(faces_video)
    for path, says in ((faces_video.parent / ".." / faces_video.parent.name / faces_video.name,
                        "export as .json"),
                       (sneaky, "would overwrite the input"),
                       (tmp_path / "out", "export as .json"),
                       (tmp_path / "a-folder.json", "cannot write")):
        if path.name == "a-folder.json":
            path.mkdir()
        assert window.export_summary(path) is None
        title, text = dialogs.pop()
        assert title == "Cannot export" and says in text, text
    assert faces_video.read_bytes() == before


def test_every_frame_stream_keeps_the_late_frames(recognizer, faces_video, monkeypatch):
    """The stream under "Every frame": an engine at 4 fps against a 10 fps video processes all 40 frames,
    and never faster than the video's rate when it could go faster."""
    stream = recognizer.stream(faces_video, realtime=True, drop_late=False)
    process = stream.engine.process
    slow = [True]

    def engine(*args, **kwargs):
        if slow[0]:
            time.sleep(0.25)
        return process(*args, **kwargs)

    monkeypatch.setattr(stream.engine, "process", engine)
    shown = []
    for result in stream:
        shown.append((result.frame_index, time.monotonic()))
        slow[0] = result.frame_index < 20  # the second half: an engine faster than the video
    assert [index for index, _ in shown] == list(range(VIDEO_FRAMES)) and stream.frames_dropped == 0
    # Frames 21 to 39 come at the video's pace, not at the engine's: 18 frame periods apart.
    assert shown[-1][1] - shown[21][1] >= (VIDEO_FRAMES - 1 - 21) / VIDEO_FPS - 0.05, "held to the video's pace"
