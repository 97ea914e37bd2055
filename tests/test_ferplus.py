"""FER+ labels on the real files: the row join, its checks, soft-target training and FER+ evaluation."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from emorec.cli import main
from emorec.evaluate import evaluate
from emorec.training.data import FERPLUS_COLUMNS, DatasetError, load_fer2013, load_ferplus_votes


@pytest.fixture(scope="module")
def joined(fer2013_path, ferplus_path, tmp_path_factory):
    cache = os.environ.get("EMOREC_CACHE", tmp_path_factory.mktemp("cache"))
    return load_fer2013(fer2013_path, cache_dir=cache, ferplus=ferplus_path)


def test_real_join_agrees_as_published_and_a_shifted_join_does_not(joined):
    majority = joined.ferplus_majority()
    public = joined.split_mask("PublicTest") & (majority >= 0)
    agreement = (majority[public] == joined.labels[public]).mean()
    assert 0.60 < agreement < 0.70  # FER2013 and FER+ majority agree on about two thirds of faces
    shifted = np.roll(majority, 1)[public]
    assert (shifted == joined.labels[public]).mean() < 0.25  # one row off is near chance
    assert joined.not_a_face().sum() == 176  # the rows FER+ marks "not a face" by all 10 votes
    distribution = joined.ferplus_distribution()
    rows = distribution.sum(1)
    assert np.allclose(rows[rows > 0], 1.0) and 176 <= (rows == 0).sum() < 200  # plus a few all-unknown rows


def test_majority_rule_drops_single_votes_and_needs_more_than_half():
    from emorec.training.data import Fer2013

    votes = np.array([
        [6, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # neutral: 6 of the 6 votes left once single votes go
        [4, 0, 0, 4, 2, 0, 0, 0, 0, 0],  # neutral 4, sad 4, angry 2: no majority
        [0, 0, 0, 0, 0, 0, 0, 7, 3, 0],  # contempt: no FER2013 class
        [0, 0, 3, 0, 0, 0, 7, 0, 0, 0],  # fear
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face
    ], dtype=np.int16)
    data = Fer2013(np.zeros((5, 48, 48), np.uint8), np.zeros(5, np.int64), np.array(["Training"] * 5), votes)
    assert data.ferplus_majority().tolist() == [6, -1, -1, 2, -1]
    assert data.not_a_face().tolist() == [False, False, False, False, True]


def _ferplus_file(tmp_path, ferplus_path, edit=None, rows: int | None = None):
    lines = ferplus_path.read_text().splitlines()
    if rows is not None:
        lines = lines[:rows + 1]
    if edit is not None:
        lines = edit(lines)
    path = tmp_path / "fer2013new.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _swap_usage(lines):
    row = lines[28710].split(",")  # the first PublicTest row (FER2013 row 28709)
    row[0] = "Training"
    lines[28710] = ",".join(row)
    return lines


def _bad_vote(lines):
    row = lines[5].split(",")
    row[4] = "many"
    lines[5] = ",".join(row)
    return lines


@pytest.mark.parametrize("edit, rows, message", [
    (None, 35000, "35000 image rows, but fer2013.csv has 35887"),
    (_swap_usage, None, "line 28711: Usage 'Training' but FER2013 row 28709 is 'PublicTest'"),
    (_bad_vote, None, "line 6: surprise votes 'many' are not a whole number"),
    (lambda lines: [lines[0].replace(",NF", "")] + lines[1:], None, "missing FER+ column(s) NF"),
])
def test_bad_ferplus_files_name_the_problem(joined, ferplus_path, tmp_path, edit, rows, message):
    path = _ferplus_file(tmp_path, ferplus_path, edit, rows)
    with pytest.raises(DatasetError) as err:
        load_ferplus_votes(path, joined.usage)
    assert message in str(err.value) and str(path) in str(err.value)


def test_cli_reports_a_bad_ferplus_file_in_one_line(fer2013_path, ferplus_path, tmp_path, capsys):
    path = _ferplus_file(tmp_path, ferplus_path, rows=100)
    assert main(["evaluate", "--data", str(fer2013_path), "--ferplus", str(path), "--limit", "10"]) == 2
    err = capsys.readouterr().err
    assert "100 image rows" in err and "Traceback" not in err


def test_replaced_file_of_the_same_size_and_time_is_parsed_anew(tmp_path, fer2013):
    header = "emotion,pixels,Usage\n"
    rows = [f"{label},{' '.join(map(str, img.ravel()))},Training"
            for img, label in zip(fer2013.images[:3], fer2013.labels[:3], strict=True)]
    path = tmp_path / "fer.csv"
    path.write_text(header + "\n".join(rows) + "\n")
    stat = path.stat()
    first = load_fer2013(path, cache_dir=tmp_path / "cache")
    # Same length, same modification time, other pixels: swap two images' rows.
    path.write_text(header + "\n".join([rows[1], rows[0], rows[2]]) + "\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    second = load_fer2013(path, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(second.images[0], first.images[1])


def test_soft_target_training_uses_the_votes(fer2013_path, ferplus_path, joined, tmp_path):
    torch = pytest.importorskip("torch", reason="training extra (torch) not installed")
    from emorec.training.train import TrainConfig, train, training_targets

    rows, mix = training_targets(joined, "mix", 0.25)
    assert not joined.not_a_face()[rows].any() and len(rows) == 28709 - 150
    one_hot, votes = np.eye(7)[joined.labels[rows]], joined.ferplus_distribution()[rows]
    voted = votes.sum(1) > 0  # a face with only contempt/unknown votes keeps its FER2013 label
    np.testing.assert_allclose(mix[voted], (0.75 * one_hot + 0.25 * votes)[voted], atol=1e-6)
    np.testing.assert_allclose(mix[~voted], one_hot[~voted])
    _, soft = training_targets(joined, "ferplus")
    assert (soft.max(1) < 1).mean() > 0.5  # most faces get a spread of votes, not a one-hot label

    def run(targets: str) -> list[dict]:
        out = tmp_path / targets
        train(TrainConfig(data=str(fer2013_path), out=str(out), model="emonet", epochs=1, batch_size=64,
                          lr=0.02, limit=256, precision="fp32", erasing=0.0, ferplus=str(ferplus_path),
                          targets=targets))
        return list(csv.DictReader(open(out / "metrics.csv")))

    hard, votes = run("fer2013"), run("ferplus")
    # Same seed, same faces and augmentation: only the targets differ, so the losses do.
    assert float(hard[0]["train_loss"]) != pytest.approx(float(votes[0]["train_loss"]), abs=1e-3)
    assert 0 <= float(votes[0]["val_ferplus_acc"]) <= 1
    assert torch.load(tmp_path / "ferplus" / "last.pt", weights_only=True)["config"]["targets"] == "ferplus"


def test_soft_labels_take_their_share_of_each_target(joined, fer2013_path, ferplus_path, tmp_path, capsys):
    pytest.importorskip("torch", reason="training extra (torch) not installed")
    from emorec.training.data import load_soft_labels
    from emorec.training.train import training_prior, training_targets

    # Another model's reading of every row: here one that calls every face surprised.
    soft = np.zeros((len(joined.labels), 7), np.float32)
    soft[:, 5] = 1.0
    path = tmp_path / "soft.npy"
    np.save(path, soft)
    rows, mix = training_targets(joined, "mix", 0.5)
    _, blended = training_targets(joined, "mix", 0.5, load_soft_labels(path, len(joined.labels)), 0.3)
    np.testing.assert_allclose(blended, 0.7 * mix + 0.3 * soft[rows], atol=1e-6)
    config = {"data": str(fer2013_path), "ferplus": str(ferplus_path), "targets": "mix",
              "soft_labels": str(path), "soft_label_weight": 0.3}
    np.testing.assert_allclose(training_prior(config), blended.mean(0), atol=1e-6)  # export's prior knows them

    # Files that are not soft labels for these rows are refused in one line, before any run starts.
    np.save(tmp_path / "short.npy", soft[:100])
    np.save(tmp_path / "counts.npy", soft * 10)
    (tmp_path / "text.npy").write_text("not an array")
    args = ["train", "--data", str(fer2013_path), "--ferplus", str(ferplus_path), "--targets", "mix",
            "--epochs", "1", "--limit", "64", "--soft-label-weight", "0.3"]
    for name, message in (("short.npy", "but the data set has 35887 rows"), ("counts.npy", "not probabilities"),
                          ("text.npy", "not a NumPy .npy file"), ("absent.npy", "no such file")):
        out = tmp_path / name.replace(".npy", "_run")
        assert main([*args, "--soft-labels", str(tmp_path / name), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and not out.exists()
    assert main([*args, "--out", str(tmp_path / "r")]) == 2  # a weight without the labels
    assert "soft labels need both" in capsys.readouterr().err
    no_weight = [a for a in args if a not in ("--soft-label-weight", "0.3")]
    assert main([*no_weight, "--soft-labels", str(path), "--out", str(tmp_path / "r")]) == 2  # labels that weigh 0
    assert "soft labels need both" in capsys.readouterr().err


def test_ferplus_targets_without_ferplus_are_refused(fer2013_path, tmp_path, capsys):
    pytest.importorskip("torch", reason="training extra (torch) not installed")
    assert main(["train", "--data", str(fer2013_path), "--out", str(tmp_path / "r"), "--targets", "mix",
                 "--epochs", "1", "--limit", "64"]) == 2
    assert "needs the FER+ labels" in capsys.readouterr().err


def test_evaluate_reports_ferplus_majority_accuracy(fer2013_path, ferplus_path, joined, capsys):
    report = evaluate(None, fer2013_path, split="PrivateTest", limit=400, ferplus=ferplus_path)
    assert report.ferplus["n"] + report.ferplus["left_out"] == 400
    assert 0.5 < report.ferplus["accuracy"] <= 1.0 and "more than half" in report.ferplus["rule"]
    # The two label sets disagree on about a third of the faces, which caps any one model on one of them.
    rows = np.flatnonzero(joined.split_mask("PrivateTest"))[:400]
    majority, labels = joined.ferplus_majority()[rows], joined.labels[rows]
    agree = np.mean(labels[majority >= 0] == majority[majority >= 0])
    assert report.ferplus["labels_agree"] == pytest.approx(agree) and 0.55 < agree < 0.8
    assert main(["evaluate", "--data", str(fer2013_path), "--ferplus", str(ferplus_path), "--limit", "50"]) == 0
    out = capsys.readouterr().out
    assert "FER+ PrivateTest: majority-label top-1" in out and "FER2013's label is the FER+ majority on" in out


def test_ferplus_columns_are_the_files_order(ferplus_path):
    header = ferplus_path.read_text().splitlines()[0].split(",")
    assert tuple(header[2:]) == FERPLUS_COLUMNS


def test_photo_augmented_run_keeps_the_epoch_with_the_best_ferplus_accuracy(fer2013_path, ferplus_path, tmp_path):
    torch = pytest.importorskip("torch", reason="training extra (torch) not installed")
    from emorec.training.train import TrainConfig, train

    out = tmp_path / "run"
    train(TrainConfig(data=str(fer2013_path), out=str(out), model="emonet_fast", epochs=2, batch_size=64, lr=0.02,
                      limit=256, precision="fp32", ferplus=str(ferplus_path), targets="ferplus",
                      photo_augment=True, select="ferplus"))
    history = list(csv.DictReader(open(out / "metrics.csv")))
    best = max(range(len(history)), key=lambda i: float(history[i]["val_ferplus_acc"]))
    saved = torch.load(out / "best.pt", weights_only=False)
    assert saved["epoch"] == best + 1, "best.pt is the epoch with the best FER+ PublicTest accuracy"
    assert all(np.isfinite(float(row["train_loss"])) for row in history)
