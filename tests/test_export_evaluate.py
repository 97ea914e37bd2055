"""ONNX export parity, evaluation metrics, and the shipped model's card checked against real PrivateTest faces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emorec.classifier import SHIPPED_MODELS, EmotionClassifier, read_metadata, shipped_model_path
from emorec.cli import main
from emorec.evaluate import compute_report, evaluate, predict_with_tta

# The shipping rule's floor on FER2013 PrivateTest (docs/models.md), and each shipped model's FER+ PrivateTest
# majority-label top-1 a little under what it measured: they stop a regression of either.
PRIVATE_TEST_FLOOR = {"emonet_wide": 0.69, "emonet_fast": 0.69}
FERPLUS_PRIVATE_TEST_FLOOR = {"emonet_wide": 0.77, "emonet_fast": 0.75}


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_model_meets_its_card_on_a_fixed_privatetest_subset(fer2013_path, ferplus_path, name):
    card = read_metadata(shipped_model_path(name))
    assert card["model"] == name
    assert card["classes"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert card["accuracy"]["PrivateTest"] >= PRIVATE_TEST_FLOOR[name]
    assert card["ferplus_accuracy"]["PrivateTest"] >= FERPLUS_PRIVATE_TEST_FLOOR[name]
    report = evaluate(name, fer2013_path, split="PrivateTest", limit=1000, ferplus=ferplus_path)
    # The card rounds to 4 decimals.
    assert report.accuracy >= card["accuracy"]["PrivateTest_first1000"] - 5e-5
    assert report.ferplus["accuracy"] >= card["ferplus_accuracy"]["PrivateTest_first1000"] - 5e-5


def test_evaluate_cli_writes_report_and_confusion_matrix(fer2013_path, tmp_path, capsys):
    assert main(["evaluate", "--data", str(fer2013_path), "--split", "PublicTest", "--limit", "300",
                 "--tta", "flip", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "top-1 accuracy" in printed and "binary accuracy" in printed
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["n"] == 300 and np.array(report["confusion"]).sum() == 300
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_cli_rejects_a_missing_model(fer2013_path, tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path / "nope.onnx"), "--data", str(fer2013_path)]) == 2
    assert "nope.onnx: no such ONNX model file" in capsys.readouterr().err


def test_corrupt_onnx_file_gets_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a usable ONNX model"):
        EmotionClassifier(bad)


def test_report_metrics_and_the_misleading_binary_accuracy():
    labels = np.array([0, 3, 3, 6])
    probs = np.eye(7)[[0, 3, 4, 6]] * 0.9 + 0.1 / 7
    report = compute_report(probs, labels, "toy")
    assert report.accuracy == 0.75
    assert report.confusion[3][4] == 1 and report.per_class["happy"]["recall"] == 0.5
    # A model that says "no" to every class still scores 6/7 in sigmoid-style binary accuracy.
    assert compute_report(np.zeros((4, 7)), labels, "toy").binary_accuracy == pytest.approx(6 / 7)


def test_flip_tta_is_symmetric(fer2013):
    faces = fer2013.split("PublicTest")[0][:32]
    predict = EmotionClassifier().predict
    a = predict_with_tta(predict, faces, "flip")
    b = predict_with_tta(predict, np.ascontiguousarray(faces[:, :, ::-1]), "flip")
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_onnx_export_matches_pytorch_on_real_faces(tmp_path, fer2013):
    torch = pytest.importorskip("torch", reason="training extra (torch) not installed")
    from emorec.training.export import InferenceWrapper, export_onnx
    from emorec.training.models import create_model, get_spec

    torch.manual_seed(0)
    model, spec = create_model("emonet").eval(), get_spec("emonet")
    faces = fer2013.split("PublicTest")[0][:64]
    path = tmp_path / "m.onnx"
    assert export_onnx([model], spec, path, flip_tta=True, check_images=faces) <= 1e-4
    with torch.no_grad():
        expected = InferenceWrapper([model], spec, flip_tta=True)(torch.from_numpy(faces).float()[:, None]).numpy()
    got = EmotionClassifier(path).predict(faces)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert read_metadata(path)["spec"]["input_size"] == spec.input_size


@pytest.mark.slow  # two torch models exported and checked against ONNX Runtime
def test_export_cli_builds_an_ensemble_of_two_architectures(tmp_path, capsys):
    torch = pytest.importorskip("torch", reason="training extra (torch) not installed")
    from emorec.training.models import create_model, get_spec

    def checkpoint(name: str) -> str:
        path = tmp_path / f"{name}.pt"
        torch.save({"model_name": name, "spec": get_spec(name).to_dict(), "model": create_model(name).state_dict()},
                   path)
        return str(path)

    out = tmp_path / "ensemble.onnx"
    assert main(["export", checkpoint("emonet"), checkpoint("emonet_wide"), "--out", str(out), "--data", ""]) == 0
    meta = read_metadata(out)
    assert meta["model"] == "emonet+emonet_wide" and meta["ensemble"] == 2
    assert EmotionClassifier(out).predict(np.zeros((3, 48, 48), np.uint8)).shape == (3, 7)
    # shallow sees the whole 48x48 face, emonet a 40x40 crop: one graph cannot preprocess for both.
    assert main(["export", checkpoint("emonet"), checkpoint("shallow"), "--out", str(tmp_path / "x.onnx"),
                 "--data", ""]) == 2
    assert "share one input size" in capsys.readouterr().err


def test_prior_correction_divides_by_the_training_prior(tmp_path, fer2013_path, fer2013):
    torch = pytest.importorskip("torch", reason="training extra (torch) not installed")
    from emorec.training.models import create_model, get_spec

    torch.manual_seed(0)
    config = {"data": str(fer2013_path), "targets": "fer2013"}
    path = tmp_path / "emonet.pt"
    torch.save({"model_name": "emonet", "spec": get_spec("emonet").to_dict(), "model": create_model("emonet")
                .state_dict(), "config": config}, path)
    plain, corrected = tmp_path / "plain.onnx", tmp_path / "corrected.onnx"
    assert main(["export", str(path), "--out", str(plain), "--data", ""]) == 0
    assert main(["export", str(path), "--out", str(corrected), "--data", "", "--prior-correction", "0.5"]) == 0
    prior = np.bincount(fer2013.split("Training")[1], minlength=7) / 28709
    card = read_metadata(corrected)["prior_correction"]
    assert card["strength"] == 0.5 and np.allclose(card["training_prior"], prior, atol=1e-4)
    faces = fer2013.split("PublicTest")[0][:32]
    expected = EmotionClassifier(plain).predict(faces) / np.sqrt(prior)
    np.testing.assert_allclose(EmotionClassifier(corrected).predict(faces),
                               expected / expected.sum(1, keepdims=True), atol=1e-5)


def test_a_shipped_model_is_a_checkpoint_to_export_again(tmp_path, fer2013, capsys):
    """The run directories that made the shipped models do not outlive their machine; the models' own files
    hold their weights, spec, training run and prior, so they export again to the same answers."""
    pytest.importorskip("torch", reason="training extra (torch) not installed")
    shipped, again = shipped_model_path("emonet_fast"), tmp_path / "again.onnx"
    assert main(["export", str(shipped), "--out", str(again), "--flip-tta", "--prior-correction", "0.5",
                 "--data", ""]) == 0
    faces = fer2013.split("PublicTest")[0][:200]
    probs, shipped_probs = EmotionClassifier(again).predict(faces), EmotionClassifier(shipped).predict(faces)
    # The model card keeps the training prior to 4 decimals, which moves a probability by well under 1e-3.
    np.testing.assert_allclose(probs, shipped_probs, atol=1e-3)
    assert (probs.argmax(1) == shipped_probs.argmax(1)).all()
    card, shipped_card = read_metadata(again)["prior_correction"], read_metadata(shipped)["prior_correction"]
    assert card["strength"] == 0.5 and card["training_prior"] == pytest.approx(shipped_card["training_prior"])
    capsys.readouterr()
    # What holds no single network's float weights is refused in one line, and no input is overwritten.
    written = again.read_bytes()
    for source, message in ((shipped.with_name("emonet_fast_int8.onnx"), "pass its float twin"),
                            (again, "would overwrite the input")):
        assert main(["export", str(source), "--out", str(again), "--data", ""]) == 2
        assert message in capsys.readouterr().err
    assert again.read_bytes() == written


def test_quantize_int8_keeps_the_float_models_answers(fer2013, tmp_path):
    pytest.importorskip("torch", reason="training extra not installed")
    import onnx

    from emorec.training.export import quantize_int8

    source, twin = shipped_model_path("emonet_fast"), tmp_path / "twin.onnx"
    quantize_int8(source, twin, fer2013.split("Training")[0][:256])
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in onnx.load(str(twin)).graph.node}
    faces = fer2013.split("PublicTest")[0][:500]
    float_probs, int8_probs = EmotionClassifier(source).predict(faces), EmotionClassifier(twin).predict(faces)
    assert (float_probs.argmax(1) == int8_probs.argmax(1)).mean() >= 0.95
    # The softmax stays float, so probabilities still sum to 1 rather than to a multiple of 1/255.
    assert np.allclose(int8_probs.sum(1), 1, atol=1e-5)


def test_a_model_whose_write_fails_is_left_as_it_was(tmp_path, monkeypatch):
    """Issue 25: on a full disk export left a 0-byte ``x.tmp.onnx`` beside the model; the model is now written
    under a partial name that goes when the write fails."""
    import errno
    import shutil

    import onnx

    from emorec.training.export import update_metadata

    model = tmp_path / "x.onnx"
    shutil.copy(shipped_model_path(), model)
    before = model.read_bytes()

    def full_disk(proto, path, *args, **kwargs) -> None:
        open(path, "wb").close()  # created, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        update_metadata(model, {"note": "never written"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.onnx"] and model.read_bytes() == before
