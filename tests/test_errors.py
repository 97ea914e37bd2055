"""One error story: building a recognizer with bad settings raises an ``EmorecError`` subclass that says what is
wrong (and, for a misspelt model or detector name, what was meant), so every surface can print it as one line."""

from __future__ import annotations

import subprocess
import sys

import cv2
import pytest

import emorec
from emorec.engine import EmotionRecognizer


@pytest.mark.parametrize(("options", "error", "says"), [
    ({"model": "emonet_fats"}, emorec.UnknownModelError, "did you mean 'emonet_fast'?"),
    ({"model": "no/such/model.onnx"}, emorec.ModelFileError, "no/such/model.onnx: no such ONNX model file"),
    ({"detector": "blazefce"}, emorec.ConfigError, "did you mean 'blazeface'?"),
    ({"detector": "yunet"}, emorec.ConfigError, "needs the path of a YuNet ONNX file"),
])
def test_bad_settings_raise_one_error_family_that_names_the_setting(options, error, says):
    with pytest.raises(error) as caught:
        EmotionRecognizer(**options)
    assert isinstance(caught.value, emorec.EmorecError)
    assert says in str(caught.value)


def test_a_file_that_is_not_a_model_is_a_model_file_error(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(emorec.ModelFileError, match="junk.onnx: not a usable ONNX model"):
        EmotionRecognizer(model=junk)


def test_the_cli_says_a_misspelt_model_in_one_line(tmp_path, astronaut_bgr):
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    run = subprocess.run([sys.executable, "-m", "emorec.cli", "predict", str(photo), "--model", "emonet_wid"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "emorec predict: unknown model 'emonet_wid': did you mean 'emonet_wide'? shipped models: emonet_fast, "
        "emonet_wide (or give the path of an ONNX file)"]


def test_calibration_types_are_exported():
    assert issubclass(emorec.BaselineError, emorec.EmorecError)
    assert emorec.Baseline.__module__ == "emorec.calibration"
