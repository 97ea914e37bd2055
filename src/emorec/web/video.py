"""A short uploaded video -> the same video with boxes and labels drawn, plus every frame's faces.

OpenCV reads and writes videos only through file paths, so the upload and its result live in a private
temporary folder for the length of the request and are deleted before the answer goes out.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2

from emorec.web.media import MediaError

WEBM_VP8 = cv2.VideoWriter_fourcc(*"VP80")  # plays in every current browser; OpenCV's wheels can write it


@dataclass
class AnnotatedVideo:
    webm: bytes
    frames: list[dict]  # FrameResult.to_dict() of each frame
    fps: float
    truncated: bool  # the upload had more than max_frames frames


def annotate_video(data: bytes, recognizer, max_frames: int, max_pixels: int) -> AnnotatedVideo:
    with tempfile.TemporaryDirectory(prefix="emorec-upload-") as folder:
        source, target = Path(folder) / "upload", Path(folder) / "annotated.webm"
        source.write_bytes(data)
        capture = cv2.VideoCapture(str(source))
        try:
            if not capture.isOpened():
                raise MediaError("could not open the video: corrupt file or unsupported codec")
            width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            if width * height > max_pixels:
                raise MediaError(
                    f"video frames are {width}x{height}; the limit is {max_pixels / 1e6:.0f} megapixels", 413
                )
            fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
            frames = _annotate_frames(
                capture, recognizer, cv2.VideoWriter(str(target), WEBM_VP8, fps, (width, height)), max_frames
            )
            truncated = capture.grab()
        finally:
            capture.release()
        if not frames:
            raise MediaError("no frame of the video could be decoded")
        return AnnotatedVideo(target.read_bytes(), frames, fps, truncated)


def _annotate_frames(capture: cv2.VideoCapture, recognizer, writer: cv2.VideoWriter, max_frames: int) -> list[dict]:
    stream = recognizer.new_stream(smoothing=True)
    frames = []
    try:
        while len(frames) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            result = stream.process(frame)
            result.frame_index = len(frames)
            frames.append(result.to_dict())
            writer.write(recognizer.annotate(frame, result.faces))
    finally:
        writer.release()
    return frames
