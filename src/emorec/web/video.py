"""A short uploaded video -> the same video with boxes and labels drawn, plus every frame's faces.

OpenCV reads and writes videos only through file paths, so the upload and its result live in a private
temporary folder for the length of the request and are deleted before the answer goes out.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from emorec.errors import InputError
from emorec.recording import AnnotatedVideoWriter
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
            stream = recognizer.stream(upload, max_frames=max_frames)
        except InputError:
            raise MediaError("could not open the video: corrupt file or unsupported codec") from None
        with stream:
            width, height = stream.source.size
            if width * height > max_pixels:
                raise MediaError(
                    f"video frames are {width}x{height}; the limit is {max_pixels / 1e6:.0f} megapixels", 413
                )
            frames = []
            writer = AnnotatedVideoWriter(target, stream.fps, stream.source.size)
            try:
                for result in stream:
                    frames.append(result.to_dict())
                    writer.write(recognizer.annotate(result))
            except InputError:  # a video that opened but had no decodable frame
                raise MediaError("no frame of the video could be decoded") from None
            finally:
                writer.close()
        return AnnotatedVideo(target.read_bytes(), frames, stream.fps, stream.truncated)
