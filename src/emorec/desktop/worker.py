"""The thread that runs the engine off the GUI thread, so the window never freezes.

It runs the engine's frame loop (``EmotionRecognizer.stream`` in real time) over the source, feeds a recording,
and hands the GUI only the newest processed frame: if the GUI has not taken the previous one yet, it is
replaced, not queued. A video file can be sought while it plays, and again once it has ended (the thread then
plays it from there, through the same stream: its tracks, smoothing and calibration go on).
"""

from __future__ import annotations

import logging
import os
import threading

from PySide6.QtCore import QObject, QThread, Signal

from emorec.calibration import Baseline
from emorec.desktop.core import LoopSummary, ProcessedFrame, SessionLog
from emorec.engine import EmotionRecognizer
from emorec.errors import InputError
from emorec.recording import Recorder
from emorec.stream import FrameStream

log = logging.getLogger(__name__)


class EngineThread(QThread):
    """Runs one source through one engine stream; ``stop()`` ends it and releases the source (camera)."""

    frame_ready = Signal()  # a new frame waits in take_frame()
    failed = Signal(str)  # the source could not be opened or read; the message names it
    recording_failed = Signal(str)  # the recording stopped because a file could not be written
    source_ended = Signal(object)  # LoopSummary, when the source ran out (not when stopped)
    calibration_progress = Signal(float)  # 0-1 while "Calibrate" collects the neutral face
    calibrated = Signal(object)  # the new Baseline, now applied to every frame
    calibration_failed = Signal(str)  # too few frames showed a face

    def __init__(
        self,
        recognizer: EmotionRecognizer,
        source: str | int | os.PathLike,
        smoothing: bool = True,
        baseline: Baseline | None = None,
        every_frame: bool = False,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.source = source
        # Made here, not when the source opens, so that calibration can be started or set at any time.
        self._engine = recognizer.stream(smoothing=smoothing, baseline=baseline)
        self._calibration = self._engine.calibration
        self._annotate = recognizer.annotate
        self._lock = threading.Lock()
        self._recorder_lock = threading.Lock()
        self._stream: FrameStream | None = None
        self._stop_requested = False
        self._paused = False
        self._latest: ProcessedFrame | None = None
        self._recorder: Recorder | None = None
        self._recording_start: float | None = None  # the source time of the recording's first frame
        self._every_frame = every_frame
        self._start_s: float | None = None  # where the next play of the source starts (a seek after its end)
        self._last_seek_s = 0.0
        self._playing = False  # run() is playing the source, or about to play it again
        self.summary = LoopSummary()  # every play of the source since the thread was made
        self.session: SessionLog | None = None  # every face of every frame analysed, once the source is open
        self.fps: float | None = None  # the source's frame rate once open; None for live sources and images
        self.frame_count: int | None = None  # a video file's frames once open; None for live sources
        self.seekable = False  # a video file, once open

    def run(self) -> None:
        with self._lock:
            self._playing = True
        again = True
        while again:
            played = self._play()
            with self._lock:
                again = played and self._start_s is not None and not self._stop_requested
                self._playing = again
        if played and not self._stop_requested:
            self.source_ended.emit(self.summary)

    def _play(self) -> bool:
        """One play of the source, from where a seek asked for; False if it failed (and said why)."""
        with self._lock:
            start_s, self._start_s = self._start_s, None
        try:
            # The engine's one frame loop, paced to the video's rate.
            stream = self._engine.play(self.source, realtime=True, drop_late=not self._every_frame)
        except InputError as exc:
            self.failed.emit(str(exc))
            return False
        try:
            self.fps, self.frame_count = stream.fps, stream.source.frame_count
            self.seekable = stream.source.seekable
            if self.session is None:
                self.session = SessionLog(stream.source.name, stream.fps)
            if start_s is not None:
                stream.seek(start_s)
            with self._lock:
                if self._stop_requested:
                    return True
                self._stream = stream
                if self._paused:
                    stream.pause()
            summary = self.summary
            capturing = self._calibration.capturing
            dropped_so_far = 0
            for result in stream:
                dropped, dropped_so_far = stream.frames_dropped - dropped_so_far, stream.frames_dropped
                summary.frames_shown += 1
                summary.frames_with_faces += bool(result.faces)
                self._calibrate(capturing)
                capturing = self._calibration.capturing
                self.session.add(result)
                self._deliver(ProcessedFrame(result, self._annotate(result), dropped))
            summary.frames_read += stream.frames_read
            summary.frames_dropped += stream.frames_dropped
            return True
        except InputError as exc:  # e.g. a video whose frames cannot be decoded
            self.failed.emit(str(exc))
            return False
        except Exception as exc:  # a thread has no caller to raise to: report it rather than die silently
            log.exception("engine thread failed on %s", self.source)
            self.failed.emit(f"{self.source}: unexpected error: {exc}")
            return False
        finally:
            with self._lock:
                self._stream = None
                if stream.source.seek_pending and self._start_s is None:  # asked for as the video ended
                    self._start_s = self._last_seek_s
            stream.close()  # the recording, if any, is finished by whoever started it: see set_recorder

    def _calibrate(self, capturing: bool) -> None:
        """Tell the window how the calibration went on this frame (the stream fed it while processing)."""
        if not capturing:
            return
        state = self._calibration.state()
        if state["state"] == "on":
            self.calibrated.emit(self._engine.person_baseline[1])
        elif state["state"] == "capturing":
            self.calibration_progress.emit(state["progress"])
        else:
            self.calibration_failed.emit(state.get("error", "calibration failed"))

    def start_calibration(self, duration_s: float = 3.0) -> None:
        """Collect the largest face for ``duration_s`` as the person's neutral face, then apply it."""
        self._calibration.start(duration_s)

    def set_baseline(self, baseline: Baseline | None) -> None:
        """Apply ``baseline`` from the next frame on (None: uncalibrated); cancels a running calibration."""
        self._calibration.reset()
        self._engine.baseline = baseline

    def _deliver(self, processed: ProcessedFrame) -> None:
        with self._recorder_lock:  # its own lock: a slow video write must not hold up take_frame()
            recorder = self._recorder
            if recorder is not None:
                time_s = processed.result.time_s
                if time_s is not None:  # a recording's clock starts at its first frame, wherever the source was
                    if self._recording_start is None:
                        self._recording_start = time_s
                    time_s -= self._recording_start
                try:
                    recorder.write(processed.result, processed.annotated, time_s)
                except OSError as exc:  # RecordingError, or a full disk
                    self._recorder = None
                    recorder.close()
                    self.recording_failed.emit(str(exc))
        with self._lock:
            waiting = self._latest is not None
            self._latest = processed
        if not waiting:
            self.frame_ready.emit()

    def take_frame(self) -> ProcessedFrame | None:
        """The newest processed frame, once (None if the GUI already has it)."""
        with self._lock:
            processed, self._latest = self._latest, None
        return processed

    def set_recorder(self, recorder: Recorder | None) -> dict | None:
        """Send every processed frame to ``recorder`` from now on (None: stop), timed from the first one;
        closes the previous recorder and returns its summary (None if there was none)."""
        with self._recorder_lock:
            previous, self._recorder = self._recorder, recorder
            self._recording_start = None
        return previous.close() if previous is not None else None

    def seek(self, time_s: float) -> bool:
        """Go to ``time_s`` seconds of the video file (see ``FrameStream.seek``). False where the thread has
        finished: ``start()`` it again to play the video from there."""
        with self._lock:
            self._last_seek_s = time_s
            if self._stream is not None:
                self._stream.seek(time_s)
                return True
            self._start_s = time_s
            return self._playing

    def set_every_frame(self, every_frame: bool) -> None:
        """Analyse every frame of a video file (True), however long it takes, or drop the frames the engine is
        too slow for to keep to the video's rate (False); from the next frame on."""
        with self._lock:
            self._every_frame = every_frame
            if self._stream is not None:
                self._stream.drop_late = not every_frame

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused
            if self._stream is not None:
                (self._stream.pause if paused else self._stream.resume)()

    def stop(self) -> None:
        """Ask the loop to end, wait for the thread, and so release the source; safe to call twice."""
        with self._lock:
            self._stop_requested = True
            stream = self._stream
        if stream is not None:
            stream.stop()  # also wakes a loop waiting for a camera that stopped delivering
        self.wait()
