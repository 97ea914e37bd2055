"""Short real training runs on a FER2013 subset: loss falls, checkpoints appear, resume is exact."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training extra (torch) not installed")
pytestmark = pytest.mark.slow  # real training runs

import emorec.training.train as train_module  # noqa: E402
from emorec.cli import main  # noqa: E402
from emorec.training.train import TrainConfig, distillation_loss, ensemble_logits, train  # noqa: E402


def _config(fer2013_path, out, **overrides) -> TrainConfig:
    values = dict(data=str(fer2013_path), out=str(out), model="emonet", epochs=3, batch_size=64, lr=0.02,
                  limit=640, precision="fp32", erasing=0.0)
    values.update(overrides)
    return TrainConfig(**values)


def test_short_run_lowers_loss_and_writes_checkpoints(fer2013_path, tmp_path, fer2013):
    out = tmp_path / "run"
    # The smallest shipped architecture: each epoch also scores the whole PublicTest.
    assert main(["train", "--data", str(fer2013_path), "--out", str(out), "--model", "emonet_fast", "--epochs", "3",
                 "--batch-size", "64", "--lr", "0.02", "--limit", "640", "--precision", "fp32", "--erasing", "0"]) == 0
    for name in ("last.pt", "best.pt", "metrics.csv", "curves.png", "config.json"):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["val_acc"] == max(float(r["val_acc"]) for r in rows)


def test_existing_run_is_not_overwritten(fer2013_path, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="--resume"):
        train(_config(fer2013_path, out))


def test_resume_after_interrupt_matches_an_uninterrupted_run(fer2013_path, tmp_path, monkeypatch, fer2013):
    straight = train(_config(fer2013_path, tmp_path / "straight", epochs=2, ema=0.9))

    real_augment, calls = train_module.augment_batch, {"n": 0}

    def interrupt_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 13:  # 10 batches per epoch: this is the third batch of epoch 2
            raise KeyboardInterrupt
        return real_augment(*args, **kwargs)

    monkeypatch.setattr(train_module, "augment_batch", interrupt_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(_config(fer2013_path, tmp_path / "resumed", epochs=2, ema=0.9))
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(train_module, "augment_batch", real_augment)
    resumed = train(_config(fer2013_path, tmp_path / "resumed", epochs=2, ema=0.9), resume=True)

    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(resumed / "last.pt", weights_only=True)
    assert b["epoch"] == 2 and len(b["history"]) == 2
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, msg=key)
    for key, value in a["ema"].items():  # the weight average resumes exactly too
        torch.testing.assert_close(b["ema"][key], value, msg=key)


def test_distillation_loss_is_zero_only_when_student_matches_teacher():
    teacher = torch.tensor([[2.0, 0.5, -1.0, 0.0, 0.0, 1.0, -0.5]])
    assert distillation_loss(teacher.clone(), teacher, temperature=2.0).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.zeros_like(teacher)
    p_teacher = torch.softmax(teacher / 2.0, dim=1)
    expected = (p_teacher * (p_teacher.log() - torch.log_softmax(student / 2.0, dim=1))).sum() * 4.0
    assert distillation_loss(student, teacher, temperature=2.0).item() == pytest.approx(expected.item(), rel=1e-5)


def test_an_ensemble_of_teachers_gives_the_mean_of_their_soft_targets():
    first = torch.tensor([[2.0, 0.5, -1.0, 0.0, 0.0, 1.0, -0.5]])
    second = torch.tensor([[-1.0, 0.0, 3.0, 0.5, 0.0, -2.0, 1.0]])
    mean = (torch.softmax(first / 2.0, dim=1) + torch.softmax(second / 2.0, dim=1)) / 2
    torch.testing.assert_close(torch.softmax(ensemble_logits([first, second], 2.0) / 2.0, dim=1), mean)
    assert ensemble_logits([first], 2.0) is first


def test_runs_recorded_with_one_teacher_path_still_load():
    assert TrainConfig.from_dict({"data": "x", "teacher": "t.pt"}).teachers == ("t.pt",)
    assert TrainConfig.from_dict({"data": "x", "teacher": ""}).teachers == ()


def test_distillation_with_weight_averaging_scores_and_saves_the_average(fer2013_path, tmp_path):
    teacher = train(_config(fer2013_path, tmp_path / "teacher", epochs=1))

    def distil(name: str, **extra) -> Path:
        return train(_config(fer2013_path, tmp_path / name, epochs=1, init=str(teacher / "best.pt"),
                             teachers=(str(teacher / "best.pt"),), distill_weight=0.7, ema=0.9, **extra))

    student = distil("student")
    last = torch.load(student / "last.pt", weights_only=True)
    best = torch.load(student / "best.pt", weights_only=True)
    averaged = {key.removeprefix("module."): value for key, value in last["ema"].items() if key.startswith("module.")}
    assert set(averaged) == set(last["model"])
    # The average trails the trained weights, so the two differ, and best.pt holds the average.
    assert any(not torch.equal(averaged[key], last["model"][key]) for key in averaged)
    for key, value in averaged.items():
        torch.testing.assert_close(best["model"][key], value, msg=key)
    # Runs are deterministic, so a teacher that also reads the mirror images must lead somewhere else.
    mirrored, again = distil("mirrored", teacher_flip=True), distil("again")
    weights = {name: torch.load(run / "last.pt", weights_only=True)["model"] for name, run in
               (("student", student), ("mirrored", mirrored), ("again", again))}
    assert all(torch.equal(weights["again"][key], value) for key, value in weights["student"].items())
    assert any(not torch.equal(weights["mirrored"][key], value) for key, value in weights["student"].items())


def test_a_shipped_model_starts_a_run_and_teaches_it(fer2013_path, tmp_path):
    """--init and --teacher take a float model that emorec export wrote, so the shipped models can be fine-tuned
    and taught from when the runs that made them are gone: barely moved, the student still reads PublicTest as
    the shipped model does, where a run from scratch is near chance."""
    from emorec.classifier import shipped_model_path

    shipped = str(shipped_model_path("emonet_fast"))
    run = train(_config(fer2013_path, tmp_path / "tuned", model="emonet_fast", epochs=1, lr=1e-5, init=shipped,
                        teachers=(shipped,)))
    assert torch.load(run / "best.pt", weights_only=True)["val_acc"] > 0.6


def test_teacher_prior_correction_takes_the_teachers_prior_out_of_its_lessons(fer2013_path, tmp_path, fer2013):
    """With its logits less log(its training prior), a teacher no longer hands on its common classes: a student
    that learns from it alone gives the commonest training class less of the probability than one that learns
    the teacher as it is."""
    from emorec.training.checkpoint import load_checkpoint, predict_proba

    teacher = str(train(_config(fer2013_path, tmp_path / "teacher", epochs=2)) / "best.pt")
    faces, _ = fer2013.split("PublicTest")
    common = int(np.bincount(fer2013.split("Training")[1]).argmax())
    share = {}
    for strength in (0.0, 1.0):
        run = train(_config(fer2013_path, tmp_path / f"student{strength}", epochs=2, init=teacher,
                            teachers=(teacher,), distill_weight=1.0, teacher_prior_correction=strength))
        model, spec, _ = load_checkpoint(run / "best.pt")
        share[strength] = float(predict_proba(model, faces[:500], spec).mean(0)[common])
    assert share[1.0] < 0.85 * share[0.0], share


def test_teacher_with_other_preprocessing_is_refused(fer2013_path, tmp_path):
    teacher = train(_config(fer2013_path, tmp_path / "teacher", model="shallow", epochs=1))
    with pytest.raises(ValueError, match="preprocesses faces differently"):
        train(_config(fer2013_path, tmp_path / "student", teachers=(str(teacher / "best.pt"),)))
    assert not (tmp_path / "student").exists()  # a refused run leaves no folder behind


def test_logit_adjustment_lowers_the_common_classes_share(fer2013_path, tmp_path, fer2013):
    """Menon et al.'s loss adds tau * log(prior) to the logits it scores, so the model's own logits leave the class
    prior out: the most common training class must get less of the probability than without it."""
    from emorec.training.checkpoint import load_checkpoint, predict_proba

    faces, _ = fer2013.split("PublicTest")
    common = int(np.bincount(fer2013.labels[:640]).argmax())
    share = {}
    for tau in (0.0, 1.0):
        run = train(_config(fer2013_path, tmp_path / f"tau{tau}", epochs=2, logit_adjustment=tau))
        model, spec, _ = load_checkpoint(run / "best.pt")
        share[tau] = float(predict_proba(model, faces[:500], spec).mean(0)[common])
    assert share[1.0] < 0.85 * share[0.0], share
