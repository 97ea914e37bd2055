"""A short uploaded video -> the same video with boxes and labels drawn, plus every frame's faces.

OpenCV reads and writes videos only through file paths, so the upload and its result live in a private
temporary folder for the length of the request and are deleted before the answer goes out.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from emorec.recording import AnnotatedVideoWriter
from emorec.sources import InputError, VideoSource
from emorec.web.media import MediaError


@dataclass
class AnnotatedVideo:
    webm: bytes
    frames: list[dict]  # FrameResult.to_dict() of each frame
    fps: float
    truncated: bool  # the upload had more than max_frames frames


def annotate_video(data: bytes, recognizer, max_frames: int, max_pixels: int) -> AnnotatedVideo:
    with tempfile.TemporaryDirectory(prefix="emorec-upload-") as folder:
        upload, target = Path(folder) / "upload", Path(folder) / "annotated.webm"
        upload.write_bytes(data)
        try:
            source = VideoSource(upload)
        except InputError:
            raise MediaError("could not open the video: corrupt file or unsupported codec") from None
        with source:
            width, height = source.size
            if width * height > max_pixels:
                raise MediaError(
                    f"video frames are {width}x{height}; the limit is {max_pixels / 1e6:.0f} megapixels", 413
                )
            try:
                frames, truncated = _annotate_frames(source, recognizer, target, max_frames)
            except InputError:  # VideoSource's word for a video that opened but had no decodable frame
                raise MediaError("no frame of the video could be decoded") from None
        return AnnotatedVideo(target.read_bytes(), frames, source.fps, truncated)


def _annotate_frames(source: VideoSource, recognizer, target: Path, max_frames: int) -> tuple[list[dict], bool]:
    """Each frame's faces, and whether the video had more than ``max_frames`` frames."""
    stream = recognizer.new_stream(smoothing=True)
    writer = AnnotatedVideoWriter(target, source.fps, source.size)
    frames = []
    try:
        for frame in source:
            if frame.index == max_frames:
                return frames, True
            result = stream.process(frame.image, frame_index=frame.index)
            frames.append(result.to_dict())
            writer.write(recognizer.annotate(frame.image, result.faces))
    finally:
        writer.close()
    return frames, False
