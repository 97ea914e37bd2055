"""The one stream object and the one frame loop.

A :class:`FrameStream` (made by ``rec.stream()``) owns everything a stream of frames keeps between them: the
tracker and its smoothing, the follower that runs the detector every N frames, the baselines (one for
everyone, the person that Calibrate captured, or one per track) and the Calibrate control. Feed it frames
yourself (``stream.process(frame)``: the web app's live socket) or give it a source and iterate it
(``emorec video``, ``emorec stream``, batch, the web's video upload); the desktop app keeps one stream and
``play``s each source through it. Pacing for display (``realtime``) lives here too, so that dropping late
frames happens before they cost any engine time.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import cv2

from emorec.errors import InputError
from emorec.sources import Source
from emorec.types import Face, FrameResult

if TYPE_CHECKING:
    from emorec.calibration import AutoCalibrator, Baseline, LiveCalibration
    from emorec.config import EngineConfig
    from emorec.engine import EmotionRecognizer


class FrameStream:
    """Opens ``source`` (any :class:`~emorec.sources.Source`: image, folder, video, webcam index, stream
    URL, or a Source already open; raises ``InputError`` naming it) and yields one :class:`FrameResult` per
    processed frame, in order, with its pixels (``image``), ``frame_index`` and ``time_s``; faces carry
    track ids. The photos of an image file or folder are unrelated to each other: each is read alone (no
    tracking or smoothing across them, ids start at 1 in each), and its result carries its ``path`` and
    no ``time_s``.

    Args:
        recognizer: the engine whose models are shared; the stream gets its own tracker. Another
            FrameStream is continued as it is instead (its tracker, smoothing and calibration: what
            :meth:`play` does), and the options smoothing, smoothing_alpha, baseline, auto_calibrate and
            detect_every do not apply.
        smoothing: average each face's probabilities over frames (tracking happens either way).
        smoothing_alpha: weight of the newest frame in that average.
            These two and ``detect_every`` default to the recognizer's ``config``.
        max_frames: stop after this many frames; ``truncated`` then says whether the source had more.
        realtime: play a video file at its own rate, as a viewer sees it: a frame whose time has passed
            when it is read is dropped (counted in ``frames_dropped``) instead of being processed late, and
            a frame that is ready early is held back until its time. Live sources already hand over only
            their newest frame; they are never held back.
        drop_late: with ``realtime``, False processes a late frame all the same and lets the clock slip
            instead: every frame of the file is analysed, never faster than its rate (settable while the
            stream runs, as ``stream.drop_late``).
        baseline: one person's :class:`~emorec.calibration.Baseline`, applied to every face (settable later
            as ``stream.baseline``).
        auto_calibrate: True (or a configured ``AutoCalibrator``) lets each track without a baseline learn
            its own from its frames.
        detect_every: run the face detector on every N-th video frame and follow faces in between (see
            :mod:`emorec.follow`); the photos of an image folder are always detected in full.
        resize_to: (width, height) every frame is shrunk to before the engine sees it, to bound the cost of
            large videos (the web app's uploads); results and their ``image`` are in that size.

    ``pause``, ``resume``, ``seek`` and ``stop`` may be called from any thread; the clock stands still while
    paused.
    A stream is iterated once: the source is closed when the iteration ends, or by ``close()`` / ``with``.
    """

    def __init__(
        self,
        recognizer: EmotionRecognizer | FrameStream,
        source: str | int | os.PathLike | Source | None = None,
        *,
        smoothing: bool | None = None,
        smoothing_alpha: float | None = None,
        max_frames: int | None = None,
        realtime: bool = False,
        drop_late: bool = True,
        baseline: Baseline | None = None,
        auto_calibrate: bool | AutoCalibrator = False,
        resize_to: tuple[int, int] | None = None,
        detect_every: int | None = None,
    ):
        # The stream's own recognizer: its tracker, and its baselines, which may change while the stream runs.
        self.engine = recognizer.engine if isinstance(recognizer, FrameStream) else recognizer._stream_engine(
            smoothing=smoothing, smoothing_alpha=smoothing_alpha, baseline=baseline, auto_calibrate=auto_calibrate,
            detect_every=detect_every,
        )
        self.source = source if isinstance(source, Source) or source is None else Source(source)
        self.max_frames = max_frames
        self.resize_to = resize_to
        self._period = 1.0 / self.source.fps if realtime and self.source is not None and self.source.fps else 0.0
        self.drop_late = drop_late
        self.frames_read = 0
        self.frames_dropped = 0
        self.truncated = False
        self._iterated = False
        self._stopped = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self._lock = threading.Lock()  # a seek against the loop's look at it
        self._sought = False  # a seek was asked for: the clock starts again at the frame it lands on
        self._step = False  # that seek came while paused: yield its one frame, then pause again

    @property
    def fps(self) -> float | None:
        return self.source.fps if self.source is not None else None

    @property
    def live(self) -> bool:
        return self.source is None or self.source.live

    # ------------------------------------------------------------------ the stream's state, frame by frame

    def process(self, frame, *, frame_index: int | None = None, rgb: bool = False,
                baseline: Baseline | None = None, time_s: float | None = None) -> FrameResult:
        """One frame through the stream (see ``EmotionRecognizer.process``): tracked, smoothed, followed
        between detections, calibrated, and fed to the Calibrate control."""
        return self.engine.process(frame, frame_index=frame_index, rgb=rgb, baseline=baseline, time_s=time_s)

    def __call__(self, frame, *, rgb: bool = False, baseline: Baseline | None = None) -> list[Face]:
        """The faces of one frame through the stream (``process(frame).faces``)."""
        return self.process(frame, rgb=rgb, baseline=baseline).faces

    def play(self, source: str | int | os.PathLike | Source, **options) -> FrameStream:
        """The frames of ``source`` through this stream, keeping its state (``options``: max_frames,
        realtime, drop_late, resize_to); iterate the result."""
        return FrameStream(self, source, **options)

    @property
    def config(self) -> EngineConfig:
        return self.engine.config

    @property
    def calibration(self) -> LiveCalibration:
        """The Calibrate control: ``start()``, ``reset()``, ``state()`` (see emorec.calibration)."""
        return self.engine.calibration

    @property
    def baseline(self) -> Baseline | None:
        """One person's baseline applied to every face (None: none); settable while the stream runs."""
        return self.engine.baseline

    @baseline.setter
    def baseline(self, value: Baseline | None) -> None:
        self.engine.baseline = None if value is None else self.engine.check_baseline(value)

    @property
    def person_baseline(self) -> tuple[int | None, Baseline] | None:
        """(track id, baseline) of the person Calibrate captured, applied to their track only."""
        return self.engine.person_baseline

    def reset(self) -> None:
        """Forget the tracks (e.g. when the source changes) and what they taught auto-calibration; the
        baselines set on the stream stay."""
        self.engine.reset()

    def redetect(self) -> None:
        """Run the full detector on the next frame, whatever the schedule (a cut the caller knows of)."""
        self.engine.redetect()

    # ------------------------------------------------------------------ the frame loop over a source

    def __iter__(self) -> Iterator[FrameResult]:
        if self.source is None:
            raise InputError("this stream has no source: feed it frames with process(), or use rec.stream(source)")
        if self._iterated:
            raise RuntimeError(f"{self.source.name}: a FrameStream is iterated once; open a new one to start again")
        self._iterated = True
        start = time.monotonic()
        try:
            for frame in self.source:
                if not self._running.is_set():
                    paused_at = time.monotonic()
                    self._running.wait()
                    start += time.monotonic() - paused_at
                if self._stopped.is_set():
                    return
                with self._lock:
                    if self.source.seek_pending:  # read before the seek: the next read is the sought frame
                        continue
                    sought, self._sought = self._sought, False
                    if sought and self._step:  # paused: this one frame is shown, then the stream waits again
                        self._step = False
                        self._running.clear()
                if self.max_frames is not None and self.frames_read == self.max_frames:
                    self.truncated = True
                    return
                self.frames_read += 1
                if sought:  # a cut: the clock restarts at this frame, and faces are detected afresh
                    start = time.monotonic() - (frame.time_s or 0.0)
                    self.engine.redetect()
                due = start + (frame.time_s or 0.0)
                late = time.monotonic() - due
                if self._period and late > self._period:
                    if self.drop_late:
                        self.frames_dropped += 1
                        continue
                    start += late  # every frame wanted: this one is processed now, and the clock follows it
                    due += late
                image = frame.image
                if self.resize_to is not None and (image.shape[1], image.shape[0]) != self.resize_to:
                    image = cv2.resize(image, self.resize_to, interpolation=cv2.INTER_AREA)
                if self.source.stills:
                    # Separate photos: nothing to follow or average from one to the next; each is read alone.
                    self.engine.reset()
                result = self.engine.process(image, frame_index=frame.index, time_s=frame.time_s)
                if frame.path is not None:
                    result = dataclasses.replace(result, path=str(frame.path))
                early = due - time.monotonic() if self._period else 0.0
                if early > 0 and self._stopped.wait(early):
                    return
                yield result
        finally:
            self.close()

    def pause(self) -> None:
        with self._lock:
            self._step = False
            self._running.clear()

    def resume(self) -> None:
        with self._lock:
            self._step = False
            self._running.set()

    def seek(self, time_s: float) -> None:
        """Jump to ``time_s`` seconds into the video file: the next frame yielded is the one at that time, the
        clock goes on from there, and faces are detected afresh on it (tracks are kept, so a face keeps its
        id). While paused, that one frame is yielded and the stream stays paused, so a paused player shows
        where it went. :class:`InputError` for a source that is not a video file."""
        if self.source is None:
            raise InputError("this stream has no source to seek in")
        with self._lock:
            self.source.seek(time_s)
            self._sought = True
            if not self._running.is_set():
                self._step = True
                self._running.set()

    def stop(self) -> None:
        """End the iteration at the next frame; a live source is closed at once, which wakes a loop waiting
        for a camera that stopped delivering."""
        self._stopped.set()
        self._running.set()  # wake a paused loop so it can see the stop
        if self.source is not None and self.source.live:
            self.source.close()

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
