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


def _luminance(bgr: tuple[int, int, int]) -> float:
    """WCAG 2.1 relative luminance of an sRGB colour given in OpenCV's BGR order."""
    linear = [(c / 255) / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in bgr]
    return 0.0722 * linear[0] + 0.7152 * linear[1] + 0.2126 * linear[2]


def ink_for(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with ``background`` (WCAG contrast ratio): black on the
    yellow of happy and the grey of neutral, white on the purple of fear."""
    light = _luminance(background)
    return (0, 0, 0) if (light + 0.05) / 0.05 >= 1.05 / (light + 0.05) else (255, 255, 255)


def _inside(start: int, length: int, limit: int) -> int:
    """Where a span of ``length`` pixels that wants to start at ``start`` starts so as to lie in [0, limit)."""
    return max(0, min(start, limit - length))


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
            x1, y1 = _inside(face.box[0], tw + 4, image.shape[1]), face.box[1]
            top = y1 - th - baseline - 4 if y1 - th - baseline - 4 >= 0 else y1
            color = EMOTION_COLORS_BGR[face.emotion]
            cv2.rectangle(image, (x1, top), (x1 + tw + 4, top + th + baseline + 4), color, cv2.FILLED)
            cv2.putText(image, text, (x1 + 2, top + th + 2), FONT, scale, ink_for(color), thickness, cv2.LINE_AA)
        return image


class ProbabilityBarsAnnotator:
    """One bar per emotion under the box, as long as its probability, so runners-up are visible too.

    The bars stay inside the frame: at its right or left edge they shift sideways, and where there is no
    room under the box they rise into its lower part. Each name is written in the ink that reads on what
    lies under it: the bar's colour where the bar has reached, the dark track beyond.
    """

    TRACK = (40, 40, 40)

    def __init__(self, bar_height: int = 10, font_scale: float = 0.35):
        self.bar_height = bar_height
        self.font_scale = font_scale

    def annotate(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        scale = _scale(image)
        height = max(6, round(self.bar_height * scale))
        font = self.font_scale * scale
        frame_h, frame_w = image.shape[:2]
        for face in faces:
            x1, _, x2, y2 = face.box
            width = min(max(x2 - x1, round(80 * scale)), frame_w)
            left = _inside(x1, width, frame_w)
            first = _inside(y2 + 4, len(EMOTIONS) * (height + 2) - 2, frame_h)
            for row, (name, p) in enumerate(zip(EMOTIONS, face.scores, strict=True)):
                top = first + row * (height + 2)
                if top + height > frame_h:  # a frame too small for all seven
                    break
                fill = round(width * float(p))
                color = EMOTION_COLORS_BGR[name]
                cv2.rectangle(image, (left, top), (left + width - 1, top + height - 1), self.TRACK, cv2.FILLED)
                if fill:
                    cv2.rectangle(image, (left, top), (left + fill - 1, top + height - 1), color, cv2.FILLED)
                for ink, start, stop in ((ink_for(self.TRACK), fill, width), (ink_for(color), 0, fill)):
                    # Drawn into a view of its stretch of the bar only: one name may need two inks.
                    stretch = image[top : top + height, left + start : left + stop]
                    if stretch.size:
                        cv2.putText(stretch, name, (2 - start, height - 2), FONT, font, ink, 1, cv2.LINE_AA)
        return image


def annotate(image: np.ndarray, faces: list[Face], bars: bool = False) -> np.ndarray:
    """Draw boxes and labels (and probability bars) on a BGR image in place; returns it."""
    annotators = [BoxAnnotator(), LabelAnnotator()] + ([ProbabilityBarsAnnotator()] if bars else [])
    for annotator in annotators:
        image = annotator.annotate(image, faces)
    return image
