"""tools/faceapi_soft_labels.py: face-api.js's expression model converted to an emorec ONNX model, on real faces.

The package comes from the npm registry with the test set-up (``make install-test``); a wrong weight layout or
class order would leave its reading of posed expressions at chance, so the check is what it reads.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from emorec.photo_eval import evaluate_photos

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "node_modules" / "@vladmandic" / "face-api" / "model"

pytestmark = pytest.mark.skipif(not MODEL_DIR.is_dir(), reason="needs @vladmandic/face-api: make install-test")


def _tool():
    spec = importlib.util.spec_from_file_location("faceapi_soft_labels", REPO / "tools" / "faceapi_soft_labels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def converted(tmp_path_factory, fer2013):
    pytest.importorskip("torch", reason="training extra (torch) not installed")
    tool = _tool()
    out = tmp_path_factory.mktemp("faceapi") / "faceapi_expression.onnx"
    assert tool.convert(MODEL_DIR, out, fer2013.images[:32]) <= 1e-4
    return tool, out


def test_the_converted_peer_reads_posed_expressions(converted, dev_photos):
    _, model = converted
    report = evaluate_photos(dev_photos / "ckplus48", model, classifier_only=True)
    assert report.recall["happy"] > 0.95 and report.recall["surprise"] > 0.8
    assert report.macro_recall > 0.75


def test_soft_labels_are_its_probabilities_row_by_row(converted, fer2013, tmp_path):
    from emorec.classifier import EmotionClassifier
    from emorec.training.data import Fer2013, load_soft_labels

    tool, model = converted
    subset = Fer2013(fer2013.images[:600], fer2013.labels[:600], fer2013.usage[:600])
    tool.write_soft_labels(model, subset, tmp_path / "soft.npy")
    soft = load_soft_labels(tmp_path / "soft.npy", 600)
    np.testing.assert_allclose(soft, EmotionClassifier(model).predict(subset.images), atol=1e-6)
    # FER2013's labels and this model agree on well over chance (1/7) of the faces.
    assert (soft.argmax(1) == subset.labels).mean() > 0.45


def test_a_folder_without_the_model_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no face_expression_model.bin"):
        _tool().convert(tmp_path, tmp_path / "out.onnx", np.zeros((2, 48, 48), np.uint8))
