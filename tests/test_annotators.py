"""Drawing results: probability bars inside the frame at its edges, and text that reads on its background."""

from __future__ import annotations

import numpy as np
import pytest

from emorec.annotators import ProbabilityBarsAnnotator, annotate, ink_for
from emorec.labels import EMOTION_COLORS_BGR, EMOTIONS
from emorec.types import Face

BAR_WIDTH = 80  # pixels, on a 640-pixel frame: the bars of a face narrower than this


def _face(box, **probs: float) -> Face:
    scores = np.array([probs.get(name, 0.0) for name in EMOTIONS], np.float32)
    scores += (1 - scores.sum()) / len(EMOTIONS)
    return Face(box, scores, track_id=1)


def _bar_columns(image: np.ndarray) -> np.ndarray:
    """Columns where the bars' dark track shows."""
    return np.flatnonzero(np.all(image == ProbabilityBarsAnnotator.TRACK, axis=2).any(axis=0))


@pytest.mark.parametrize(
    "box", [(600, 100, 639, 139), (0, 100, 39, 139), (600, 440, 639, 479), (300, 470, 340, 479)],
    ids=["right edge", "left edge", "bottom-right corner", "bottom edge"],
)
def test_every_bar_stays_whole_inside_the_frame(box):
    image = annotate(np.full((480, 640, 3), 120, np.uint8), [_face(box, happy=0.5)], bars=True)
    for name in EMOTIONS:  # each of the seven bars is drawn
        assert np.all(image == EMOTION_COLORS_BGR[name], axis=2).any(), f"no {name} bar"
    columns = _bar_columns(image)
    # The least probable bar's track runs (nearly) the whole width, inside the frame.
    assert columns.max() - columns.min() + 1 >= BAR_WIDTH - BAR_WIDTH // len(EMOTIONS) - 1
    assert 0 <= columns.min() and columns.max() < 640


def test_names_on_the_yellow_happy_bar_are_dark():
    image = annotate(np.full((480, 640, 3), 120, np.uint8), [_face((200, 100, 300, 200), happy=0.95)], bars=True)
    happy = np.all(image == EMOTION_COLORS_BGR["happy"], axis=2)
    rows = np.flatnonzero(happy[205:].sum(axis=1) > 50) + 205  # the happy bar, under the box
    columns = np.flatnonzero(happy[rows].any(axis=0))
    bar = image[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1].astype(int)
    text = np.any(bar != EMOTION_COLORS_BGR["happy"], axis=2)  # the name's pixels
    assert text.sum() > 20
    assert bar[text].sum(axis=1).max() < sum(EMOTION_COLORS_BGR["happy"]), "text darker than the bar, never white"


def test_ink_is_the_more_contrasting_of_black_and_white():
    assert ink_for(EMOTION_COLORS_BGR["happy"]) == ink_for(EMOTION_COLORS_BGR["neutral"]) == (0, 0, 0)
    assert ink_for(EMOTION_COLORS_BGR["fear"]) == ink_for(ProbabilityBarsAnnotator.TRACK) == (255, 255, 255)


def test_bars_on_a_group_sheet_cover_no_other_face(recognizer, dev_photos):
    """Twelve real portraits (london, every 11th) in a 4x3 sheet at 640x480, as a group photo's faces sit:
    under a top-row face its bars would run into the face below it; placed beside it instead, no face's bars
    touch another face's box, and every bar stays in the frame."""
    import csv

    import cv2

    from emorec.annotators import _overlap

    folder = dev_photos / "london"
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        names = [row["image"] for row in csv.DictReader(f)][::11][:12]
    sheet = np.full((480, 640, 3), 128, np.uint8)
    for i, name in enumerate(names):
        row, column = divmod(i, 4)
        photo = cv2.resize(cv2.imread(str(folder / "images" / name)), (160, 160), interpolation=cv2.INTER_AREA)
        sheet[row * 160 : (row + 1) * 160, column * 160 : (column + 1) * 160] = photo
    faces = recognizer(sheet)
    assert len(faces) >= 10, "the detector finds the sheet's faces"
    bars = ProbabilityBarsAnnotator()
    rects = bars.place(faces, (640, 480))

    def covers_another(rect, face) -> bool:
        return any(_overlap(rect, other.box) > 0 for other in faces if other is not face)

    # Under each box, where bars went before, at least one face's bars would cover a neighbour.
    height = len(EMOTIONS) * 12 - 2
    under = [(f.box[0], min(f.box[3] + 4, 480 - height), f.box[0] + max(f.box[2] - f.box[0], BAR_WIDTH),
              min(f.box[3] + 4, 480 - height) + height) for f in faces]
    assert any(covers_another(rect, face) for face, rect in zip(faces, under, strict=True))
    for face, rect in zip(faces, rects, strict=True):
        assert not covers_another(rect, face), (face.box, rect)
        assert 0 <= rect[0] and rect[2] <= 640 and 0 <= rect[1] and rect[3] <= 480
    # What is drawn is what was placed: the bars change no pixel outside their rectangles.
    drawn = bars.annotate(sheet.copy(), faces)
    inside = np.zeros((480, 640), bool)
    for x1, y1, x2, y2 in rects:
        inside[y1:y2, x1:x2] = True
    changed = np.any(drawn != sheet, axis=2)
    assert changed.any() and not (changed & ~inside).any()
