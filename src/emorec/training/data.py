"""FER2013 loading: the Kaggle CSV (plain or gzip) and the image-folder release, and FER+ labels.

Both give a :class:`Fer2013` of 48x48 uint8 faces, labels 0-6 and the split of each
image (``Training``, ``PublicTest``, ``PrivateTest``). Microsoft's FER+ relabelling
(``fer2013new.csv``: 10 crowd votes per image, one row per row of ``fer2013.csv``) joins
to the CSV by row number. Malformed input raises :class:`DatasetError` with a message
that names the file, the line and the problem.
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
from emorec.labels import EMOTIONS, FACE_SIZE, NUM_CLASSES, emotion_id

SPLITS = ("Training", "PublicTest", "PrivateTest")
# Folder names of the image-folder release and of common re-packagings.
FOLDER_SPLITS = {"train": "Training", "training": "Training", "test": "PublicTest",
                 "val": "PublicTest", "valid": "PublicTest", "validation": "PublicTest",
                 "publictest": "PublicTest", "privatetest": "PrivateTest"}


# The vote columns of fer2013new.csv, in its order (not FER2013's).
FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                   "unknown", "NF")
# For each FER2013 class id 0-6, its FER+ vote column; contempt, unknown and NF have no FER2013 class.
FERPLUS_FOR_CLASS = tuple(FERPLUS_COLUMNS.index(name) for name in
                          ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"))
_NF = FERPLUS_COLUMNS.index("NF")


@dataclass
class Fer2013:
    """Faces (N, 48, 48) uint8, labels (N,) int64 in 0-6, each face's split name, and, when FER+ was
    joined, its votes (N, 10) in ``FERPLUS_COLUMNS`` order."""

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    ferplus: np.ndarray | None = None

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of one split (``Training``, ``PublicTest`` or ``PrivateTest``)."""
        mask = self.split_mask(name)
        return self.images[mask], self.labels[mask]

    def split_mask(self, name: str) -> np.ndarray:
        """Boolean mask (N,) of the rows of one split."""
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        mask = self.usage == name
        if not mask.any():
            raise DatasetError(f"the data set has no {name!r} images")
        return mask

    def _votes(self) -> np.ndarray:
        if self.ferplus is None:
            raise DatasetError("no FER+ labels were joined to this data set (load it with ferplus=PATH)")
        return self.ferplus

    def not_a_face(self) -> np.ndarray:
        """Rows (N,) where more than half of the FER+ votes say "not a face"."""
        votes = self._votes()
        return votes[:, _NF] * 2 > votes.sum(1)

    def ferplus_distribution(self) -> np.ndarray:
        """FER+ votes as probabilities (N, 7) over FER2013's classes. Contempt, unknown and not-a-face votes
        are dropped (no FER2013 class says them) and the rest renormalised; rows left without any vote
        are all zeros."""
        emotions = self._votes()[:, FERPLUS_FOR_CLASS].astype(np.float32)
        total = emotions.sum(1, keepdims=True)
        return np.divide(emotions, total, out=np.zeros_like(emotions), where=total > 0)

    def ferplus_majority(self) -> np.ndarray:
        """The FER+ majority label (N,) as a FER2013 class id, or -1 where there is none to score.

        The rule of the FER+ paper's majority mode: single votes are dropped as outliers, then one column
        must hold more than half of the remaining votes. Rows whose majority is contempt (no FER2013
        class), unknown or not-a-face, or that have no majority, get -1.
        """
        votes = self._votes().copy()
        votes[votes == 1] = 0
        top = votes.argmax(1)
        has_majority = votes.max(1) * 2 > votes.sum(1)
        to_class = np.full(len(FERPLUS_COLUMNS), -1)
        to_class[list(FERPLUS_FOR_CLASS)] = np.arange(NUM_CLASSES)
        return np.where(has_majority, to_class[top], -1)

    def class_counts(self, name: str) -> dict[str, int]:
        _, labels = self.split(name)
        counts = np.bincount(labels, minlength=NUM_CLASSES)
        return {emotion: int(c) for emotion, c in zip(EMOTIONS, counts, strict=True)}


def load_fer2013(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                 ferplus: str | os.PathLike | None = None) -> Fer2013:
    """Load FER2013 from a Kaggle CSV (``.csv`` or ``.csv.gz``) or an image-folder root; with ``ferplus``,
    join the FER+ votes of that ``fer2013new.csv`` by row number (CSV only: the folder release has no rows).

    Parsed CSVs are cached as ``.npz`` in ``cache_dir`` (default ``$EMOREC_CACHE`` or ``~/.cache/emorec``),
    keyed by a hash of the file's content, so later loads take a blink and a replaced file is parsed anew.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_dir():
        if ferplus is not None:
            raise DatasetError(f"{path}: FER+ labels join fer2013.csv by row number; an image folder has no rows")
        return _load_image_folder(path)
    data = _load_csv_cached(path, cache_dir)
    if ferplus is not None:
        data.ferplus = load_ferplus_votes(ferplus, data.usage)
    return data


def _load_csv_cached(path: Path, cache_dir: str | os.PathLike | None) -> Fer2013:
    cache = _cache_path(path, cache_dir)
    if cache.exists():
        with np.load(cache, allow_pickle=False) as npz:
            return Fer2013(npz["images"], npz["labels"], npz["usage"])
    data = _parse_csv(path)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, images=data.images, labels=data.labels, usage=data.usage)
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only cache only costs the next load a re-parse
    return data


def load_soft_labels(path: str | os.PathLike, rows: int) -> np.ndarray:
    """Probabilities (rows, 7) from a ``.npy`` file, one row per row of the data set they were made for;
    raise :class:`DatasetError` saying what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (soft labels: a .npy of shape (rows, 7))")
    try:
        probs = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a NumPy .npy file ({exc})") from None
    if probs.shape != (rows, NUM_CLASSES):
        raise DatasetError(f"{path}: shape {probs.shape}, but the data set has {rows} rows of {NUM_CLASSES} classes")
    probs = probs.astype(np.float32)
    if not np.isfinite(probs).all() or (probs < 0).any() or not np.allclose(probs.sum(1), 1, atol=1e-3):
        raise DatasetError(f"{path}: not probabilities (each row must be 7 non-negative numbers summing to 1)")
    return probs


def load_ferplus_votes(path: str | os.PathLike, usage: np.ndarray) -> np.ndarray:
    """The FER+ votes (N, 10) of ``fer2013new.csv``, checked row by row against FER2013's splits ``usage``.

    The file joins by row number alone, so a file of another length or a row whose Usage differs from
    FER2013's is refused, naming the first bad row: a shifted join would silently mislabel everything.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such FER+ file (Microsoft's fer2013new.csv)")
    rows: list[list[int]] = []
    try:
        with _open_text(path) as stream:
            reader = csv.reader(stream)
            header = [c.strip() for c in next(reader, [])]
            needed = ("Usage", *FERPLUS_COLUMNS)
            missing = [c for c in needed if c not in header]
            if missing:
                raise DatasetError(f"{path} line 1: missing FER+ column(s) {', '.join(missing)}; expected a header "
                                   f"'Usage,Image name,{','.join(FERPLUS_COLUMNS)}'")
            i_usage = header.index("Usage")
            i_votes = [header.index(c) for c in FERPLUS_COLUMNS]
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                line, index = reader.line_num, len(rows)
                if len(row) < len(header):
                    raise DatasetError(f"{path} line {line}: {len(row)} field(s), expected {len(header)}")
                if index < len(usage) and row[i_usage].strip() != usage[index]:
                    raise DatasetError(f"{path} line {line}: Usage {row[i_usage].strip()!r} but FER2013 row "
                                       f"{index} is {str(usage[index])!r}; the files do not join row by row")
                try:
                    votes = [int(row[i]) for i in i_votes]
                except ValueError:
                    bad = next(c for c, i in zip(FERPLUS_COLUMNS, i_votes, strict=True)
                               if not row[i].strip().isdigit())
                    raise DatasetError(f"{path} line {line}: {bad} votes {row[header.index(bad)]!r} "
                                       f"are not a whole number") from None
                if min(votes) < 0:
                    raise DatasetError(f"{path} line {line}: negative vote count")
                rows.append(votes)
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable FER+ CSV ({exc})") from None
    if len(rows) != len(usage):
        raise DatasetError(f"{path}: {len(rows)} image rows, but fer2013.csv has {len(usage)}; FER+ joins by row "
                           f"number, so both must come from the same original release")
    return np.array(rows, dtype=np.int16)


def _cache_path(path: Path, cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is None:
        cache_dir = os.environ.get("EMOREC_CACHE", Path.home() / ".cache" / "emorec")
    # The content, not path/size/mtime: a file replaced by one of the same size and time must not load stale
    # arrays. Hashing costs a fraction of a second against the tens of seconds of a parse.
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return Path(cache_dir) / f"fer2013-{digest.hexdigest()}.npz"


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
    expected = FACE_SIZE * FACE_SIZE
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
    images = flat.astype(np.uint8).reshape(-1, FACE_SIZE, FACE_SIZE)
    return Fer2013(images, np.array(labels, dtype=np.int64), np.array(usage))


def _iter_folder_images(root: Path) -> Iterator[tuple[Path, str, int]]:
    from emorec.sources import IMAGE_SUFFIXES  # sources imports OpenCV and Pillow: only for the image folders

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
        if image.shape != (FACE_SIZE, FACE_SIZE):
            image = cv2.resize(image, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
        images.append(image)
        labels.append(label)
        usage.append(split)
    if not images:
        raise DatasetError(f"{root}: no images found; expected train/<emotion>/*.jpg and test/<emotion>/*.jpg")
    return Fer2013(np.stack(images), np.array(labels, dtype=np.int64), np.array(usage))
