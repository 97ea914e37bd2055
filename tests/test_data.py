"""FER2013 loading on the real data set, and every malformed-input case with its message."""

from __future__ import annotations

import gzip

import cv2
import numpy as np
import pytest

from emorec.cli import main
from emorec.labels import EMOTIONS
from emorec.training.data import DatasetError, load_fer2013

HEADER = "emotion,pixels,Usage\n"
PIXELS = " ".join(["128"] * 2304)


def test_real_fer2013_split_and_class_counts(fer2013):
    assert fer2013.images.shape == (35887, 48, 48) and fer2013.images.dtype == np.uint8
    assert {s: int((fer2013.usage == s).sum()) for s in ("Training", "PublicTest", "PrivateTest")} == {
        "Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert fer2013.class_counts("Training") == {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215,
                                                "sad": 4830, "surprise": 3171, "neutral": 4965}


def _write(tmp_path, text: str, name: str = "fer.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("body, message", [
    ("", "the file is empty"),
    ("emotion,Usage\n3,Training\n", "line 1: missing column(s) pixels"),
    (HEADER + f"3,{PIXELS},Training\n3,{' '.join(['1'] * 2303)},Training\n", "line 3: pixels has 2303 values"),
    (HEADER + f"9,{PIXELS},Training\n", "line 2: emotion 9 is out of range 0-6"),
    (HEADER + f"happy,{PIXELS},Training\n", "line 2: emotion 'happy' is not an integer"),
    (HEADER + f"3,{PIXELS},Validation\n", "line 2: Usage 'Validation' is not one of"),
    (HEADER + f"3,{PIXELS}\n", "line 2: 2 field(s), expected 3"),
    (HEADER, "has a header but no image rows"),
    (HEADER + f"3,{' '.join(['300'] * 2304)},Training\n", "pixel value outside 0-255"),
    (HEADER + f"3,{' '.join(['x'] * 2304)},Training\n", "space-separated integers"),
])
def test_malformed_csv_names_the_problem(tmp_path, body, message):
    path = _write(tmp_path, body)
    with pytest.raises(DatasetError) as err:
        load_fer2013(path, cache_dir=tmp_path / "cache")
    assert message in str(err.value) and str(path) in str(err.value)


def test_plain_and_gzip_csv_give_the_same_data(tmp_path, fer2013):
    rows = [f"{label},{' '.join(map(str, img.ravel()))},{usage}"
            for img, label, usage in zip(fer2013.images[:20], fer2013.labels[:20], fer2013.usage[:20], strict=True)]
    text = HEADER + "\n".join(rows) + "\n"
    plain = _write(tmp_path, text)
    packed = tmp_path / "fer.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    a, b = load_fer2013(plain, cache_dir=tmp_path / "c"), load_fer2013(packed, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(a.images, fer2013.images[:20])
    np.testing.assert_array_equal(b.images, a.images)
    np.testing.assert_array_equal(b.labels, fer2013.labels[:20])


def test_corrupt_gzip_is_reported(tmp_path):
    path = tmp_path / "fer.csv.gz"
    path.write_bytes(gzip.compress((HEADER + f"3,{PIXELS},Training\n").encode())[:40])
    with pytest.raises(DatasetError, match="not a readable FER2013 CSV"):
        load_fer2013(path, cache_dir=tmp_path / "cache")


def test_image_folder_release(tmp_path, fer2013):
    """train/<Class>/*.jpg and test/<class>/{PublicTest,PrivateTest}_N.jpg, class names in any case."""
    train_x, train_y = fer2013.split("Training")
    for i in range(14):
        label = EMOTIONS[train_y[i]]
        folder = tmp_path / "train" / (label.upper() if i % 2 else label)
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"Training_{i}.png"), train_x[i])
    for i, name in enumerate(["PublicTest_1.png", "PrivateTest_2.png", "PrivateTest_3.png"]):
        folder = tmp_path / "test" / "happy"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), train_x[i])
    data = load_fer2013(tmp_path)
    assert len(data.split("Training")[0]) == 14 and len(data.split("PrivateTest")[0]) == 2
    images, labels = data.split("Training")
    assert sorted(labels.tolist()) == sorted(train_y[:14].tolist())
    loaded = {image.tobytes() for image in images}
    assert loaded == {image.tobytes() for image in train_x[:14]}  # PNG is lossless: the very same pixels


def test_image_folder_errors(tmp_path):
    (tmp_path / "train" / "happy").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images found"):
        load_fer2013(tmp_path)
    (tmp_path / "train" / "happy" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg: not a readable image"):
        load_fer2013(tmp_path)
    (tmp_path / "train" / "happy" / "broken.jpg").unlink()
    (tmp_path / "train" / "joyful").mkdir()
    with pytest.raises(DatasetError, match="unknown emotion 'joyful'"):
        load_fer2013(tmp_path)


def test_cli_reports_bad_data_without_traceback(tmp_path, capsys):
    path = _write(tmp_path, HEADER + f"12,{PIXELS},PrivateTest\n")
    assert main(["evaluate", "--data", str(path), "--split", "PrivateTest"]) == 2
    err = capsys.readouterr().err
    assert "line 2: emotion 12 is out of range" in err and "Traceback" not in err
