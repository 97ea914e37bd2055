"""Bytes from the network -> BGR frames, checked before they cost memory or CPU.

The content decides the type (magic bytes, via Pillow's format sniffing), never the file name or the
Content-Type header; the pixel count is read from the header before the pixels are decoded, so a
small file that claims a huge image (a decompression bomb) is refused before it is expanded.
"""

from __future__ import annotations

import cv2
import numpy as np

from emorec import sources

# MPO: the JPEG of phone cameras that store a second (depth or stereo) view; decoded as its first view.
IMAGE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP")


class MediaError(ValueError):
    """Input we refuse, with the HTTP status that says why (400 corrupt, 413 too large, 415 wrong type)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def is_video(data: bytes) -> bool:
    """True for the containers browsers record and phones save: MP4/MOV, WebM/Matroska and AVI."""
    return data[4:8] == b"ftyp" or data[:4] == b"\x1a\x45\xdf\xa3" or (data[:4] == b"RIFF" and data[8:12] == b"AVI ")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode a JPEG (incl. CMYK and MPO), PNG (incl. 16-bit), WebP or BMP image to a BGR uint8 array, upright
    as its EXIF orientation says, with the engine's own decoder (``emorec.sources.decode_image``)."""
    if not data:
        raise MediaError("empty body: send an image (JPEG, PNG, WebP or BMP)")
    try:
        return sources.decode_image(data, max_pixels=max_pixels, formats=IMAGE_FORMATS)
    except sources.UnsupportedImageError as exc:
        raise MediaError(str(exc), 415) from None
    except sources.ImageTooLargeError as exc:
        raise MediaError(str(exc), 413) from None
    except sources.InputError as exc:
        raise MediaError(str(exc)) from None


def encode_jpeg(bgr: np.ndarray, quality: int = 90) -> bytes:
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the frame as JPEG")
    return buffer.tobytes()
