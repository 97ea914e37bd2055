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
