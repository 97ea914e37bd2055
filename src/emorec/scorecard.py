"""The shipping rule: one real-face score per model, printed beside the figures it is made of.

A model ships (as the default, or as a member of the family) when it has the best **real-face score** among
the candidates and clears the FER2013 floor. The score is the mean of four numbers, each in [0, 1]:

- FER+ PublicTest majority-label top-1 (``evaluate.FERPLUS_RULE``): what ten people saw in each face;
- ``lfw_expressions`` macro recall, through the whole pipeline (close-up news photos);
- ``ckplus48`` macro recall, the classifier alone (posed expressions, framed like FER2013);
- ``london`` macro recall, through the whole pipeline (studio portraits, neutral and smiling).

Macro recall weighs every class a set holds alike, so a model cannot score by calling everything neutral.
PrivateTest (FER2013 and FER+) is reported for every model but never enters the score: choices are made on
PublicTest and the development photos. The floor, ``FER2013_FLOOR`` on FER2013 PrivateTest, keeps the
original benchmark from silently regressing; it is a gate, not something to maximise.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emorec.evaluate import ferplus_score, load_predictor, score_test_splits
from emorec.labels import EMOTIONS
from emorec.photo_eval import PhotoReport, evaluate_photos

FER2013_FLOOR = 0.69
# The development photo sets (../shared/datasets/expressions_dev) and whether each goes through the detector.
DEV_SETS = {"lfw_expressions": "pipeline", "ckplus48": "classifier only", "london": "pipeline"}


@dataclass
class Scorecard:
    """One model's figures: FER2013 and FER+ top-1 per test split, and a report per development set."""

    model: str
    fer2013: dict[str, float]  # split -> top-1
    ferplus: dict[str, float]  # split -> majority-label top-1
    dev: dict[str, PhotoReport] = field(default_factory=dict)
    groups: dict[str, dict[str, float]] = field(default_factory=dict)  # london ethnicity -> class -> recall

    @property
    def score(self) -> float:
        """The real-face score (module docstring): the mean of FER+ PublicTest and the dev sets' macro recall."""
        parts = [self.ferplus["PublicTest"], *(self.dev[name].macro_recall for name in DEV_SETS)]
        return float(np.mean(parts))

    @property
    def clears_floor(self) -> bool:
        return self.fer2013["PrivateTest"] >= FER2013_FLOOR

    def to_dict(self) -> dict:
        return {"model": self.model, "real_face_score": round(self.score, 4), "clears_floor": self.clears_floor,
                "fer2013_top1": {k: round(v, 4) for k, v in self.fer2013.items()},
                "ferplus_top1": {k: round(v, 4) for k, v in self.ferplus.items()},
                "dev": {name: report.to_dict() for name, report in self.dev.items()},
                "london_recall_by_ethnicity": self.groups}


def _recall_by_group(report: PhotoReport, labels_csv: Path, column: str) -> dict[str, dict[str, float]]:
    """Per-class recall of each value of ``column`` in the set's labels.csv (e.g. london's ethnicity)."""
    with open(labels_csv, newline="", encoding="utf-8-sig") as f:
        group_of = {row["image"].strip(): row.get(column, "").strip() for row in csv.DictReader(f)}
    groups = np.array([group_of.get(p.name, "") for p in report.paths])
    out = {}
    for group in sorted(set(groups) - {""}):
        rows = groups == group
        out[group] = {EMOTIONS[c]: round(float(np.mean(report.predicted[rows & (report.labels == c)] == c)), 3)
                      for c in report.present if np.any(rows & (report.labels == c))}
    return out


def scorecard(model: str | os.PathLike | None, data: str | os.PathLike, ferplus: str | os.PathLike,
              dev_root: str | os.PathLike, quantized: bool | None = None) -> Scorecard:
    """Score a shipped model's name or an ONNX file (``None``: the default) by the shipping rule.

    FER2013 and FER+ are scored on the float model; the development sets run as the engine would run the
    model (its int8 twin where there is one, unless ``quantized`` is False).
    """
    from emorec.training.data import load_fer2013  # the data set loader: numpy only, no torch

    fer2013, ferplus_top1 = {}, {}
    scored = score_test_splits(load_predictor(model), load_fer2013(data, ferplus=ferplus))
    for split, (probs, labels, majority) in scored.items():
        fer2013[split] = float(np.mean(probs.argmax(1) == labels))
        ferplus_top1[split] = ferplus_score(probs, majority)["accuracy"]
    dev_root = Path(dev_root)
    dev = {name: evaluate_photos(dev_root / name, model, classifier_only=mode == "classifier only",
                                 quantized=quantized)
           for name, mode in DEV_SETS.items()}
    groups = _recall_by_group(dev["london"], dev_root / "london" / "labels.csv", "ethnicity")
    shown = dev["lfw_expressions"].setup["model"]
    return Scorecard(shown, fer2013, ferplus_top1, dev, groups)


def format_scorecards(cards: list[Scorecard]) -> str:
    """A table, one row per model, best real-face score first; the figures behind the score beside it."""
    header = (f"{'model':<34} {'score':>6} | {'FER+ pub':>8} {'lfw MR':>6} {'ck+ MR':>6} {'london MR':>9} | "
              f"{'FER+ priv':>9} {'FER13 pub':>9} {'FER13 priv':>10} | {'lfw top1':>8} {'london happy':>12} "
              f"{'london neutral':>14}")
    lines = [header, "-" * len(header)]
    for card in sorted(cards, key=lambda c: c.score, reverse=True):
        london = card.dev["london"].recall
        floor = "" if card.clears_floor else f"  (below the FER2013 floor of {FER2013_FLOOR:.0%})"
        lines.append(
            f"{card.model:<34} {card.score:6.4f} | {card.ferplus['PublicTest']:8.2%} "
            f"{card.dev['lfw_expressions'].macro_recall:6.3f} {card.dev['ckplus48'].macro_recall:6.3f} "
            f"{card.dev['london'].macro_recall:9.3f} | {card.ferplus['PrivateTest']:9.2%} "
            f"{card.fer2013['PublicTest']:9.2%} {card.fer2013['PrivateTest']:10.2%} | "
            f"{card.dev['lfw_expressions'].accuracy:8.1%} {london.get('happy', float('nan')):12.3f} "
            f"{london.get('neutral', float('nan')):14.3f}{floor}")
    lines.append("score = mean(FER+ PublicTest top-1, macro recall on lfw_expressions, ckplus48 and london); "
                 "PrivateTest is reported, never scored. MR: macro recall.")
    return "\n".join(lines)
