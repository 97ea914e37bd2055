"""FER2013 loading: the Kaggle CSV (plain or gzip) and the image-folder release.

Both give a :class:`Fer2013` of 48x48 uint8 faces, labels 0-6 and the split of each
image (``Training``, ``PublicTest``, ``PrivateTest``). Malformed input raises
:class:`DatasetError` with a message that names the file, the line and the problem.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emorec.errors import DatasetError
from emorec.labels import EMOTIONS, NUM_CLASSES, emotion_id

IMAGE_SIZE = 48
SPLITS = ("Training", "PublicTest", "PrivateTest")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".webp"}
# Folder names of the image-folder release and of common re-packagings.
FOLDER_SPLITS = {"train": "Training", "training": "Training", "test": "PublicTest",
                 "val": "PublicTest", "valid": "PublicTest", "validation": "PublicTest",
                 "publictest": "PublicTest", "privatetest": "PrivateTest"}


@dataclass
class Fer2013:
    """Faces (N, 48, 48) uint8, labels (N,) int64 in 0-6, and each face's split name."""

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of one split (``Training``, ``PublicTest`` or ``PrivateTest``)."""
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        mask = self.usage == name
        if not mask.any():
            raise DatasetError(f"the data set has no {name!r} images")
        return self.images[mask], self.labels[mask]

    def class_counts(self, name: str) -> dict[str, int]:
        _, labels = self.split(name)
        counts = np.bincount(labels, minlength=NUM_CLASSES)
        return {emotion: int(c) for emotion, c in zip(EMOTIONS, counts, strict=True)}


def load_fer2013(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Fer2013:
    """Load FER2013 from a Kaggle CSV (``.csv`` or ``.csv.gz``) or an image-folder root.

    Parsed CSVs are cached as ``.npz`` in ``cache_dir`` (default ``~/.cache/emorec``),
    keyed by the file's path, size and modification time, so later loads take a blink.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_dir():
        return _load_image_folder(path)
    cache = _cache_path(path, cache_dir)
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as npz:
            return Fer2013(npz["images"], npz["labels"], npz["usage"])
    data = _parse_csv(path)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, images=data.images, labels=data.labels, usage=data.usage)
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only cache only costs the next load a re-parse
    return data


def _cache_path(path: Path, cache_dir: str | os.PathLike | None) -> Path | None:
    if cache_dir is None:
        cache_dir = os.environ.get("EMOREC_CACHE", Path.home() / ".cache" / "emorec")
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"fer2013-{key}.npz"


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as raw:
        magic = raw.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _parse_csv(path: Path) -> Fer2013:
    labels: list[int] = []
    usage: list[str] = []
    pixel_rows: list[str] = []
    expected = IMAGE_SIZE * IMAGE_SIZE
    try:
        with _open_text(path) as stream:
            reader = csv.reader(stream)
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{path}: the file is empty; expected a header 'emotion,pixels,Usage'")
            columns = [c.strip().lower() for c in header]
            missing = [c for c in ("emotion", "pixels") if c not in columns]
            if missing:
                raise DatasetError(f"{path} line 1: missing column(s) {', '.join(missing)}; "
                                   f"expected a header 'emotion,pixels,Usage', got {','.join(header)!r}")
            i_emotion, i_pixels = columns.index("emotion"), columns.index("pixels")
            i_usage = columns.index("usage") if "usage" in columns else None
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) < len(columns):
                    raise DatasetError(f"{path} line {line}: {len(row)} field(s), expected {len(columns)}")
                try:
                    label = int(row[i_emotion])
                except ValueError:
                    raise DatasetError(f"{path} line {line}: emotion {row[i_emotion]!r} is not an integer") from None
                if not 0 <= label < NUM_CLASSES:
                    raise DatasetError(f"{path} line {line}: emotion {label} is out of range 0-{NUM_CLASSES - 1}")
                pixels = row[i_pixels].strip()
                # Counting separators is cheap; split() only runs to confirm a suspect row.
                if pixels.count(" ") + 1 != expected and len(pixels.split()) != expected:
                    count = len(pixels.split())
                    raise DatasetError(f"{path} line {line}: pixels has {count} values, expected {expected} (48x48)")
                split = row[i_usage].strip() if i_usage is not None else "Training"
                if split not in SPLITS:
                    raise DatasetError(f"{path} line {line}: Usage {split!r} is not one of {', '.join(SPLITS)}")
                labels.append(label)
                usage.append(split)
                pixel_rows.append(pixels)
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable FER2013 CSV ({exc})") from None
    if not labels:
        raise DatasetError(f"{path}: the file has a header but no image rows")
    # One C-level parse of all rows is far faster than a Python split per row.
    # numpy 2 raises ValueError at the first non-number; numpy 1 stopped there with a warning, which
    # the size check below catches.
    try:
        flat = np.fromstring(" ".join(pixel_rows), dtype=np.int64, sep=" ")
    except ValueError:
        flat = np.empty(0, dtype=np.int64)
    if flat.size != expected * len(labels):
        raise DatasetError(f"{path}: pixels must be space-separated integers 0-255")
    if flat.min() < 0 or flat.max() > 255:
        bad = int(np.argmax((flat < 0) | (flat > 255)) // expected)
        raise DatasetError(f"{path}: image row {bad + 1} has a pixel value outside 0-255")
    images = flat.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return Fer2013(images, np.array(labels, dtype=np.int64), np.array(usage))


def _iter_folder_images(root: Path) -> Iterator[tuple[Path, str, int]]:
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        split = FOLDER_SPLITS.get(split_dir.name.lower())
        if split is None:
            continue
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            try:
                label = emotion_id(class_dir.name)
            except ValueError as exc:
                raise DatasetError(f"{class_dir}: {exc}") from None
            for file in sorted(class_dir.iterdir()):
                if file.suffix.lower() in IMAGE_SUFFIXES:
                    # The release names test images PublicTest_N / PrivateTest_N: keep that split.
                    stem = file.stem.lower()
                    file_split = "PrivateTest" if stem.startswith("privatetest") else split
                    file_split = "PublicTest" if stem.startswith("publictest") else file_split
                    yield file, file_split, label


def _load_image_folder(root: Path) -> Fer2013:
    import cv2

    images, labels, usage = [], [], []
    for file, split, label in _iter_folder_images(root):
        image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DatasetError(f"{file}: not a readable image")
        if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
            image = cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
        images.append(image)
        labels.append(label)
        usage.append(split)
    if not images:
        raise DatasetError(f"{root}: no images found; expected train/<emotion>/*.jpg and test/<emotion>/*.jpg")
    return Fer2013(np.stack(images), np.array(labels, dtype=np.int64), np.array(usage))
