"""A short uploaded video -> the same video with boxes and labels drawn, each frame's faces, and a summary
of each tracked face.

OpenCV reads and writes videos only through file paths, so the upload and its result live for the length of
the request in a private folder (mode 0700) in the system's temporary folder, on disk: the upload is copied
there chunk by chunk from the request's parser, never whole in memory. Every path out of the request deletes
it, and a worker that was killed mid-request has its folders removed when a new worker starts (the folder
name carries the process id).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from emorec.calibration import Baseline
from emorec.recording import AnnotatedVideoWriter, Timeline
from emorec.sources import InputError, Source
from emorec.summary import RecordingSummary
from emorec.web.media import MediaError

WORKDIR_PREFIX = "emorec-upload-"
WORK_SIZE = (960, 540)  # frames are analysed and written at most this large: the page shows them smaller
PROGRESS_EVERY = 10  # frames between progress reports


def workdir_root() -> Path:
    """Where upload folders go: the system's temporary folder ($TMPDIR)."""
    return Path(tempfile.gettempdir())


def peek(upload: BinaryIO, size: int = 16) -> bytes:
    """The first ``size`` bytes of an upload, left unread: enough to tell its type (``media.is_video``). The
    upload is a form's file (seekable) or a raw request body in an ``io.BufferedReader``."""
    if upload.seekable():
        head = upload.read(size)
        upload.seek(0)
        return head
    return upload.peek(size)[:size]


@contextmanager
def private_workdir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-", dir=workdir_root()))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale_workdirs(root: Path | None = None) -> list[Path]:
    """Delete the upload folders of processes that no longer run (a worker killed mid-request)."""
    removed = []
    for folder in (root or workdir_root()).glob(f"{WORKDIR_PREFIX}*"):
        pid = folder.name[len(WORKDIR_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@dataclass
class AnnotatedVideo:
    webm: bytes
    frames: list[dict]  # FrameResult.to_dict() of each frame, with its time
    fps: float
    duration_s: float
    size: tuple[int, int]  # (width, height) of the annotated frames
    stopped_because: str | None  # why only part of the video was analysed, None when all of it was
    summary: RecordingSummary  # per tracked face, as `emorec video --json` gives it
    timeline_csv: str  # every face of every frame, as `emorec video --csv` writes it


def annotate_video(
    data: BinaryIO, recognizer, max_frames: int, max_pixels: int, max_seconds: float, draw: bool = True,
    baseline: Baseline | None = None,
) -> Generator[tuple[int, int], None, AnnotatedVideo]:
    """Yields (frames done, frames planned) as it goes, first (0, planned) once ``data`` (the uploaded file,
    read from where it is) has been copied and opened, and returns the result (``yield from`` it, or
    ``run_to_end``). MediaError for a video that cannot be read or is too large. Without ``draw`` (the REST
    API, which returns only JSON) no annotated video is written and ``webm`` is empty. ``baseline`` reads
    every face against one person's neutral face, as ``emorec video --baseline`` does."""
    with private_workdir() as folder:
        upload, target = folder / "upload", folder / "annotated.webm"
        with upload.open("wb") as copy:
            shutil.copyfileobj(data, copy)
        try:
            source = Source(upload)
        except InputError:
            raise MediaError("could not open the video: corrupt file or unsupported codec") from None
        with source:
            width, height = source.size
            if width * height > max_pixels:
                raise MediaError(
                    f"video frames are {width}x{height}; the limit is {max_pixels / 1e6:.1f} megapixels", 413
                )
            if width == 0 or height == 0:
                raise MediaError("could not read the video's frame size: corrupt file or unsupported codec")
            scale = min(1.0, WORK_SIZE[0] / width, WORK_SIZE[1] / height)
            size = (max(2, round(width * scale)), max(2, round(height * scale)))
            planned = min(max_frames, source.frame_count or max_frames)
            yield 0, planned  # the upload is copied and opened: the request's own file may be closed from here
            rows = io.StringIO()
            timeline = Timeline(fps=source.fps, csv_file=rows)
            try:
                frames, stopped = yield from _annotate_frames(
                    source, recognizer, target if draw else None, size, planned, max_frames, max_seconds, timeline,
                    baseline,
                )
            except InputError:  # the stream's word for a video that opened but had no decodable frame
                raise MediaError("no frame of the video could be decoded") from None
        return AnnotatedVideo(
            target.read_bytes() if draw else b"", frames, source.fps, len(frames) / source.fps, size, stopped,
            timeline.summary, rows.getvalue(),
        )


def run_to_end(steps: Generator[tuple[int, int], None, AnnotatedVideo]) -> AnnotatedVideo:
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def _annotate_frames(source, recognizer, target, size, planned, max_frames, max_seconds, timeline, baseline):
    """The engine's frame loop over the upload (frames shrunk to ``size``), each frame drawn into ``target``
    and its faces added to ``timeline``; nothing is drawn when ``target`` is None."""
    stream = recognizer.stream(source, max_frames=max_frames, resize_to=size, baseline=baseline)
    writer = AnnotatedVideoWriter(target, source.fps, size) if target is not None else None
    frames: list[dict] = []
    deadline = time.monotonic() + max_seconds
    try:
        for result in stream:
            frames.append(result.to_dict())
            timeline.add(result, result.time_s)
            if writer is not None:
                writer.write(recognizer.annotate(result))
            if len(frames) % PROGRESS_EVERY == 0:
                yield len(frames), max(planned, len(frames))
            if time.monotonic() > deadline:
                return frames, f"analysis stops after {max_seconds:g} s; it reached {result.time_s:.1f} s of the video"
    finally:
        if writer is not None:
            writer.close()
        stream.close()
    return frames, (f"only the first {max_frames} frames are analysed" if stream.truncated else None)
