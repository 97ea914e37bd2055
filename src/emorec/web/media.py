"""Bytes from the network -> BGR frames, checked before they cost memory or CPU.

The content decides the type (magic bytes, via Pillow's format sniffing), never the file name or the
Content-Type header; the pixel count is read from the header before the pixels are decoded, so a
small file that claims a huge image (a decompression bomb) is refused before it is expanded.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from emorec.errors import InputError

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")


class MediaError(InputError):
    """Input we refuse, with the HTTP status that says why (400 corrupt, 413 too large, 415 wrong type)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def is_video(data: bytes) -> bool:
    """True for the containers browsers record and phones save: MP4/MOV, WebM/Matroska and AVI."""
    return data[4:8] == b"ftyp" or data[:4] == b"\x1a\x45\xdf\xa3" or (data[:4] == b"RIFF" and data[8:12] == b"AVI ")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode a JPEG, PNG, WebP or BMP image to a BGR uint8 array, upright as its EXIF orientation says."""
    if not data:
        raise MediaError("empty body: send an image (JPEG, PNG, WebP or BMP)")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError:
        raise MediaError(f"image dimensions exceed the limit of {max_pixels / 1e6:.0f} megapixels", 413) from None
    except UnidentifiedImageError:
        raise MediaError("not an image: expected JPEG, PNG, WebP or BMP content", 415) from None
    if image.format not in IMAGE_FORMATS:
        raise MediaError(f"unsupported image format {image.format}: expected JPEG, PNG, WebP or BMP", 415)
    width, height = image.size
    if width * height > max_pixels:
        raise MediaError(
            f"image is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
            f"the limit is {max_pixels / 1e6:.0f} megapixels",
            413,
        )
    try:
        rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's ways of saying truncated or corrupt
        raise MediaError(f"corrupt or truncated {image.format} image ({exc})") from None
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def encode_jpeg(bgr: np.ndarray, quality: int = 90) -> bytes:
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the frame as JPEG")
    return buffer.tobytes()
