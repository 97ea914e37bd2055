"""Recording results over time: an annotated video, a CSV timeline of every face, a PNG of each face's
emotions over time and a JSON summary (:mod:`emorec.summary`). Used by ``emorec video`` and by the desktop
app's record button.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from emorec.errors import RecordingError
from emorec.labels import EMOTION_COLORS_BGR, EMOTIONS
from emorec.outputs import partial_path, write_atomic
from emorec.summary import RecordingSummary
from emorec.types import FrameResult

TIMELINE_COLUMNS = ("frame", "time_s", "track_id", "x1", "y1", "x2", "y2", "emotion", "confidence", *EMOTIONS)
# Codecs every OpenCV wheel can write without extra libraries.
# WebM/VP8 plays in every current browser (the web app's uploads); OpenCV's wheels can write it.
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".webm": "VP80"}
# MPEG-4 part 2 ("mp4v") does not play in browsers, and OpenCV's wheels have no H.264 encoder (nor a usable
# VP9 one: about 240 ms a 640x480 frame). PyAV's wheels carry libx264, which writes H.264 at about 4 ms a
# frame with one thread; these containers get H.264 whenever PyAV is installed (a dependency of emorec).
H264_SUFFIXES = {".mp4", ".m4v", ".mov"}
# Panels of the plot; a crowd's briefly seen faces would make it too tall to read.
MAX_PLOTTED_TRACKS = 8
# Room a video needs on its disk for the next frame, and for the index written at the end (moving it to the
# front rewrites the file in place).
MIN_FREE_BYTES = 4 * 2**20


def video_fourcc(path: str | os.PathLike) -> str:
    """The codec for a video file name, or :class:`RecordingError` if its type is not supported."""
    fourcc = FOURCC_BY_SUFFIX.get(Path(path).suffix.lower())
    if fourcc is None:
        raise RecordingError(f"{path}: unsupported video type; use one of {', '.join(FOURCC_BY_SUFFIX)}")
    return fourcc


class AnnotatedVideoWriter:
    """Writes BGR frames to ``.mp4``/``.m4v``/``.mov`` (H.264 with PyAV, which browsers play; MPEG-4 part 2
    with OpenCV where PyAV is missing), ``.avi``/``.mkv`` (Motion JPEG) or ``.webm`` (VP8).

    The video is written under a hidden partial name and takes ``path`` at :meth:`close` (:meth:`discard`
    drops it). A write that fails, or a disk with less than ``MIN_FREE_BYTES`` left, raises
    :class:`RecordingError` and drops the partial file. PyAV must never be used again after a failed write:
    on a full disk libavformat crashed the process (SIGSEGV) on the next frame; OpenCV's writer only warns
    and writes nothing, hence the check of the free space before each frame."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        self.partial = partial_path(self.path)
        fourcc = video_fourcc(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot create its folder ({exc.strerror})") from None
        self.frames = 0
        self.codec = fourcc
        self._writer: cv2.VideoWriter | None = None
        self._h264 = _open_h264(self.partial, fps, size) if self.path.suffix.lower() in H264_SUFFIXES else None
        if self._h264 is not None:
            self.codec = "h264"
            self.size = (self._h264[1].width, self._h264[1].height)
            return
        self.size = size
        self._writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self._writer.isOpened():
            self._writer = None
            self.partial.unlink(missing_ok=True)
            raise RecordingError(f"{self.path}: OpenCV cannot write this video (folder writable? codec {fourcc})")

    @property
    def open(self) -> bool:
        """False once closed, discarded or failed."""
        return self._h264 is not None or self._writer is not None

    def write(self, bgr: np.ndarray) -> None:
        if not self.open:
            raise RecordingError(f"{self.path}: the video is already closed")
        if (bgr.shape[1], bgr.shape[0]) != self.size:  # a stream may change resolution mid-way
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        free = shutil.disk_usage(self.partial.parent).free
        if free < MIN_FREE_BYTES:
            self.discard()
            raise RecordingError(f"{self.path}: cannot write (the disk is full: {free / 2**20:.1f} MB free)")
        if self._h264 is not None:
            import av

            container, stream = self._h264
            try:
                for packet in stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")):
                    container.mux(packet)
            except OSError as exc:
                self._failed(exc)
        else:
            self._writer.write(bgr)
        self.frames += 1

    def close(self) -> None:
        """Finish the video and give it its name (once; later calls do nothing)."""
        if self._h264 is not None:
            container, stream = self._h264
            try:
                for packet in stream.encode():  # flush the encoder's delayed frames
                    container.mux(packet)
                container.close()
            except OSError as exc:
                self._failed(exc)
            self._h264 = None
        elif self._writer is not None:
            self._writer.release()
            self._writer = None
        else:
            return
        try:
            os.replace(self.partial, self.path)
        except OSError as exc:
            self.partial.unlink(missing_ok=True)
            raise RecordingError(f"{self.path}: cannot write ({exc.strerror})") from None

    def discard(self) -> None:
        """Stop, and leave no file."""
        if self._h264 is not None:
            try:
                self._h264[0].close()  # closing is safe after a failed write; writing again is not
            except OSError:
                pass
            self._h264 = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self.partial.unlink(missing_ok=True)

    def _failed(self, exc: OSError) -> None:
        self.discard()
        raise RecordingError(f"{self.path}: cannot write ({exc.strerror or exc})") from None


def _open_h264(path: Path, fps: float, size: tuple[int, int]):
    """(container, stream) writing H.264 (yuv420p, moov atom first so browsers start playing at once), or None
    where PyAV is not installed."""
    try:
        import av
    except ImportError:
        return None
    from fractions import Fraction

    try:
        container = av.open(str(path), "w", options={"movflags": "+faststart"})
    except OSError as exc:
        raise RecordingError(f"{path}: cannot write ({exc.strerror})") from None
    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height = size[0] // 2 * 2, size[1] // 2 * 2  # 4:2:0 chroma needs even sides
    stream.pix_fmt = "yuv420p"
    stream.options = {"preset": "veryfast", "crf": "23"}
    stream.codec_context.thread_count = 1  # the engine and the decoder use the other cores
    return container, stream


def write_text(path: str | os.PathLike, text: str) -> Path:
    """A summary JSON or timeline CSV written whole or not at all (its folder made if need be);
    :class:`RecordingError` says why it could not be."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda partial: partial.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise RecordingError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


class Timeline:
    """Every face of every frame: CSV rows (one per face and frame) as they come, to the file ``csv_path``
    or to the open text stream ``csv_file`` (left open: the web app keeps its CSV in memory), and per track
    a :class:`~emorec.summary.RecordingSummary` for the summary and the plot."""

    def __init__(
        self,
        csv_path: str | os.PathLike | None = None,
        fps: float | None = None,
        source: str | None = None,
        csv_file: TextIO | None = None,
    ):
        self.summary = RecordingSummary(fps, source)
        self._file, self._owns_file = csv_file, False
        if csv_path is not None:
            path = Path(csv_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._file, self._owns_file = open(path, "w", newline="", encoding="utf-8"), True
            except OSError as exc:
                raise RecordingError(f"{path}: cannot write ({exc.strerror})") from None
        if self._file is not None:
            self._csv = csv.writer(self._file)
            self._csv.writerow(TIMELINE_COLUMNS)

    @property
    def frames(self) -> int:
        return self.summary.frame_count

    def add(self, result: FrameResult, time_s: float) -> None:
        self.summary.add(result, time_s)
        if self._file is None:
            return
        for rank, face in enumerate(result.faces):
            # Untracked faces (smoothing off) are told apart by their rank in the frame, as in the summary.
            track = face.track_id if face.track_id is not None else rank + 1
            self._csv.writerow(
                [
                    result.frame_index,
                    f"{time_s:.3f}",
                    track,
                    *face.box,
                    face.emotion,
                    f"{face.confidence:.4f}",
                    *(f"{p:.4f}" for p in face.scores),
                ]
            )

    def figure(self, max_tracks: int = MAX_PLOTTED_TRACKS):
        """A matplotlib Figure with one panel per face (the ``max_tracks`` seen longest; a note under the
        panels counts the others) on one time axis, the whole recording's: each emotion's probability over
        time, one legend above the panels."""
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe off the main thread

        everyone = self.summary.tracks
        tracks = everyone[:max_tracks]
        fig = Figure(figsize=(10, 0.6 + 2.4 * max(1, len(tracks))), layout="constrained")
        axes = fig.subplots(max(1, len(tracks)), 1, squeeze=False, sharex=True)[:, 0]
        for ax, track in zip(axes, tracks, strict=False):
            scores = np.stack(track.scores)
            for i, emotion in enumerate(EMOTIONS):
                b, g, r = EMOTION_COLORS_BGR[emotion]
                ax.plot(track.times_s, scores[:, i], color=(r / 255, g / 255, b / 255), label=emotion, lw=1.2)
            ax.set(title=f"face #{track.track_id}: {track.emotion}", ylabel="probability", ylim=(0, 1))
        if not tracks:
            axes[0].text(0.5, 0.5, "no faces found", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_xlim(0, max(self.summary.duration_s, 1e-3))
        left_out = len(everyone) - len(tracks)
        axes[-1].set_xlabel("time (s)" + (f"; {left_out} more faces, seen more briefly, are not shown: the CSV "
                                          "and the JSON summary have every face" if left_out else ""))
        if tracks:
            # A figure legend above the panels: constrained layout makes room for it, however many panels.
            fig.legend(*axes[0].get_legend_handles_labels(), ncol=len(EMOTIONS), loc="outside upper center",
                       fontsize="small")
        return fig

    def plot(self, png_path: str | os.PathLike, max_tracks: int = MAX_PLOTTED_TRACKS) -> Path:
        """Save :meth:`figure` as a PNG."""
        path = Path(png_path)
        fig = self.figure(max_tracks)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=100)
        except OSError as exc:
            raise RecordingError(f"{path}: cannot write ({exc.strerror})") from None
        return path

    def close(self) -> None:
        if self._owns_file:
            self._file.close()
        self._file = None


class Recorder:
    """Annotated video + CSV timeline + emotion plot + JSON summary of one recording; each output is optional.

    ``write(result, annotated_bgr, time_s)`` per frame, ``close()`` at the end: it writes the plot and the
    summary, and returns the summary (:meth:`emorec.summary.RecordingSummary.to_dict`'s form). ``source``
    names the recorded video or camera in the summary.

    ``time_s`` counts from the start of the recording, and places each frame in the video: a frame stays on
    screen until the next one's time, so frames that were never processed (real-time playback drops the
    ones the engine is too slow for) are filled with the one shown before them. The video thus lasts as
    long as the recorded source and stays in step with the CSV's ``time_s``.
    """

    def __init__(
        self,
        video: str | os.PathLike | None = None,
        csv_path: str | os.PathLike | None = None,
        plot: str | os.PathLike | None = None,
        fps: float = 30.0,
        summary_path: str | os.PathLike | None = None,
        source: str | None = None,
    ):
        if video is not None:
            video_fourcc(video)  # fail before any frame is processed, not at the first one
        self.video_path = video
        self.plot_path = plot
        self.summary_path = summary_path
        self.fps = fps
        self.timeline = Timeline(csv_path, fps, source)
        self._video: AnnotatedVideoWriter | None = None
        self._shown: np.ndarray | None = None  # the latest frame, written once the next one's time is known
        self._summary: dict | None = None

    def write(self, result: FrameResult, annotated: np.ndarray | None = None, time_s: float | None = None) -> None:
        if time_s is None:
            time_s = self.timeline.frames / self.fps
        self.timeline.add(result, time_s)
        if self.video_path is not None and annotated is not None:
            if self._video is None:  # the size is known only with the first frame
                self._video = AnnotatedVideoWriter(self.video_path, self.fps, (annotated.shape[1], annotated.shape[0]))
            if self._shown is not None:
                # The previous frame fills every video frame up to this one's; none where two frames fall in
                # one video frame (a live source faster than the recording's rate): the newer one wins.
                for _ in range(round(time_s * self.fps) - self._video.frames):
                    self._video.write(self._shown)
            self._shown = annotated

    def close(self) -> dict:
        """Finish the files (once; later calls only return the summary)."""
        if self._summary is None:
            self.timeline.close()
            if self._video is not None and self._video.open:  # not after a failed write
                if self._shown is not None:
                    self._video.write(self._shown)
                    self._shown = None
                self._video.close()
            if self.plot_path is not None:
                self.timeline.plot(self.plot_path)
            self._summary = self.timeline.summary.to_dict()
            if self.summary_path is not None:
                write_text(self.summary_path, json.dumps(self._summary, indent=1))
        return self._summary

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
