"""ONNX Runtime session settings: the classifier and the detectors open their sessions with the settings
chosen by benchmarks/ort_settings.py, every graph optimisation level reads real faces alike, and bad
settings are refused with a message."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from emorec.classifier import EmotionClassifier, shipped_model_path
from emorec.detect import BlazeFaceDetector, create_detector
from emorec.engine import int8_twin
from emorec.labels import FACE_SIZE
from emorec.runtime import SessionSettings, open_session

CLOSE_UPS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "expressions_dev" / "lfw_expressions"


def _assert_chosen(session: ort.InferenceSession, threads: int) -> None:
    options = session.get_session_options()
    assert options.intra_op_num_threads == threads
    assert options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.enable_cpu_mem_arena and options.enable_mem_pattern
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize("threads", [1, 2])
def test_classifier_and_detectors_open_sessions_with_the_chosen_settings(threads):
    _assert_chosen(EmotionClassifier(threads=threads).session, threads)
    merged = create_detector("auto", threads=threads)
    for detector in merged.detectors:
        assert isinstance(detector, BlazeFaceDetector)
        _assert_chosen(detector._session, threads)


def test_every_optimisation_level_reads_real_faces_alike():
    """The "all" level rewrites the int8 graph (fused quantised kernels, NCHWc layout): same answers."""
    names = sorted((CLOSE_UPS / "images").glob("*.jpg"))[::10][:200]
    if not names:
        pytest.skip(f"lfw_expressions not found at {CLOSE_UPS}")
    faces = np.stack(
        [cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
         for p in names]
    )[:, None].astype(np.float32)
    model = int8_twin(shipped_model_path()) or shipped_model_path()
    probs = {}
    for level in ("disabled", "basic", "extended", "all"):
        session = open_session(model, 1, SessionSettings(optimization=level))
        probs[level] = session.run(None, {session.get_inputs()[0].name: faces})[0]
    for level, p in probs.items():
        assert np.abs(p - probs["all"]).max() < 0.02, level
        assert (p.argmax(1) == probs["all"].argmax(1)).mean() >= 0.99, level


def test_bad_settings_are_refused_with_a_message():
    with pytest.raises(ValueError, match="unknown graph optimization level 'fastest': expected one of disabled"):
        SessionSettings(optimization="fastest")
    with pytest.raises(ValueError, match="inter_op_threads must be at least 1, got 0"):
        SessionSettings(inter_op_threads=0)
    with pytest.raises(ValueError, match="threads must be at least 1, got 0"):
        open_session(shipped_model_path(), 0)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        EmotionClassifier(threads=0)
