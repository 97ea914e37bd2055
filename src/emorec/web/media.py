"""Bytes from the network -> BGR frames, checked before they cost memory or CPU.

The content decides the type (magic bytes, via Pillow's format sniffing), never the file name or the
Content-Type header; the pixel count is read from the header before the pixels are decoded, so a
small file that claims a huge image (a decompression bomb) is refused before it is expanded. Decoding
also waits for room in a process-wide pixel budget, so concurrent large images queue instead of
adding up in memory. Whatever a corrupt file makes a decoder raise becomes a ``MediaError``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from emorec import sources
from emorec.errors import InputError

# MPO: the JPEG of phone cameras that store a second (depth or stereo) view; decoded as its first view.
IMAGE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP")
# Images up to this size (1920x1080: camera frames, most web photos) decode without waiting for the budget:
# one costs ~15 MB at most and only as many decode at once as there are threads, so only larger ones count.
SMALL_IMAGE_PIXELS = 2_100_000
VIDEO_NAMES = sources.VIDEO_SUFFIXES - {".gif"}  # a .gif is an image to a visitor, whatever OpenCV makes of it


class MediaError(InputError):
    """Input we refuse, with the HTTP status that says why (400 corrupt, 413 too large, 415 wrong type,
    503 busy: then ``retry_after_s`` says when to come back)."""

    def __init__(self, message: str, status: int = 400, retry_after_s: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class PixelBudget:
    """What decoding large images may cost this process, in memory and in CPU: at most ``max_pixels`` of them
    decoded at once, and on average at most ``pixels_per_s`` (with a burst of ``max_pixels``, so one photo
    alone never waits). A request waits for room, or gets a 503 after ``wait_s``. A decoded pixel costs
    about seven bytes at the peak of decoding and tens of nanoseconds of CPU, so a client posting 25-megapixel
    images back to back cannot take more than a share of the machine from the live connections. Images of at
    most ``SMALL_IMAGE_PIXELS`` (camera frames, most photos) pass without counting and never queue.
    """

    def __init__(self, max_pixels: int, pixels_per_s: float, wait_s: float):
        self.max_pixels, self.pixels_per_s, self.wait_s = max_pixels, pixels_per_s, wait_s
        self._in_use = 0
        self._tokens = float(max_pixels)  # pixels that may start decoding now
        self._refilled = time.monotonic()
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        if pixels <= SMALL_IMAGE_PIXELS:
            yield
            return
        pixels = min(pixels, self.max_pixels)  # one image may use the whole budget
        deadline = time.monotonic() + self.wait_s
        with self._changed:
            while True:
                now = time.monotonic()
                self._tokens = min(self.max_pixels, self._tokens + (now - self._refilled) * self.pixels_per_s)
                self._refilled = now
                if self._in_use + pixels <= self.max_pixels and self._tokens >= pixels:
                    break
                if now >= deadline:
                    raise MediaError("the server is busy decoding other large images; try again", 503, 2)
                refill_s = (pixels - self._tokens) / self.pixels_per_s
                self._changed.wait(min(deadline - now, max(refill_s, 0.01)))
            self._in_use += pixels
            self._tokens -= pixels
        try:
            yield
        finally:
            with self._changed:
                self._in_use -= pixels
                self._changed.notify_all()


def is_video(data: bytes) -> bool:
    """True for the containers browsers record and phones save: MP4/MOV, WebM/Matroska and AVI."""
    return data[4:8] == b"ftyp" or data[:4] == b"\x1a\x45\xdf\xa3" or (data[:4] == b"RIFF" and data[8:12] == b"AVI ")


def unreadable_video(data: bytes, filename: str, mimetype: str) -> MediaError | None:
    """The error for an upload that its name or type calls a video (``clip.mp4``, ``video/*``) but whose
    content is neither a video container :func:`is_video` knows nor an image: empty or corrupt. None for
    anything else. The name only words the message; the content alone decides how a file is read."""
    named_video = mimetype.startswith("video/") or Path(filename).suffix.lower() in VIDEO_NAMES
    if not named_video or is_video(data) or _has_image_signature(data) or data[:4] == b"GIF8":
        return None
    if not data:
        return MediaError(f"could not open the video {filename}: the file is empty (0 bytes)")
    return MediaError(
        f"could not open the video {filename}: corrupt file, or not a container emorec reads (MP4/MOV, WebM/MKV, AVI)"
    )


def decode_image(data: bytes, max_pixels: int, budget: PixelBudget | None = None) -> np.ndarray:
    """Decode a JPEG (incl. CMYK and MPO), PNG (incl. 16-bit), WebP or BMP image to a BGR uint8 array, upright
    as its EXIF orientation says, with the engine's own decoder (``emorec.sources.decode_image``), its pixels
    decoded inside the process-wide pixel ``budget``."""
    if not data:
        raise MediaError("empty body: send an image (JPEG, PNG, WebP or BMP)")
    try:
        return sources.decode_image(
            data, max_pixels=max_pixels, formats=IMAGE_FORMATS, reserve=budget.reserve if budget else None
        )
    except MediaError:  # the budget's own refusal (503), already what the client gets
        raise
    except sources.UnsupportedImageError as exc:
        if _has_image_signature(data):
            raise MediaError("corrupt or truncated image: its header could not be read") from None
        raise MediaError(str(exc), 415) from None
    except sources.ImageTooLargeError as exc:
        raise MediaError(str(exc), 413) from None
    except sources.InputError as exc:
        raise MediaError(str(exc)) from None
    except MemoryError:
        raise MediaError("the server has no memory left for this image; try a smaller one", 503, 5) from None


def _has_image_signature(data: bytes) -> bool:
    """The first bytes of a JPEG, PNG, WebP or BMP file: such a file that Pillow cannot open is corrupt (400),
    not of the wrong type (415)."""
    return (
        data[:3] == b"\xff\xd8\xff"
        or data[:8] == b"\x89PNG\r\n\x1a\n"
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
        or data[:2] == b"BM"
    )


def encode_jpeg(bgr: np.ndarray, quality: int = 90) -> bytes:
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the frame as JPEG")
    return buffer.tobytes()
