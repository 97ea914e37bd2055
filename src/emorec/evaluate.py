"""Evaluation: top-1 accuracy, macro-F1, per-class metrics and confusion matrices for any model file.

Works on an exported ONNX model (ONNX Runtime, no torch) or a training checkpoint (``.pt``, needs torch).
Test-time augmentation (``flip``, ``shift``) is applied to the 48x48 input, so it means the same for both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emorec.labels import EMOTIONS, NUM_CLASSES

Predictor = Callable[[np.ndarray], np.ndarray]  # uint8 (N, 48, 48) -> probabilities (N, 7)
TTA_MODES = ("none", "flip", "flip+shift")
FERPLUS_RULE = ("FER+ majority label: single votes dropped as outliers, then one of the 10 columns must hold more "
                "than half of the remaining votes; rows whose majority is contempt (no FER2013 class), unknown or "
                "not-a-face, or that have no majority, are left out. Published FER+ figures score 8 classes "
                "(with contempt); these 7 classes leave contempt's few rows out.")


def _model_path(model: str | os.PathLike | None) -> Path:
    """A training checkpoint as it is; anything else as the engine finds classifiers (a name or an ONNX file)."""
    if model is not None and Path(model).suffix in (".pt", ".pth"):
        if not Path(model).is_file():
            raise FileNotFoundError(f"{model}: no such model file")
        return Path(model)
    from emorec.classifier import model_file  # ONNX Runtime, only once a model is asked for

    return model_file(model)


def load_predictor(model: str | os.PathLike | None = None, batch_size: int = 256) -> Predictor:
    """A function from uint8 faces (N, 48, 48) to probabilities (N, 7) for a shipped model's name, a
    ``.onnx`` or a ``.pt`` file.

    ``None`` means the default shipped model.
    """
    path = _model_path(model)
    if path.suffix == ".onnx":
        from emorec.classifier import EmotionClassifier

        return EmotionClassifier(path).predict
    if path.suffix in (".pt", ".pth"):
        from emorec.training.checkpoint import load_checkpoint, predict_proba  # torch, only for a .pt file

        net, spec, _ = load_checkpoint(path)
        return lambda faces: predict_proba(net, faces, spec, batch_size=batch_size)
    raise ValueError(f"{path}: expected an .onnx model or a .pt checkpoint")


def _tta_views(faces: np.ndarray, mode: str) -> list[np.ndarray]:
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; expected one of {', '.join(TTA_MODES)}")
    views = [faces]
    if mode in ("flip", "flip+shift"):
        views.append(faces[:, :, ::-1])
    if mode == "flip+shift":
        padded = np.pad(faces, ((0, 0), (2, 2), (2, 2)), mode="edge")
        for dy, dx in ((0, 0), (0, 4), (4, 0), (4, 4)):
            shifted = padded[:, dy:dy + 48, dx:dx + 48]
            views += [shifted, shifted[:, :, ::-1]]
    return [np.ascontiguousarray(v) for v in views]


def predict_with_tta(predict: Predictor, faces: np.ndarray, tta: str = "none") -> np.ndarray:
    """Average the probabilities over the TTA views of ``faces``."""
    return np.mean([predict(view) for view in _tta_views(faces, tta)], axis=0)


@dataclass
class EvaluationReport:
    split: str
    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    binary_accuracy: float  # the original project's misleading sigmoid-style score, reported for contrast only
    tta: str
    ferplus: dict | None = None  # FER+ majority-label top-1 of the same outputs, when FER+ labels were given

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def compute_report(probs: np.ndarray, labels: np.ndarray, split: str, tta: str = "none") -> EvaluationReport:
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    predicted = probs.argmax(1)
    classes = list(range(NUM_CLASSES))
    report = classification_report(labels, predicted, labels=classes, target_names=list(EMOTIONS),
                                   output_dict=True, zero_division=0)
    per_class = {name: {k: float(v) for k, v in report[name].items()} for name in EMOTIONS}
    # "Binary accuracy" thresholds each of the 7 outputs at 0.5 against the one-hot label, so the six
    # correct "no"s of every image count: even an all-zero output scores 6/7 = 85.7%.
    one_hot = np.eye(NUM_CLASSES)[labels]
    binary = float(((probs > 0.5) == one_hot).mean())
    return EvaluationReport(
        split=split, n=int(len(labels)), accuracy=float(accuracy_score(labels, predicted)),
        macro_f1=float(f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)),
        per_class=per_class, confusion=confusion_matrix(labels, predicted, labels=classes).tolist(),
        binary_accuracy=binary, tta=tta)


def ferplus_score(probs: np.ndarray, majority: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Top-1 against FER+ majority labels (-1: left out, see ``FERPLUS_RULE``); with the FER2013 ``labels``
    of the same faces, also the share of the scored faces where the two label sets agree."""
    scored = majority >= 0
    accuracy = float((probs.argmax(1)[scored] == majority[scored]).mean()) if scored.any() else float("nan")
    score = {"accuracy": accuracy, "n": int(scored.sum()), "left_out": int((~scored).sum()), "rule": FERPLUS_RULE}
    if labels is not None:
        score["labels_agree"] = float((labels[scored] == majority[scored]).mean()) if scored.any() else float("nan")
    return score


def score_test_splits(predict: Predictor, data) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """PublicTest's and PrivateTest's (probabilities, FER2013 labels, FER+ majority labels) for a loaded data
    set (``emorec.training.data.load_fer2013``); the majority labels are None where FER+ was not joined."""
    majority = data.ferplus_majority() if data.ferplus is not None else None
    scored = {}
    for split in ("PublicTest", "PrivateTest"):
        rows = data.split_mask(split)
        scored[split] = (predict(data.images[rows]), data.labels[rows], None if majority is None else majority[rows])
    return scored


def plot_confusion(report: EvaluationReport, path: str | os.PathLike, title: str = "") -> None:
    """Save counts and row-normalised confusion matrices side by side, class names on both axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    counts = np.array(report.confusion)
    normalised = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    for ax, matrix, fmt, name in ((axes[0], counts, "d", "counts"), (axes[1], normalised, ".2f", "row-normalised")):
        ConfusionMatrixDisplay(matrix, display_labels=list(EMOTIONS)).plot(
            ax=ax, cmap="Blues", values_format=fmt, colorbar=False, xticks_rotation=45)
        ax.set_title(f"{name} ({report.split}, n={report.n})")
    fig.suptitle(title or f"top-1 accuracy {report.accuracy:.2%}, macro-F1 {report.macro_f1:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(model: str | os.PathLike | None, data_path: str | os.PathLike, split: str = "PublicTest",
             tta: str = "none", limit: int = 0, out_dir: str | os.PathLike | None = None,
             ferplus: str | os.PathLike | None = None) -> EvaluationReport:
    """Score a model on one FER2013 split (and, with ``ferplus``, on its FER+ majority labels too); with
    ``out_dir``, write report.json and confusion.png there."""
    from emorec.training.data import load_fer2013  # the data set loader: numpy only, no torch

    data = load_fer2013(data_path, ferplus=ferplus)
    rows = np.flatnonzero(data.split_mask(split))
    if limit:
        rows = rows[:limit]
    faces, labels = data.images[rows], data.labels[rows]
    path = _model_path(model)
    probs = predict_with_tta(load_predictor(path), faces, tta)
    report = compute_report(probs, labels, split, tta)
    if ferplus is not None:
        report.ferplus = ferplus_score(probs, data.ferplus_majority()[rows], labels)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        name = path.name
        (out / "report.json").write_text(json.dumps({"model": name, **report.to_dict()}, indent=2))
        plot_confusion(report, out / "confusion.png", title=f"{name}: top-1 "
                       f"{report.accuracy:.2%}, macro-F1 {report.macro_f1:.3f} ({split}, TTA {tta})")
    return report


def format_report(report: EvaluationReport) -> str:
    lines = [f"{report.split}: n={report.n}  top-1 accuracy {report.accuracy:.2%}  macro-F1 {report.macro_f1:.4f}"
             f"  (TTA: {report.tta})",
             f"{'emotion':>9} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>7}"]
    for name, m in report.per_class.items():
        lines.append(f"{name:>9} {m['precision']:9.3f} {m['recall']:7.3f} {m['f1-score']:6.3f} {int(m['support']):7d}")
    lines.append(f"(for contrast only: sigmoid-style 'binary accuracy' of the same outputs would read "
                 f"{report.binary_accuracy:.2%}; it is not top-1 accuracy)")
    if report.ferplus is not None:
        lines.append(f"FER+ {report.split}: majority-label top-1 {report.ferplus['accuracy']:.2%} on "
                     f"{report.ferplus['n']} faces ({report.ferplus['left_out']} left out)")
        lines.append(f"  rule: {report.ferplus['rule']}")
        # Why no model can reach the top of both scores: on the faces the two label sets disagree on, a
        # model can be right by one of them at most.
        lines.append(f"  FER2013's label is the FER+ majority on {report.ferplus['labels_agree']:.2%} of these faces: "
                     "a model that read FER+ perfectly would score that on FER2013 here")
    return "\n".join(lines)
