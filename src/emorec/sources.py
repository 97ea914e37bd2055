"""Where frames come from: image files, folders, video files, webcams and stream URLs.

Everything ends up as BGR uint8 frames. Bad input raises :class:`InputError` with a message that names
the source and what is wrong with it; batch helpers yield the error in place of the frame and go on.
A live source (webcam, URL) is read in a thread that keeps only the newest frame, so a slow consumer
skips frames instead of falling further and further behind.
"""

from __future__ import annotations

import io
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps

from emorec.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif"}


# A 10000x10000 photo; beyond it a small file (a 875 KB PNG of 30000x30000 pixels) could cost gigabytes.
MAX_IMAGE_PIXELS = 100_000_000


# libjpeg writes 10 scans for a progressive colour JPEG and MozJPEG's optimised scripts a few more, but every
# scan makes the decoder pass over all of the image's coefficients again: a 233 KB JPEG of 1448x1448 pixels
# holding 20,000 near-empty scans took 2.8 s of CPU to decode, within any pixel limit.
MAX_JPEG_SCANS = 100


class UnsupportedImageError(InputError):
    """Bytes that are no image, or an image format the caller does not accept."""


class ImageTooLargeError(InputError):
    """An image whose header declares more pixels than the caller accepts (checked before decoding)."""


# Pillow's modes for more than 8 bits per pixel; Pillow's own convert("L"/"RGB") clips them at 255, which
# turns a 16-bit grayscale PNG almost white.
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def decode_image(
    data: bytes,
    name: str = "",
    *,
    max_pixels: int | None = None,
    formats: Collection[str] | None = None,
    reserve: Callable[[int], AbstractContextManager] | None = None,
) -> np.ndarray:
    """Decode an image file's bytes to BGR uint8, upright as its EXIF orientation says.

    The one decoder of the CLI, the engine and the web app. Pillow reads it (JPEG incl. CMYK and phone
    cameras' MPO, PNG incl. 16-bit, WebP, BMP, GIF, TIFF, ...); 16-bit pixels are scaled to 8 bits, not
    clipped. Content Pillow does not know is left to OpenCV, unless ``formats`` (Pillow's format names)
    limits what is accepted. ``max_pixels`` is checked against the header before the pixels are decoded;
    ``reserve``, given the header's pixel count, returns the context the pixels are decoded in (the web app's
    pixel budget, which may make the decode wait or refuse it).
    Raises :class:`InputError`, its message starting with ``name`` where given:
    :class:`UnsupportedImageError` for non-images and refused formats, :class:`ImageTooLargeError` for too
    many pixels, a plain InputError for empty, corrupt or truncated data.
    """
    prefix = f"{name}: " if name else ""
    if not data:
        raise InputError(f"{prefix}empty file (0 bytes)")
    # Pillow refuses more than twice its MAX_IMAGE_PIXELS outright (a decompression bomb), whatever we allow.
    limits = [n for n in (max_pixels, Image.MAX_IMAGE_PIXELS and 2 * Image.MAX_IMAGE_PIXELS) if n]
    too_large = f"{prefix}image dimensions exceed the limit of {min(limits, default=0) / 1e6:.0f} megapixels"
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError:
        raise ImageTooLargeError(too_large) from None
    except Exception:  # noqa: BLE001 - a mangled header makes the format plugins raise anything
        if formats is not None:
            raise UnsupportedImageError(f"{prefix}not an image (expected {', '.join(formats)})") from None
        return _decode_with_opencv(data, prefix)
    if formats is not None and image.format not in formats:
        raise UnsupportedImageError(f"{prefix}unsupported image format {image.format} (expected {', '.join(formats)})")
    if image.format in ("JPEG", "MPO") and count_jpeg_scans(data, MAX_JPEG_SCANS) > MAX_JPEG_SCANS:
        raise InputError(f"{prefix}progressive JPEG with more than {MAX_JPEG_SCANS} scans, which would take "
                         "too long to decode")
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{prefix}image is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
            f"the limit is {max_pixels / 1e6:.0f} megapixels"
        )
    with reserve(width * height) if reserve is not None else nullcontext():
        try:
            image.load()
        except Image.DecompressionBombError:
            raise ImageTooLargeError(too_large) from None
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many types on corrupt data, none is a bug
            raise InputError(
                f"{prefix}corrupt or truncated {image.format} image ({exc or type(exc).__name__})"
            ) from None
        try:
            ImageOps.exif_transpose(image, in_place=True)
        except Exception:  # a malformed EXIF block costs the orientation, not the photo
            pass
        return _pillow_to_bgr(image)


# The next marker after a scan's entropy-coded data: 0xFF bytes (one, or more as fill) and a code other than
# 0x00 (a stuffed 0xFF data byte) and RST0-7 (restart markers, which are part of the scan).
_MARKER_AFTER_SCAN = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD8)}  # TEM and RST0-7 carry no length


def count_jpeg_scans(data: bytes, stop_after: int) -> int:
    """How many scans (SOS segments) the JPEG in ``data`` has before its end (EOI), counting no further than
    ``stop_after + 1``: read from the segment headers, skipping each scan's data with one regular-expression
    search, so it costs microseconds per scan rather than a decoder's pass over the image. Stops quietly at
    anything malformed, which the decoder then reports; an MPO's further views come after the first one's
    EOI and are not counted (only the first is decoded)."""
    scans, pos, end = 0, 2, len(data)  # after SOI
    while pos + 4 <= end and data[pos] == 0xFF and scans <= stop_after:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker == 0xD9:  # EOI
            break
        elif marker in _STANDALONE_MARKERS:
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            if marker == 0xDA:
                scans += 1
                found = _MARKER_AFTER_SCAN.search(data, pos)
                if found is None:
                    break
                pos = found.end() - 2
    return scans


_DECODE_BAND_PIXELS = 1_000_000  # pixels copied out of Pillow at a time


def _pillow_to_bgr(image: Image.Image) -> np.ndarray:
    if image.mode in _WIDE_MODES:
        pixels = np.asarray(image)
        if image.mode == "F":  # floats have no fixed white: stretch their range
            low, high = float(np.nanmin(pixels)), float(np.nanmax(pixels))
            gray = np.nan_to_num((pixels - low) * (255.0 / max(high - low, 1e-12)))
        else:
            gray = np.clip(pixels.astype(np.float32), 0, 65535) / 257.0
        return cv2.cvtColor(np.round(gray).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    if image.mode == "L":
        return cv2.cvtColor(np.asarray(image), cv2.COLOR_GRAY2BGR)
    # CMYK, palette, RGBA, LA, YCbCr, 1-bit...: Pillow's own conversions.
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    # Copied out in bands of rows: a full-size array copy per step would hold twice the memory at the peak,
    # which a web server decoding several large photos at once cannot afford.
    width, height = rgb.size
    bgr = np.empty((height, width, 3), np.uint8)
    band = max(1, _DECODE_BAND_PIXELS // max(width, 1))
    for top in range(0, height, band):
        rows = np.asarray(rgb.crop((0, top, width, min(height, top + band))))
        bgr[top : top + len(rows)] = rows[..., ::-1]
    return bgr


def _decode_with_opencv(data: bytes, prefix: str) -> np.ndarray:
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. more pixels than OpenCV's CV_IO_MAX_IMAGE_PIXELS limit
        raise ImageTooLargeError(f"{prefix}cannot decode image ({exc.err.strip() or 'OpenCV error'})") from None
    if image is None:
        raise UnsupportedImageError(f"{prefix}not an image Pillow or OpenCV can decode")
    return image


def open_file(path: str | os.PathLike) -> BinaryIO:
    """An input file (an image, a video, a baseline) opened for reading; :class:`InputError` names it and says
    why it cannot be. Only regular files: opening a FIFO waits for a writer, and reading a device or a socket
    may never end, so a command given one hung for good. It is opened without waiting and refused once
    opened (not by looking first), so a file swapped for a FIFO meanwhile is refused too."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # no O_NONBLOCK on Windows, nor FIFOs
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "is a folder" if stat.S_ISDIR(mode) else "is a pipe, device or socket"
        raise InputError(f"{path}: {what}, not a file")
    return os.fdopen(fd, "rb")


def read_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an image file to BGR uint8 (see :func:`decode_image`), or raise :class:`InputError` saying why
    it cannot be used (including more than ``max_pixels`` pixels, read from the header before decoding)."""
    try:
        with open_file(path) as file:
            data = file.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    return decode_image(data, str(path), max_pixels=max_pixels)


def to_bgr(image: np.ndarray, rgb: bool = False) -> np.ndarray:
    """Gray (H, W), (H, W, 1), BGR/RGB (H, W, 3) or BGRA/RGBA (H, W, 4) uint8 -> BGR uint8 (H, W, 3).

    ``rgb=True`` says the channels are in RGB(A) order (Pillow, Qt, browsers); OpenCV's is BGR.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected an image path or a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"expected a uint8 image (pixels 0-255), got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise InputError(f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"expected a non-empty image, got shape {image.shape}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR)
    if rgb:
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(image)


def load_frame(frame: str | os.PathLike | np.ndarray, rgb: bool = False) -> np.ndarray:
    """An image path or array as a BGR uint8 frame."""
    if isinstance(frame, (str, os.PathLike)):
        return read_image(frame)
    return to_bgr(frame, rgb)


def expand_image_paths(inputs: Iterable[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """Image files, and the images inside folders (recursively, sorted), each with a name to save its
    result under: the file name, or the path inside the folder. Other paths are kept, to be reported."""
    items: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            items.extend((p, p.relative_to(item)) for p in found)
        else:
            items.append((item, Path(item.name)))
    return items


def iter_images(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[Path, np.ndarray | InputError]]:
    """Each path with its BGR image, or with the :class:`InputError` that says why it could not be read."""
    for path in paths:
        try:
            yield Path(path), read_image(path)
        except InputError as exc:
            yield Path(path), exc


@dataclass
class Frame:
    """One frame: BGR pixels, its index from 0, its time in seconds from the start of its video (None for a
    photo, which has no place in time) and the file it was read from (photos only)."""

    image: np.ndarray
    index: int
    time_s: float | None
    path: Path | None = None


def parse_source(spec: str | int | os.PathLike) -> str | int:
    """'0' -> webcam 0; URLs stay strings; anything else is a file or folder path (checked by :class:`Source`)."""
    if isinstance(spec, int):
        return spec
    text = os.fspath(spec)
    return int(text) if text.isdigit() else text


def is_stream_url(spec: str | int) -> bool:
    return isinstance(spec, str) and "://" in spec


class Source:
    """The one way to open frames: an image file (one frame), a folder of images (one frame each, in name
    order), a video file (every frame, in order), a webcam index or a stream URL (newest frame only).

    Opening checks the source and raises :class:`InputError` naming it. Iterate for :class:`Frame` objects;
    close it (or use ``with``) to release the device. ``fps`` is the rate a video file should be played at;
    None for live sources and still images, whose frames come when they come. A video file can
    :meth:`seek` while it is iterated.
    """

    def __init__(self, spec: str | int | os.PathLike):
        self.spec = parse_source(spec)
        self.name = f"camera {self.spec}" if isinstance(self.spec, int) else str(self.spec)
        self.live = isinstance(self.spec, int) or is_stream_url(self.spec)
        self.fps: float | None = None
        self.frame_count: int | None = None
        self.size = (0, 0)  # (width, height) as declared before decoding; (0, 0) where unknown
        self._images: list[Path] | None = None
        self._capture: cv2.VideoCapture | None = None
        self._reader: _LatestFrameReader | None = None
        self._seek_lock = threading.Lock()
        self._seek_to: int | None = None  # the frame the next read starts from (a seek not yet done)
        if not self.live:
            path = Path(self.spec)
            if path.is_dir():
                self._images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
                if not self._images:
                    raise InputError(f"{path}: no images in this folder")
                self.frame_count = len(self._images)
                return
            if not path.is_file():
                raise InputError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
            if path.stat().st_size == 0:
                raise InputError(f"{path}: empty file (0 bytes)")
            if path.suffix.lower() in IMAGE_SUFFIXES:
                self._images, self.frame_count = [path], 1
                return
        self._capture = cv2.VideoCapture(self.spec if self.live else str(self.spec))
        if not self._capture.isOpened():
            raise InputError(f"{self.name}: cannot open as a video (unreadable, unsupported or unavailable)")
        self.size = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        declared = float(fps) if 0 < fps < 1000 else 30.0  # webcams and some streams report 0
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if self.live:
            self._reader = _LatestFrameReader(self._capture, self.name)
        else:
            self.fps = declared
            self.frame_count = count if count > 0 else None

    @property
    def stills(self) -> bool:
        """Whether the frames are photos (an image file or a folder of them), each unrelated to the last."""
        return self._images is not None

    @property
    def seekable(self) -> bool:
        """Whether :meth:`seek` works: a video file, not a live source nor photos."""
        return self._capture is not None and not self.live

    def seek(self, time_s: float) -> None:
        """Go to ``time_s`` seconds into a video file (clamped to its frames): the next frame iterated is the
        one at that time. May be called from another thread than the one iterating; the seek happens before
        that thread's next read. :class:`InputError` for a source that is not a video file."""
        if not self.seekable:
            raise InputError(f"{self.name}: only a video file can be sought")
        index = max(0, round(time_s * self.fps))
        if self.frame_count:
            index = min(index, self.frame_count - 1)
        with self._seek_lock:
            self._seek_to = index

    @property
    def seek_pending(self) -> bool:
        """A seek was asked for and not done yet: the frame read last is from before it."""
        return self._seek_to is not None

    def _take_seek(self) -> int | None:
        with self._seek_lock:
            index, self._seek_to = self._seek_to, None
        return index

    def __iter__(self) -> Iterator[Frame]:
        if self._images is not None:
            for index, path in enumerate(self._images):
                yield Frame(read_image(path), index, None, path)
            return
        if self._reader is not None:
            yield from self._reader
            return
        index = decoded = 0
        while True:
            target = self._take_seek()
            if target is not None:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, target)
                index = int(self._capture.get(cv2.CAP_PROP_POS_FRAMES))  # where the decoder landed
            ok, image = self._capture.read()
            if not ok:
                if self.seek_pending:  # asked for while the last frame was being read: go there
                    continue
                break
            yield Frame(image, index, index / self.fps)
            index += 1
            decoded += 1
        if decoded == 0:
            raise InputError(f"{self.name}: no frame could be decoded (corrupt or unsupported video)")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.stop()
        if self._capture is not None:
            self._capture.release()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _LatestFrameReader:
    """Reads a live capture in a daemon thread and hands out only the newest frame."""

    def __init__(self, capture: cv2.VideoCapture, name: str, first_frame_timeout_s: float = 10.0):
        self._capture = capture
        self._name = name
        self._timeout = first_frame_timeout_s
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._done = False
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"emorec-reader-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        index = 0
        while not self._done:
            ok, image = self._capture.read()
            with self._cond:
                if not ok:
                    self._done = True
                else:
                    self._frame = Frame(image, index, time.monotonic() - self._start)
                    index += 1
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        last = -1
        while True:
            with self._cond:
                ready = self._cond.wait_for(
                    lambda seen=last: self._done or self._newer_than(seen), timeout=self._timeout if last < 0 else None
                )
                frame = self._frame
                if frame is None or frame.index <= last:
                    if not ready and last < 0:
                        raise InputError(f"{self._name}: no frame within {self._timeout:.0f} s")
                    if last < 0:
                        raise InputError(f"{self._name}: the stream ended before its first frame")
                    return
            last = frame.index
            yield frame

    def _newer_than(self, index: int) -> bool:
        return self._frame is not None and self._frame.index > index

    def stop(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
