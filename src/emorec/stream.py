"""The one frame loop: a source's frames through one engine stream, each result keeping its frame.

``emorec video``, ``emorec stream``, ``emorec batch``, the web app's video upload and the desktop app all
iterate a :class:`FrameStream` (made by ``EmotionRecognizer.stream``) and keep only their own output: a
file, JSON lines, Parquet rows, a page, a window. Pacing for display (``realtime``) lives here too, so
that dropping late frames happens before they cost any engine time.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import cv2

from emorec.sources import Source
from emorec.types import FrameResult

if TYPE_CHECKING:
    from emorec.calibration import AutoCalibrator, Baseline
    from emorec.engine import EmotionRecognizer


class FrameStream:
    """Opens ``source`` (any :class:`~emorec.sources.Source`: image, folder, video, webcam index, stream
    URL, or a Source already open; raises ``InputError`` naming it) and yields one :class:`FrameResult` per
    processed frame, in order, with its pixels (``image``), ``frame_index`` and ``time_s``; faces carry
    track ids. The photos of an image file or folder are unrelated to each other: each is read alone (no
    tracking or smoothing across them, ids start at 1 in each), and its result carries its ``path`` and
    no ``time_s``.

    Args:
        recognizer: the engine whose models are shared; the stream gets its own tracker. A recognizer from
            ``new_stream()`` is used as it is instead (its tracker, smoothing and calibration; the desktop
            app calibrates it while the source plays), and the options smoothing, smoothing_alpha, baseline,
            auto_calibrate and detect_every do not apply.
        smoothing: average each face's probabilities over frames (tracking happens either way).
        smoothing_alpha: weight of the newest frame in that average.
            These two and ``detect_every`` default to the recognizer's ``config``.
        max_frames: stop after this many frames; ``truncated`` then says whether the source had more.
        realtime: play a video file at its own rate, as a viewer sees it: a frame whose time has passed
            when it is read is dropped (counted in ``frames_dropped``) instead of being processed late, and
            a frame that is ready early is held back until its time. Live sources already hand over only
            their newest frame; they are never held back.
        baseline, auto_calibrate: personal calibration (see ``EmotionRecognizer.new_stream``).
        detect_every: run the face detector on every N-th video frame and follow faces in between (see
            ``EmotionRecognizer.new_stream``); the photos of an image folder are always detected in full.
        resize_to: (width, height) every frame is shrunk to before the engine sees it, to bound the cost of
            large videos (the web app's uploads); results and their ``image`` are in that size.

    ``pause``, ``resume`` and ``stop`` may be called from any thread; the clock stands still while paused.
    A stream is iterated once: the source is closed when the iteration ends, or by ``close()`` / ``with``.
    """

    def __init__(
        self,
        recognizer: EmotionRecognizer,
        source: str | int | os.PathLike | Source,
        *,
        smoothing: bool | None = None,
        smoothing_alpha: float | None = None,
        max_frames: int | None = None,
        realtime: bool = False,
        baseline: Baseline | None = None,
        auto_calibrate: bool | AutoCalibrator = False,
        resize_to: tuple[int, int] | None = None,
        detect_every: int | None = None,
    ):
        self.source = source if isinstance(source, Source) else Source(source)
        # The stream's own recognizer: its tracker, and its baseline, which may change while the stream runs.
        # A recognizer that is a stream already (from new_stream) is continued as it is.
        self.engine = recognizer if recognizer.is_stream else recognizer.new_stream(
            smoothing=smoothing, smoothing_alpha=smoothing_alpha, baseline=baseline, auto_calibrate=auto_calibrate,
            detect_every=detect_every,
        )
        self.max_frames = max_frames
        self.resize_to = resize_to
        self._period = 1.0 / self.source.fps if realtime and self.source.fps else 0.0
        self.frames_read = 0
        self.frames_dropped = 0
        self.truncated = False
        self._iterated = False
        self._stopped = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()

    @property
    def fps(self) -> float | None:
        return self.source.fps

    @property
    def live(self) -> bool:
        return self.source.live

    def __iter__(self) -> Iterator[FrameResult]:
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
                if self.max_frames is not None and self.frames_read == self.max_frames:
                    self.truncated = True
                    return
                self.frames_read += 1
                due = start + (frame.time_s or 0.0)
                if self._period and time.monotonic() > due + self._period:
                    self.frames_dropped += 1
                    continue
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
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        """End the iteration at the next frame; a live source is closed at once, which wakes a loop waiting
        for a camera that stopped delivering."""
        self._stopped.set()
        self._running.set()  # wake a paused loop so it can see the stop
        if self.source.live:
            self.source.close()

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
