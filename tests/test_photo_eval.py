"""The real-photo benchmark: labelled folders read in either layout, the whole pipeline or the classifier alone
scored, missed faces counted as wrong, classes absent from a set left out of macro recall."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from emorec.cli import main
from emorec.errors import DatasetError
from emorec.labels import EMOTIONS
from emorec.photo_eval import NO_FACE, evaluate_photos, format_photo_report, read_labelled_photos

DEV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "expressions_dev"


def _dev_set(name: str) -> Path:
    if not (DEV / name / "labels.csv").is_file():
        pytest.skip(f"{name} not found at {DEV / name}")
    return DEV / name


@pytest.fixture
def small_set(tmp_path, astronaut_bgr) -> Path:
    """The smiling astronaut (happy) and a face-free photo labelled sad, listed beside labels.csv by emotion id."""
    from skimage import data

    cv2.imwrite(str(tmp_path / "astronaut.jpg"), astronaut_bgr)
    cv2.imwrite(str(tmp_path / "coffee.png"), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    (tmp_path / "labels.csv").write_text("image,emotion\nastronaut.jpg,3\ncoffee.png,sad\n")
    return tmp_path


def test_a_missed_face_counts_as_wrong(small_set):
    report = evaluate_photos(small_set)
    assert report.predicted.tolist() == [EMOTIONS.index("happy"), NO_FACE]
    assert report.detection_rate == 0.5 and report.accuracy == 0.5
    assert report.recall == {"happy": 1.0, "sad": 0.0} and report.macro_recall == 0.5  # over the 2 classes present
    assert report.confusion()[1, -1] == 1  # sad row, "no face" column
    counts = report.prediction_counts()
    assert counts["happy"] == (1, 1) and counts["sad"] == (0, 0)  # over photos with a face
    assert "face found 50.0%" in format_photo_report(report)


def test_the_cli_prints_the_figures_and_writes_the_reports(small_set, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["evaluate", "--photos", str(small_set), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "top-1 50.0%" in printed and "macro recall 0.500" in printed and "avx2" in printed
    saved = json.loads((out / "report.json").read_text())
    assert saved["detection_rate"] == 0.5 and saved["macro_recall_over"] == ["happy", "sad"]
    assert cv2.imread(str(out / "confusion.png")).shape[0] > 300
    rows = (out / "predictions.csv").read_text().splitlines()
    assert rows[1].startswith("astronaut.jpg,happy,happy,") and rows[2].startswith("coffee.png,sad,no face,")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("image,emotion\nastronaut.jpg,smug\n", r"line 2: unknown emotion 'smug'"),
        ("image,emotion\nastronaut.jpg,happy\nmissing.jpg,sad\n", r"1 listed image\(s\) found neither.*missing\.jpg"),
        ("picture,label\nastronaut.jpg,happy\n", "no column emotion, image"),
        ("image,emotion\n", "no photos listed"),
    ],
    ids=["unknown-emotion", "missing-image", "wrong-columns", "empty"],
)
def test_bad_label_files_are_explained(small_set, capsys, labels, message):
    (small_set / "labels.csv").write_text(labels)
    with pytest.raises(DatasetError, match=message):
        read_labelled_photos(small_set)
    assert main(["evaluate", "--photos", str(small_set)]) == 2
    assert "emorec evaluate:" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="no such file"):
        read_labelled_photos(small_set / "nowhere")


def test_close_up_photos_through_the_pipeline():
    # 60 real close-ups (evenly spaced, so every emotion is there): the default detector finds nearly all.
    report = evaluate_photos(_dev_set("lfw_expressions"), limit=60)
    assert report.n == 60 and len(report.present) >= 6
    assert report.detection_rate >= 0.95
    assert report.accuracy > 0.3  # chance is about 0.15


def test_ckplus_faces_through_the_classifier_alone():
    report = evaluate_photos(_dev_set("ckplus48"), classifier_only=True, limit=120)
    assert "neutral" not in report.recall and len(report.recall) == 6  # CK+ has no neutral
    assert report.macro_recall == pytest.approx(np.mean(list(report.recall.values())))
    assert report.recall["happy"] > 0.9 and report.accuracy > 0.5
    assert report.prediction_counts()["neutral"][0] == 0
    assert "absent" in format_photo_report(report)  # neutral: predicted, never occurring
