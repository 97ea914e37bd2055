"""Drawing results on BGR frames: a box per face, a label with emotion and confidence, probability bars.

Small annotators, each with its style set in ``__init__`` and an ``annotate(image, faces)`` that draws
in place and returns the image; :func:`annotate` composes them. Sizes scale with the frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from emorec.labels import EMOTION_COLORS_BGR, EMOTIONS
from emorec.types import Face

FONT = cv2.FONT_HERSHEY_SIMPLEX


def _scale(image: np.ndarray) -> float:
    """Drawing scale: 1.0 for a 640-pixel frame, never so small that text becomes unreadable."""
    return max(0.5, max(image.shape[:2]) / 640)


class BoxAnnotator:
    """A rectangle in the colour of the face's emotion."""

    def __init__(self, thickness: int = 2):
        self.thickness = thickness

    def annotate(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        width = max(1, round(self.thickness * _scale(image)))
        for face in faces:
            x1, y1, x2, y2 = face.box
            cv2.rectangle(image, (x1, y1), (x2, y2), EMOTION_COLORS_BGR[face.emotion], width, cv2.LINE_AA)
        return image


class LabelAnnotator:
    """'happy 93%' (and '#id' for tracked faces) on a filled tag above the box, or inside it at the top edge."""

    def __init__(self, font_scale: float = 0.6, show_track_id: bool = True):
        self.font_scale = font_scale
        self.show_track_id = show_track_id

    def annotate(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        scale = self.font_scale * _scale(image)
        thickness = max(1, round(scale * 2))
        for face in faces:
            text = f"{face.emotion} {face.confidence:.0%}"
            if self.show_track_id and face.track_id is not None:
                text = f"#{face.track_id} {text}"
            (tw, th), baseline = cv2.getTextSize(text, FONT, scale, thickness)
            x1, y1 = face.box[0], face.box[1]
            top = y1 - th - baseline - 4 if y1 - th - baseline - 4 >= 0 else y1
            cv2.rectangle(
                image, (x1, top), (x1 + tw + 4, top + th + baseline + 4), EMOTION_COLORS_BGR[face.emotion], cv2.FILLED
            )
            cv2.putText(image, text, (x1 + 2, top + th + 2), FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA)
        return image


class ProbabilityBarsAnnotator:
    """One bar per emotion under the box, as long as its probability, so runners-up are visible too."""

    def __init__(self, bar_height: int = 10, font_scale: float = 0.35):
        self.bar_height = bar_height
        self.font_scale = font_scale

    def annotate(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        scale = _scale(image)
        height = max(6, round(self.bar_height * scale))
        font = self.font_scale * scale
        for face in faces:
            x1, _, x2, y2 = face.box
            width = max(x2 - x1, round(80 * scale))
            for row, (name, p) in enumerate(zip(EMOTIONS, face.scores, strict=True)):
                top = y2 + 4 + row * (height + 2)
                if top + height > image.shape[0]:
                    break
                cv2.rectangle(image, (x1, top), (x1 + width, top + height), (40, 40, 40), cv2.FILLED)
                cv2.rectangle(
                    image, (x1, top), (x1 + round(width * float(p)), top + height), EMOTION_COLORS_BGR[name], cv2.FILLED
                )
                cv2.putText(image, name, (x1 + 2, top + height - 2), FONT, font, (255, 255, 255), 1, cv2.LINE_AA)
        return image


def annotate(image: np.ndarray, faces: list[Face], bars: bool = False) -> np.ndarray:
    """Draw boxes and labels (and probability bars) on a BGR image in place; returns it."""
    annotators = [BoxAnnotator(), LabelAnnotator()] + ([ProbabilityBarsAnnotator()] if bars else [])
    for annotator in annotators:
        image = annotator.annotate(image, faces)
    return image
