"""Real photos scored against a ``labels.csv``: the whole pipeline, or 48x48 faces through the classifier alone.

A folder holds ``labels.csv`` with the columns ``image,emotion[,person]`` (emotion names as in
``emorec.labels``, or ids 0-6); each image lies under ``images/`` beside it or at its path relative to it.
Through the pipeline each photo counts its largest face, and a photo without a face (or that cannot be
read) counts as wrong. Macro recall is the mean recall over the classes the set contains, so a class it
lacks (CK+ has no neutral) does not pull the mean down; predicting that class still costs recall of the
others. ``emorec evaluate --photos DIR`` and ``benchmarks/real_photos.py`` call this module.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emorec.cpu import cpu_summary
from emorec.engine import CropGeometry, EmotionRecognizer
from emorec.errors import DatasetError
from emorec.labels import EMOTIONS, FACE_SIZE, NUM_CLASSES, emotion_id
from emorec.sources import InputError, read_image

NO_FACE = -1  # the prediction of a photo in which no face was found (or that could not be read)


@dataclass
class LabelledPhotos:
    """The photos of a labels.csv: their paths, emotion ids and person (empty where not given)."""

    root: Path
    paths: list[Path]
    labels: np.ndarray
    persons: list[str]

    def subset(self, limit: int) -> LabelledPhotos:
        """About ``limit`` photos evenly spaced through the list (sets are often sorted by emotion)."""
        if not limit or limit >= len(self.paths):
            return self
        pick = np.linspace(0, len(self.paths) - 1, limit).round().astype(int)
        return LabelledPhotos(self.root, [self.paths[i] for i in pick], self.labels[pick],
                              [self.persons[i] for i in pick])


def read_labelled_photos(folder: str | os.PathLike) -> LabelledPhotos:
    """Read ``folder/labels.csv`` (or the labels.csv given itself); raise :class:`DatasetError` saying what is
    wrong (missing file or column, unknown emotion, missing images)."""
    folder = Path(folder)
    csv_path = folder if folder.is_file() else folder / "labels.csv"
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: no such file (expected labels.csv with columns image,emotion[,person])")
    root = csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing_columns = {"image", "emotion"} - set(reader.fieldnames or ())
        if missing_columns:
            raise DatasetError(f"{csv_path}: no column {', '.join(sorted(missing_columns))} "
                               f"(found: {', '.join(reader.fieldnames or ()) or 'nothing'})")
        rows = list(reader)
    if not rows:
        raise DatasetError(f"{csv_path}: no photos listed")
    paths, labels, persons, absent = [], [], [], []
    for line, row in enumerate(rows, start=2):
        text = (row["emotion"] or "").strip()
        try:
            labels.append(int(text) if text.isdigit() and int(text) < NUM_CLASSES else emotion_id(text))
        except ValueError as exc:
            raise DatasetError(f"{csv_path}, line {line}: {exc}") from None
        name = (row["image"] or "").strip()
        path = next((p for p in (root / "images" / name, root / name) if p.is_file()), root / "images" / name)
        if not name or not path.is_file():
            absent.append(name or f"(empty, line {line})")
        paths.append(path)
        persons.append((row.get("person") or "").strip())
    if absent:
        raise DatasetError(f"{csv_path}: {len(absent)} listed image(s) found neither under {root / 'images'} nor "
                           f"{root}: {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}")
    return LabelledPhotos(root, paths, np.array(labels, dtype=np.int64), persons)


@dataclass
class PhotoReport:
    """What one run over a photo folder measured; ``predicted`` is NO_FACE where no face was found."""

    name: str
    mode: str  # "pipeline" or "classifier only"
    paths: list[Path]
    labels: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray  # (N, 7), NaN where no face
    errors: dict[str, str] = field(default_factory=dict)  # unreadable photos: path -> why
    setup: dict = field(default_factory=dict)  # model, detector, CPU, date
    ms_per_photo: float = 0.0

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def present(self) -> list[int]:
        """The emotion ids that occur in the set."""
        return sorted(set(self.labels.tolist()))

    @property
    def detection_rate(self) -> float:
        return float(np.mean(self.predicted != NO_FACE))

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predicted == self.labels))

    @property
    def recall(self) -> dict[str, float]:
        """Per-class recall (no face = wrong) for the classes present."""
        return {EMOTIONS[c]: float(np.mean(self.predicted[self.labels == c] == c)) for c in self.present}

    @property
    def macro_recall(self) -> float:
        """Mean recall over the classes present in the set (absent ones are left out, not counted as 0)."""
        return float(np.mean(list(self.recall.values())))

    def prediction_counts(self) -> dict[str, tuple[int, int]]:
        """For each of the 7 classes: (times it occurs, times it is predicted), over the photos with a face,
        so that missed faces do not make every class look under-predicted."""
        found = self.predicted != NO_FACE
        return {name: (int(np.sum(self.labels[found] == c)), int(np.sum(self.predicted[found] == c)))
                for c, name in enumerate(EMOTIONS)}

    def confusion(self) -> np.ndarray:
        """Counts (classes present) x (7 classes + no face)."""
        matrix = np.zeros((len(self.present), NUM_CLASSES + 1), dtype=np.int64)
        for row, c in enumerate(self.present):
            predicted = self.predicted[self.labels == c]
            matrix[row] = np.bincount(np.where(predicted == NO_FACE, NUM_CLASSES, predicted), minlength=NUM_CLASSES + 1)
        return matrix

    def to_dict(self) -> dict:
        counts = self.prediction_counts()
        return {
            "set": self.name, "mode": self.mode, "n": self.n, **self.setup,
            "detection_rate": round(self.detection_rate, 4), "top1": round(self.accuracy, 4),
            "macro_recall": round(self.macro_recall, 4), "macro_recall_over": [EMOTIONS[c] for c in self.present],
            "recall": {k: round(v, 4) for k, v in self.recall.items()},
            "occurs_predicted_over_photos_with_a_face": counts,
            "confusion_rows": [EMOTIONS[c] for c in self.present], "confusion_columns": [*EMOTIONS, "no face"],
            "confusion": self.confusion().tolist(), "unreadable": self.errors,
            "ms_per_photo": round(self.ms_per_photo, 2),
        }


def evaluate_photos(
    folder: str | os.PathLike,
    model: str | os.PathLike | None = None,
    *,
    classifier_only: bool = False,
    detector: str = "auto",
    quantized: bool | None = None,
    crop: CropGeometry | None = None,
    limit: int = 0,
) -> PhotoReport:
    """Score a model (None: the shipped one; its int8 twin where the engine would use it, unless ``quantized``
    is False) on a labelled photo folder, through the whole pipeline or, with ``classifier_only``, feeding
    each image (as 48x48 grayscale) straight to the classifier."""
    photos = read_labelled_photos(folder).subset(limit)
    crop = crop or CropGeometry()
    rec = EmotionRecognizer(model=model, detector=detector, max_faces=1, crop=crop, quantized=quantized)
    probabilities = np.full((len(photos.paths), NUM_CLASSES), np.nan, dtype=np.float32)
    errors: dict[str, str] = {}
    start = time.perf_counter()
    if classifier_only:
        faces, readable = [], []
        for i, path in enumerate(photos.paths):
            try:
                gray = cv2.cvtColor(read_image(path), cv2.COLOR_BGR2GRAY)
            except InputError as exc:
                errors[str(path)] = str(exc)
                continue
            if gray.shape != (FACE_SIZE, FACE_SIZE):
                gray = cv2.resize(gray, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
            faces.append(gray)
            readable.append(i)
        if faces:
            probabilities[readable] = rec.classify(np.stack(faces))
    else:
        for i, path in enumerate(photos.paths):
            try:
                faces = rec(path)
            except InputError as exc:
                errors[str(path)] = str(exc)
                continue
            if faces:
                probabilities[i] = faces[0].scores
    elapsed_ms = (time.perf_counter() - start) * 1000
    found = ~np.isnan(probabilities[:, 0])
    predicted = np.where(found, np.nan_to_num(probabilities).argmax(1), NO_FACE)
    info = rec.model_info
    setup = {
        "model": f"{info['name']} ({Path(info['path']).name}{', int8' if info['quantized'] else ''})",
        "detector": None if classifier_only else info["detector"],
        "crop_scale": None if classifier_only else crop.scale,
        "cpu": cpu_summary(),
        "date": datetime.date.today().isoformat(),
    }
    return PhotoReport(photos.root.name, "classifier only" if classifier_only else "pipeline", photos.paths,
                       photos.labels, predicted, probabilities, errors, setup, elapsed_ms / max(len(photos.paths), 1))


def format_photo_report(report: PhotoReport) -> str:
    """The report as text: headline figures, per-class recall, and predicted against occurring counts."""
    lines = [
        f"{report.name} ({report.mode}): {report.n} photos; model {report.setup['model']}"
        + (f", detector {report.setup['detector']}, crop scale {report.setup['crop_scale']:g}"
           if report.setup.get("detector") else ""),
        f"measured {report.setup['date']} on {report.setup['cpu']}; {report.ms_per_photo:.1f} ms per photo",
        (f"face found {report.detection_rate:.1%}   " if report.mode == "pipeline" else "")
        + f"top-1 {report.accuracy:.1%}   macro recall {report.macro_recall:.3f} "
        f"(over the {len(report.present)} classes present{'; no face = wrong' if report.mode == 'pipeline' else ''})",
        f"{'emotion':>9} {'recall':>7} {'occurs':>7} {'predicted':>9} {'ratio':>6}   (counts over photos with a face)",
    ]
    recall = report.recall
    for name, (occurs, predicted) in report.prediction_counts().items():
        ratio = f"{predicted / occurs:6.2f}" if occurs else "absent"
        shown = f"{recall[name]:7.3f}" if name in recall else f"{'-':>7}"
        lines.append(f"{name:>9} {shown} {occurs:7d} {predicted:9d} {ratio:>6}")
    if report.errors:
        lines.append(f"{len(report.errors)} photo(s) could not be read (counted as wrong), e.g. "
                     f"{next(iter(report.errors.values()))}")
    return "\n".join(lines)


def plot_photo_confusion(report: PhotoReport, path: str | os.PathLike) -> None:
    """Counts and row-normalised confusion matrices (rows: classes present; columns: 7 classes + no face)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = report.confusion()
    columns = [*EMOTIONS, "no face"] if report.mode == "pipeline" else list(EMOTIONS)
    counts = counts[:, : len(columns)]
    rows = [EMOTIONS[c] for c in report.present]
    normalised = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(16, 6.5))
    for ax, matrix, fmt, title in ((axes[0], counts, "d", "counts"), (axes[1], normalised, ".2f", "row-normalised")):
        ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        for (r, c), value in np.ndenumerate(matrix):
            ax.text(c, r, format(value, fmt), ha="center", va="center",
                    color="white" if normalised[r, c] > 0.5 else "black", fontsize=9)
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title} ({report.name}, {report.mode}, n={report.n})")
    found = f"face found {report.detection_rate:.1%}, " if report.mode == "pipeline" else ""
    fig.suptitle(f"{report.setup['model']}: {found}top-1 {report.accuracy:.1%}, macro recall {report.macro_recall:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_photo_report(report: PhotoReport, out_dir: str | os.PathLike) -> list[Path]:
    """report.json, confusion.png and predictions.csv (one row per photo, with its 7 probabilities)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    plot_photo_confusion(report, out / "confusion.png")
    with open(out / "predictions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "emotion", "predicted", *EMOTIONS])
        for path, label, predicted, probs in zip(report.paths, report.labels, report.predicted,
                                                 report.probabilities, strict=True):
            writer.writerow([path.name, EMOTIONS[label], EMOTIONS[predicted] if predicted != NO_FACE else "no face",
                             *("" if np.isnan(p) else f"{p:.4f}" for p in probs)])
    return [out / "report.json", out / "confusion.png", out / "predictions.csv"]
