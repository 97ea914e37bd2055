"""The main window: source chooser and controls on top, a video file's seek bar under them, live view on the
left, probabilities and timeline on the right, frame rate and latency in the status bar. It only wires widgets
to the engine thread."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from emorec.calibration import Baseline, BaselineError, load_baseline
from emorec.desktop.core import (
    EXPORT_SUFFIXES,
    EmotionTimeline,
    FaceSelection,
    LoopSummary,
    ProcessedFrame,
    RateMeter,
    camera_indices,
)
from emorec.desktop.widgets import ProbabilityBars, SeekBar, TimelinePlot, VideoView
from emorec.desktop.worker import EngineThread
from emorec.engine import EmotionRecognizer
from emorec.errors import RecordingError
from emorec.recording import Recorder
from emorec.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_stream_url, parse_source
from emorec.types import Face

ErrorDialog = Callable[[QWidget, str, str], None]

CAMERA, VIDEO, IMAGE, STREAM = "camera", "video", "image", "stream"
PLACEHOLDERS = {VIDEO: "path of a video file", IMAGE: "path of an image file",
                STREAM: "stream URL, e.g. rtsp://camera.local/stream or http://host/video.mjpg"}
CALIBRATION_SECONDS = 3.0


def show_error(parent: QWidget, title: str, text: str) -> None:
    """The default error dialog; tests pass their own to see what would have been shown."""
    QMessageBox.warning(parent, title, text)


def _file_filter(label: str, suffixes: set[str]) -> str:
    return f"{label} ({' '.join('*' + s for s in sorted(suffixes))});;All files (*)"


def clock(seconds: float) -> str:
    """A time in a video as players show it: 1:05.3 (minutes, seconds to a tenth)."""
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now * 1000) % 1000:03d}"


class MainWindow(QMainWindow):
    """The emorec desktop window over one :class:`EmotionRecognizer` shared by every source opened in it."""

    def __init__(
        self,
        recognizer: EmotionRecognizer,
        out_dir: str | os.PathLike = "emorec-captures",
        smoothing: bool = True,
        error_dialog: ErrorDialog = show_error,
    ):
        super().__init__()
        self.setWindowTitle("emorec - facial emotion recognition")
        self.recognizer = recognizer
        self.out_dir = Path(out_dir)
        self.smoothing = smoothing
        self.error_dialog = error_dialog
        self.selection = FaceSelection()
        self.timeline = EmotionTimeline(span_s=10.0)
        self.display_rate = RateMeter()
        self.last_frame: ProcessedFrame | None = None
        self.frames_dropped = 0  # source frames skipped because the engine was slower than the source
        self.engine: EngineThread | None = None
        self.recording: tuple[Path, Path] | None = None  # video and CSV being written
        self.baseline: Baseline | None = None  # the person's neutral face; kept across sources
        self.calibrating = False  # "Calibrate" is collecting the neutral face
        self._build_controls()
        self._build_calibration()
        self._build_panels()
        self._build_status_bar()
        self._on_kind_changed()
        self._set_running(False)
        self.resize(1100, 640)

    # ----- layout

    def _build_controls(self) -> None:
        self.kind = QComboBox()
        self.kind.addItem("Camera", CAMERA)
        self.kind.addItem("Video file", VIDEO)
        self.kind.addItem("Image file", IMAGE)
        self.kind.addItem("Stream URL", STREAM)
        self.kind.currentIndexChanged.connect(self._on_kind_changed)
        self.camera = QComboBox()
        for index in camera_indices():
            self.camera.addItem(f"camera {index}", index)
        self.path = QLineEdit()
        self.path.returnPressed.connect(self.start_selected)
        self.browse_button = QPushButton("Browse...")
        self.browse_button.clicked.connect(self._browse)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self._on_start_clicked)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._on_pause_toggled)
        self.snapshot_button = QPushButton("Snapshot")
        self.snapshot_button.clicked.connect(self.save_snapshot)
        self.record_button = QPushButton("Record")
        self.record_button.setCheckable(True)
        self.record_button.toggled.connect(self._on_record_toggled)
        self.export_button = QPushButton("Export...")
        self.export_button.setToolTip(
            "Save what this source has shown so far: each face's summary as JSON (its dominant emotion and mean "
            "probabilities, as emorec video --json) or every face of every frame as CSV (as emorec video --csv)"
        )
        self.export_button.clicked.connect(self._export_dialog)
        self.every_frame = QCheckBox("Every frame")
        self.every_frame.setToolTip(
            "Analyse every frame of a video file, however long it takes; unticked, the video keeps its own pace "
            "and the frames the engine is too slow for are skipped"
        )
        self.every_frame.toggled.connect(self._on_every_frame_toggled)
        self.controls = QWidget()
        row = QHBoxLayout(self.controls)
        row.setContentsMargins(6, 6, 6, 0)
        for widget in (
            QLabel("Source:"),
            self.kind,
            self.camera,
            self.path,
            self.browse_button,
            self.every_frame,
            self.start_button,
            self.pause_button,
            self.snapshot_button,
            self.record_button,
            self.export_button,
        ):
            row.addWidget(widget)
        row.setStretchFactor(self.path, 1)
        self.seek_bar = SeekBar()
        self.seek_bar.setAccessibleName("Position in the video")
        self.seek_bar.setToolTip("Click or drag to go to another place in the video")
        self.seek_bar.valueChanged.connect(self._on_seek_bar_released)
        self.seek_bar.sliderMoved.connect(self._show_position)
        self.position_label = QLabel()
        self.seek_row = QWidget()
        row = QHBoxLayout(self.seek_row)
        row.setContentsMargins(6, 0, 6, 0)
        row.addWidget(self.seek_bar, 1)
        row.addWidget(self.position_label)
        self.seek_row.setVisible(False)  # until a video file is open: its length is known then

    def _build_calibration(self) -> None:
        self.calibrate_button = QPushButton("Calibrate")
        self.calibrate_button.setToolTip(
            f"Look at the camera with a neutral face for {CALIBRATION_SECONDS:g} seconds: your expressions are "
            "then read against your own resting face"
        )
        self.calibrate_button.clicked.connect(self.start_calibration)
        self.reset_calibration_button = QPushButton("Reset")
        self.reset_calibration_button.clicked.connect(lambda: self.set_baseline(None))
        self.save_baseline_button = QPushButton("Save...")
        self.save_baseline_button.clicked.connect(self._save_baseline_dialog)
        self.load_baseline_button = QPushButton("Load...")
        self.load_baseline_button.clicked.connect(self._load_baseline_dialog)
        self.calibration_progress = QProgressBar()
        self.calibration_progress.setRange(0, 100)
        self.calibration_progress.setVisible(False)
        self.calibration_label = QLabel()
        self.calibration_label.setWordWrap(True)
        self.calibration_box = QGroupBox("Personal calibration")
        layout = QVBoxLayout(self.calibration_box)
        buttons = QHBoxLayout()
        for button in (self.calibrate_button, self.reset_calibration_button, self.save_baseline_button,
                       self.load_baseline_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        layout.addWidget(self.calibration_progress)
        layout.addWidget(self.calibration_label)
        self._update_calibration_controls()

    def _build_panels(self) -> None:
        self.view = VideoView()
        self.view.frame_clicked.connect(self._on_frame_clicked)
        self.view.setToolTip("Click a face to follow it in the side panel; click elsewhere to follow the largest")
        self.bars = ProbabilityBars()
        self.plot = TimelinePlot(self.timeline)
        bars_box = QGroupBox("Probabilities")
        QVBoxLayout(bars_box).addWidget(self.bars)
        plot_box = QGroupBox("Timeline")
        QVBoxLayout(plot_box).addWidget(self.plot)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.calibration_box)
        side_layout.addWidget(bars_box)
        side_layout.addWidget(plot_box, 1)
        # No narrower than its layout's minimum (the calibration buttons' row): squeezed below it, the buttons'
        # text and the word-wrapped calibration prompt were cut off.
        side.setMinimumWidth(max(300, side.minimumSizeHint().width()))
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.view)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.controls)
        layout.addWidget(self.seek_row)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

    def _build_status_bar(self) -> None:
        self.fps_label = QLabel()
        self.latency_label = QLabel()
        self.faces_label = QLabel()
        self.recording_label = QLabel()
        for label in (self.recording_label, self.faces_label, self.fps_label, self.latency_label):
            self.statusBar().addPermanentWidget(label)
        self._update_status(None)

    # ----- starting and stopping sources

    def selected_source(self) -> str | int | None:
        """The source the controls describe: a camera index, a file path or a URL (None if none is given)."""
        if self.kind.currentData() == CAMERA:
            return self.camera.currentData()
        text = self.path.text().strip()
        return text or None

    def start_selected(self) -> None:
        source = self.selected_source()
        if source is None:
            if self.kind.currentData() == STREAM:
                self.error_dialog(self, "No URL given", "Type the URL of a stream (rtsp://, http://...).")
            else:
                self.error_dialog(self, "No file chosen", "Type the path of a video or image file, or press Browse.")
            return
        self.start(source)

    def start(self, source: str | int | os.PathLike, keep_selection: bool = False) -> None:
        """Open ``source`` (camera index, video or image file, stream URL) and run the engine on it;
        ``keep_selection`` keeps following the clicked face (the same photo read again)."""
        self.stop()
        source = parse_source(source)
        self._show_source_in_controls(source)
        if not keep_selection:
            self.selection.clear()
        self.timeline.clear()
        self.display_rate.reset()
        self.last_frame = None
        self.snapshot_button.setEnabled(False)
        self.export_button.setEnabled(False)
        self.frames_dropped = 0
        self.bars.show_face(None)
        self.view.clear(f"opening {source if isinstance(source, str) else f'camera {source}'}...")
        self.seek_row.setVisible(False)
        engine = EngineThread(self.recognizer, source, smoothing=self.smoothing, baseline=self.baseline,
                              every_frame=self.every_frame.isChecked(), parent=self)
        engine.frame_ready.connect(self._show_latest_frame)
        engine.failed.connect(self._on_failed)
        engine.recording_failed.connect(self._on_recording_failed)
        engine.source_ended.connect(self._on_source_ended)
        engine.finished.connect(self._on_engine_finished)
        engine.calibration_progress.connect(self._on_calibration_progress)
        engine.calibrated.connect(self._on_calibrated)
        engine.calibration_failed.connect(self._on_calibration_failed)
        self.engine = engine
        self._set_running(True)
        self.statusBar().showMessage(f"running {engine.source}")
        engine.start()

    def stop(self) -> None:
        """Stop the running source (releasing the camera) and finish any recording; safe when idle."""
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.stop()
            self._finish_recording(engine)
            engine.deleteLater()
        self.seek_row.setVisible(False)
        self._set_running(False)

    def _show_source_in_controls(self, source: str | int) -> None:
        widgets = (self.kind, self.camera, self.path)
        for widget in widgets:
            widget.blockSignals(True)
        if isinstance(source, int):
            self.kind.setCurrentIndex(self.kind.findData(CAMERA))
            if self.camera.findData(source) < 0:
                self.camera.addItem(f"camera {source}", source)
            self.camera.setCurrentIndex(self.camera.findData(source))
        else:
            if is_stream_url(source):
                kind = STREAM
            else:
                kind = IMAGE if Path(source).suffix.lower() in IMAGE_SUFFIXES else VIDEO
            self.kind.setCurrentIndex(self.kind.findData(kind))
            self.path.setText(source)
        for widget in widgets:
            widget.blockSignals(False)
        self._on_kind_changed()

    def _set_running(self, running: bool) -> None:
        self.start_button.setText("Stop" if running else "Start")
        self.pause_button.setEnabled(running)
        # Once a frame is shown: before, the source is not open and its frame rate (the video's) unknown.
        self.record_button.setEnabled(running and self.last_frame is not None)
        self.snapshot_button.setEnabled(self.last_frame is not None)  # something on screen to save
        self.export_button.setEnabled(self.last_frame is not None)  # frames analysed, whether or not it still runs
        if not running:
            self._uncheck(self.pause_button)
            self.pause_button.setText("Pause")
            self.calibrating = False
        self._update_calibration_controls()

    # ----- personal calibration

    def start_calibration(self) -> None:
        """Collect the largest face for a few seconds as the person's neutral face while the source plays; a
        photo's followed face at once. Where neither can be had (no source, paused, ended), a dialog says why."""
        if self.engine is None:
            self.error_dialog(self, "Nothing to calibrate with", "Start the camera first, then press Calibrate.")
            return
        if not self.engine.isRunning():
            self._calibrate_from_still()
            return
        if self.pause_button.isChecked():
            # A paused stream processes no frames: the capture would wait at 0% for ever.
            self.error_dialog(self, "Paused", f"Calibration reads the face for {CALIBRATION_SECONDS:g} seconds "
                              "while the source plays: press Resume, then Calibrate.")
            return
        self.engine.start_calibration(CALIBRATION_SECONDS)
        self.calibrating = True
        self.calibration_progress.setValue(0)
        self._update_calibration_controls()
        self.calibration_label.setText(f"Look at the camera with a neutral face for {CALIBRATION_SECONDS:g} seconds")

    def _calibrate_from_still(self) -> None:
        """Calibrate once no more frames come: from a photo's face at once (the one the panel follows); a
        video or stream that ended gets told why not, since one frame of it is no steady resting face."""
        source, frame = self.engine.source, self.last_frame
        name = f"camera {source}" if isinstance(source, int) else Path(source).name
        if frame is None or frame.result.time_s is not None:
            self.error_dialog(self, "Nothing to calibrate with",
                              f"{name} has ended. Calibration reads the face for {CALIBRATION_SECONDS:g} seconds "
                              "while the source plays: press Start, then Calibrate while the face is neutral.")
            return
        face, _ = self.selection.pick(frame.result.faces)
        if face is None:
            self.error_dialog(self, "No face to calibrate with",
                              f"{name}: no face in this image. Open a photo of the person's neutral face.")
            return
        scores = face.raw_scores if face.raw_scores is not None else face.scores
        self.set_baseline(self.recognizer.baseline_from_scores(scores[None]))
        self.start(source, keep_selection=True)  # read the photo again, against the baseline
        track = f" #{face.track_id}" if face.track_id is not None else ""
        self.statusBar().showMessage(f"calibrated to face{track} of {name}: its neutral face now reads neutral")

    def set_baseline(self, baseline: Baseline | None) -> None:
        """Read faces against ``baseline`` from now on (None: uncalibrated), for this and later sources."""
        self.baseline = baseline
        if self.engine is not None:
            self.engine.set_baseline(baseline)
        self.calibrating = False
        self._update_calibration_controls()

    def save_baseline(self, path: str | os.PathLike) -> Path | None:
        if self.baseline is None:
            return None
        try:
            saved = self.baseline.save(path)
        except OSError as exc:
            self.error_dialog(self, "Cannot save the baseline", f"{path}: {exc.strerror or exc}")
            return None
        self.statusBar().showMessage(f"saved the baseline to {saved}")
        return saved

    def load_baseline(self, path: str | os.PathLike) -> Baseline | None:
        """Load and apply a baseline file; a file that cannot be used gets a dialog that names it."""
        try:
            baseline = self.recognizer.check_baseline(load_baseline(path))
        except BaselineError as exc:
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            self.error_dialog(self, "Cannot use the baseline", message)
            return None
        self.set_baseline(baseline)
        self.statusBar().showMessage(f"loaded the baseline {path}")
        return baseline

    def _save_baseline_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the baseline", "baseline.json", "Baselines (*.json)")
        if path:
            self.save_baseline(path)

    def _load_baseline_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a baseline", "", "Baselines (*.json);;All files (*)")
        if path:
            self.load_baseline(path)

    def _update_calibration_controls(self) -> None:
        running = self.engine is not None
        self.calibration_progress.setVisible(self.calibrating)
        self.calibrate_button.setEnabled(running and not self.calibrating)
        self.reset_calibration_button.setEnabled(self.baseline is not None)
        self.save_baseline_button.setEnabled(self.baseline is not None)
        if self.calibrating:
            return
        if self.baseline is None:
            self.calibration_label.setText("Not calibrated: the model's generic reading")
        else:
            samples = self.baseline.samples
            self.calibration_label.setText(f"Calibrated to your neutral face ({samples} frame{'s' * (samples != 1)})")

    def _on_calibration_progress(self, progress: float) -> None:
        if self._from_current_engine():
            self.calibration_progress.setValue(round(progress * 100))

    def _on_calibrated(self, baseline: Baseline) -> None:
        if self._from_current_engine():
            self.baseline = baseline
            self.calibrating = False
            self._update_calibration_controls()
            self.statusBar().showMessage("calibrated: probabilities are now read against your neutral face")

    def _on_calibration_failed(self, message: str) -> None:
        if self._from_current_engine():
            self.calibrating = False
            self._update_calibration_controls()
            self.error_dialog(self, "Calibration failed", message)

    # ----- engine thread signals

    def _show_latest_frame(self) -> None:
        if not self._from_current_engine():
            return
        processed = self.engine.take_frame()
        if processed is None:
            return
        self.last_frame = processed
        self.snapshot_button.setEnabled(True)
        self.export_button.setEnabled(True)
        self.record_button.setEnabled(self.engine.isRunning())
        self.frames_dropped += processed.dropped_before
        self.display_rate.tick(time.monotonic())
        self._update_seek_bar(processed)
        face = self._render(processed)
        if processed.result.time_s is not None:  # photos have no place on a time axis
            self.timeline.add(processed.result.time_s, None if face is None else face.scores)
        self._update_status(processed)

    def _render(self, processed: ProcessedFrame) -> Face | None:
        """Show the frame and the followed face's probabilities; returns that face."""
        faces = processed.result.faces
        face, clicked = self.selection.pick(faces)
        highlight = face.box if face is not None and (clicked or len(faces) > 1) else None
        self.view.show_frame(processed.annotated, highlight)
        self.bars.show_face(face, clicked)
        self.plot.update()
        return face

    def _from_current_engine(self) -> bool:
        """False for a late signal from a source that was already stopped (its queued signals still arrive)."""
        return self.engine is not None and self.sender() is self.engine

    def _on_failed(self, message: str) -> None:
        if not self._from_current_engine():
            return
        if isinstance(self.engine.source, int):
            title = "Camera not available"
            hint = "Check that the camera is connected and not in use by another program, or choose another index."
        elif is_stream_url(self.engine.source):
            title = "Cannot open the stream"
            hint = "Check the URL, and that the stream is up and reachable from this computer."
        else:
            title = "Cannot open the source"
            hint = "Check the path, and that the file is an image or a video OpenCV can decode."
        self.view.clear("no source")
        self.statusBar().showMessage(message)
        self.calibrating = False  # this dialog says why a capture stopped; no second one when the thread ends
        self.error_dialog(self, title, f"{message}\n\n{hint}")

    def _on_source_ended(self, summary: LoopSummary) -> None:
        if not self._from_current_engine():
            return
        name = self.engine.source
        self.statusBar().showMessage(
            f"end of {name}: {summary.frames_shown} frames shown, {summary.frames_dropped} dropped to keep up"
        )
        if summary.frames_shown and not summary.frames_with_faces:
            where = "the image" if summary.frames_read == 1 else f"any of its {summary.frames_read} frames"
            self.error_dialog(
                self,
                "No faces found",
                f"{name}: no face was found in {where}.\n\n"
                "Faces should be upright, lit and at least about 24 pixels wide.",
            )

    def _on_engine_finished(self) -> None:
        if self._from_current_engine():
            self._finish_recording(self.engine)
            calibrating = self.calibrating
            self._set_running(False)
            if calibrating:  # the source ran out before the capture ended (a photo, or a video's last seconds)
                self._calibrate_from_still()

    # ----- user actions

    def _on_kind_changed(self) -> None:
        kind = self.kind.currentData()
        self.camera.setVisible(kind == CAMERA)
        self.path.setVisible(kind != CAMERA)
        self.path.setPlaceholderText(PLACEHOLDERS.get(kind, ""))
        self.browse_button.setVisible(kind in (VIDEO, IMAGE))
        self.every_frame.setVisible(kind == VIDEO)

    def _browse(self) -> None:
        if self.kind.currentData() == IMAGE:
            file_filter = _file_filter("Images", IMAGE_SUFFIXES)
        else:
            file_filter = _file_filter("Videos", VIDEO_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Open a file", self.path.text(), file_filter)
        if path:
            self.path.setText(path)
            self.start(path)

    def _on_start_clicked(self) -> None:
        if self.engine is not None and self.engine.isRunning():
            self.stop()
            self.statusBar().showMessage("stopped")
        else:
            self.start_selected()

    def _on_pause_toggled(self, paused: bool) -> None:
        if self.engine is not None:
            self.engine.set_paused(paused)
        self.pause_button.setText("Resume" if paused else "Pause")

    def _on_every_frame_toggled(self, every_frame: bool) -> None:
        if self.engine is not None:
            self.engine.set_every_frame(every_frame)

    # ----- position in a video file

    def seek(self, time_s: float) -> None:
        """Go to ``time_s`` seconds of the video file open: it plays on from there (paused: its frame there
        is shown), and one that has ended plays again from there. Does nothing for other sources."""
        engine = self.engine
        if engine is None or not engine.seekable:
            return
        self.timeline.clear()  # the rolling plot runs forwards in time
        if not engine.seek(time_s):
            engine.start()
            self._set_running(True)
        self.statusBar().showMessage(f"to {clock(time_s)} of {Path(engine.source).name}")

    def _update_seek_bar(self, processed: ProcessedFrame) -> None:
        engine = self.engine
        if not engine.seekable or not engine.frame_count or processed.result.time_s is None:
            self.seek_row.setVisible(False)
            return
        if not self.seek_row.isVisible():
            self.seek_bar.setRange(0, engine.frame_count - 1)
            self.seek_bar.setPageStep(max(1, round(5 * engine.fps)))  # 5 s with Page Up/Down
            self.seek_row.setVisible(True)
        if not self.seek_bar.isSliderDown():  # not under the user's hand
            self.seek_bar.blockSignals(True)
            self.seek_bar.setValue(processed.result.frame_index)
            self.seek_bar.blockSignals(False)
            self._show_position(processed.result.frame_index)

    def _show_position(self, frame_index: int) -> None:
        fps, count = self.engine.fps, self.engine.frame_count
        self.position_label.setText(f"{clock(frame_index / fps)} / {clock(count / fps)}")

    def _on_seek_bar_released(self, frame_index: int) -> None:
        if self.engine is not None and self.engine.fps:
            self.seek(frame_index / self.engine.fps)

    def _on_frame_clicked(self, x: float, y: float) -> None:
        if self.last_frame is None:
            return
        self.selection.click(self.last_frame.result.faces, x, y)
        self._render(self.last_frame)

    def save_snapshot(self) -> Path | None:
        """Save the annotated frame on screen as a PNG in ``out_dir``; returns its path (None if nothing saved)."""
        if self.last_frame is None:
            self.statusBar().showMessage("nothing to save yet: start a source first")
            return None
        path = self.out_dir / f"emorec-{_timestamp()}.png"
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            saved = cv2.imwrite(str(path), self.last_frame.annotated)
        except (OSError, cv2.error) as exc:
            saved, reason = False, str(exc)
        else:
            reason = "OpenCV could not write the file"
        if not saved:
            self.error_dialog(self, "Cannot save the snapshot", f"{path}: {reason}")
            return None
        self.statusBar().showMessage(f"saved {path}")
        return path

    def export_summary(self, path: str | os.PathLike) -> Path | None:
        """Save the faces analysed since the source started: ``.json`` the summary per tracked face (as
        ``emorec video --json``), ``.csv`` every face of every frame (as ``--csv``). Never over the source
        file; a dialog says why nothing was saved (returns None)."""
        session = self.engine.session if self.engine is not None else None
        if session is None or not session.frames:
            self.error_dialog(self, "Nothing to export", "Start a source first: the export holds the faces it shows.")
            return None
        source = self.engine.source
        inputs = [source] if isinstance(source, str) and not is_stream_url(source) else []
        try:
            saved = session.export(path, inputs)
        except RecordingError as exc:
            self.error_dialog(self, "Cannot export", str(exc))
            return None
        self.statusBar().showMessage(f"exported {session.frames} frames to {saved.name} in {saved.parent}")
        return saved

    def _export_dialog(self) -> None:
        source = self.engine.source if self.engine is not None else 0
        if isinstance(source, int):
            stem = f"camera-{source}"
        else:
            stem = "stream" if is_stream_url(source) else Path(source).stem
        filters = {f"{'Summary' if suffix == '.json' else 'Timeline'} {suffix[1:].upper()} (*{suffix})": suffix
                   for suffix in EXPORT_SUFFIXES}
        path, chosen = QFileDialog.getSaveFileName(self, "Export the faces", str(self.out_dir / f"{stem}-summary.json"),
                                                   ";;".join(filters))
        if path:
            if Path(path).suffix.lower() not in EXPORT_SUFFIXES:  # typed without one: the chosen type's
                path += filters.get(chosen, ".json")
            self.export_summary(path)

    def _on_record_toggled(self, on: bool) -> None:
        if self.engine is None:
            return
        if not on:
            self._finish_recording(self.engine)
            return
        stem = self.out_dir / f"emorec-{_timestamp()}"
        video, timeline = stem.with_suffix(".mp4"), stem.with_suffix(".csv")
        # Files play at the source's rate; a live source at the rate frames are being shown.
        fps = self.engine.fps or round(self.display_rate.rate) or 15.0
        try:
            recorder = Recorder(video=video, csv_path=timeline, fps=fps)
        except OSError as exc:  # RecordingError, or out_dir cannot be created
            self._uncheck(self.record_button)
            self.error_dialog(self, "Cannot record", str(exc))
            return
        self.recording = (video, timeline)
        self.engine.set_recorder(recorder)
        self._update_recording_label()
        # Names only: the status bar shares its width with the permanent labels, and a full path was cut off.
        self.statusBar().showMessage(f"recording {video.name} and {timeline.suffix}")

    def _finish_recording(self, engine: EngineThread) -> None:
        summary = engine.set_recorder(None)
        if summary is not None and self.recording is not None:
            video, timeline = self.recording
            self.statusBar().showMessage(
                f"recorded {summary['frame_count']} frames ({summary['frames_with_faces']} with faces) to {video.name}"
                f" and {timeline.suffix} in {video.parent}"
            )
        self.recording = None
        self._uncheck(self.record_button)
        self._update_recording_label()

    def _on_recording_failed(self, message: str) -> None:
        self.recording = None
        self._uncheck(self.record_button)
        self._update_recording_label()
        self.error_dialog(self, "Recording stopped", message)

    def _update_recording_label(self) -> None:
        self.recording_label.setText("" if self.recording is None else "REC")
        self.recording_label.setToolTip("" if self.recording is None else f"recording to {self.recording[0]}")
        self.recording_label.setStyleSheet("color: #c00; font-weight: bold;")

    @staticmethod
    def _uncheck(button: QPushButton) -> None:
        """Reset a toggle button without running its handler."""
        button.blockSignals(True)
        button.setChecked(False)
        button.blockSignals(False)

    def _update_status(self, processed: ProcessedFrame | None) -> None:
        if processed is None:
            self.fps_label.setText("- fps")
            self.latency_label.setText("latency - ms")
            self.faces_label.setText("")
            return
        timings = processed.result.timings_ms
        total = timings.get("total", sum(timings.values()))
        dropped = f" ({self.frames_dropped} dropped)" if self.frames_dropped else ""
        self.fps_label.setText(f"{self.display_rate.rate:.1f} fps{dropped}")
        self.latency_label.setText(f"latency {total:.0f} ms")
        self.latency_label.setToolTip(", ".join(f"{k} {v:.1f} ms" for k, v in timings.items()))
        count = len(processed.result.faces)
        self.faces_label.setText(f"{count} face{'s' if count != 1 else ''}")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.stop()
        event.accept()
