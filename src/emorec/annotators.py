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
    return _scale_of(image.shape[1], image.shape[0])


def _scale_of(width: int, height: int) -> float:
    return max(0.5, max(width, height) / 640)


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

    def tag(self, face: Face, frame_size: tuple[int, int]) -> tuple[str, tuple[int, int, int, int]]:
        """A face's text and where its tag is drawn in a frame of (width, height): (x1, y1, x2, y2), inclusive
        like a face box."""
        scale = self.font_scale * _scale_of(*frame_size)
        text = f"{face.emotion} {face.confidence:.0%}"
        if self.show_track_id and face.track_id is not None:
            text = f"#{face.track_id} {text}"
        (tw, th), baseline = cv2.getTextSize(text, FONT, scale, _text_thickness(scale))
        x1, y1 = _inside(face.box[0], tw + 4, frame_size[0]), face.box[1]
        top = y1 - th - baseline - 4 if y1 - th - baseline - 4 >= 0 else y1
        return text, (x1, top, x1 + tw + 4, top + th + baseline + 4)

    def annotate(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        scale = self.font_scale * _scale(image)
        thickness = _text_thickness(scale)
        for face in faces:
            text, (x1, top, x2, bottom) = self.tag(face, (image.shape[1], image.shape[0]))
            color = EMOTION_COLORS_BGR[face.emotion]
            cv2.rectangle(image, (x1, top), (x2, bottom), color, cv2.FILLED)
            baseline = cv2.getTextSize(text, FONT, scale, thickness)[1]
            cv2.putText(image, text, (x1 + 2, bottom - baseline - 2), FONT, scale, ink_for(color), thickness,
                        cv2.LINE_AA)
        return image


def _text_thickness(font_scale: float) -> int:
    return max(1, round(font_scale * 2))


Rect = tuple[int, int, int, int]  # (x1, y1, x2, y2) pixels, x2 and y2 exclusive


def _overlap(a: Rect, b: tuple[float, float, float, float]) -> float:
    """Area a rectangle shares with a face box or a tag (whose x2, y2 are inside it, as they are drawn)."""
    width = min(a[2], b[2] + 1) - max(a[0], b[0])
    height = min(a[3], b[3] + 1) - max(a[1], b[1])
    return float(max(0, width) * max(0, height))


def _inclusive(rect: Rect) -> Rect:
    return rect[0], rect[1], rect[2] - 1, rect[3] - 1


class ProbabilityBarsAnnotator:
    """One bar per emotion beside each face, as long as its probability, so runners-up are visible too.

    Each face's block of bars goes on the first side of its box (below, above past its label, right, left)
    where it lies whole inside the frame and covers no other face's box nor bars already drawn (faces in
    the order given: the engine's, largest first); where no side is clear, on the side that covers the
    least, the boxes counting before the bars. Under the box, moved sideways at the frame's edges and risen
    into the box's lower part where there is no room, is the place that always fits. Each name is written
    in the ink that reads on what lies under it: the bar's colour where the bar has reached, the dark track
    beyond.
    """

    TRACK = (40, 40, 40)

    def __init__(self, bar_height: int = 10, font_scale: float = 0.35, gap: int = 4):
        self.bar_height = bar_height
        self.font_scale = font_scale
        self.gap = gap

    def place(self, faces: list[Face], frame_size: tuple[int, int]) -> list[Rect]:
        """Where each face's bars go in a frame of (width, height): one rectangle per face, in order."""
        frame_w, frame_h = frame_size
        scale = _scale_of(frame_w, frame_h)
        height = self._block_height(scale)
        gap = round(self.gap * scale)
        tags = [LabelAnnotator().tag(face, frame_size)[1] for face in faces]
        placed: list[Rect] = []
        for face, tag in zip(faces, tags, strict=True):
            x1, y1, x2, y2 = face.box
            label_h = max(0, y1 - tag[1])  # the tag above the box, where it found room there
            width = min(max(x2 - x1, round(80 * scale)), frame_w)
            left = _inside(x1, width, frame_w)
            beside = _inside(y1, height, frame_h)
            candidates = [
                (left, y2 + gap),  # below
                (left, y1 - label_h - gap - height),  # above, clear of the label
                (x2 + gap, beside),  # right
                (x1 - gap - width, beside),  # left
            ]
            rects = [(x, y, x + width, y + height) for x, y in candidates
                     if 0 <= x and x + width <= frame_w and 0 <= y and y + height <= frame_h]
            first = _inside(y2 + gap, height, frame_h)
            rects.append((left, first, left + width, first + height))  # always fits
            others = [other.box for other in faces if other is not face]
            drawn = [*tags, *(_inclusive(bars) for bars in placed)]
            placed.append(min(rects, key=lambda r: (sum(_overlap(r, box) for box in others), _overlap(r, face.box),
                                                    sum(_overlap(r, other) for other in drawn))))
        return placed

    def _block_height(self, scale: float) -> int:
        return len(EMOTIONS) * (self._bar_height(scale) + 2) - 2

    def _bar_height(self, scale: float) -> int:
        return max(6, round(self.bar_height * scale))

    def annotate(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        scale = _scale(image)
        height = self._bar_height(scale)
        font = self.font_scale * scale
        frame_h, frame_w = image.shape[:2]
        for face, (left, first, right, _) in zip(faces, self.place(faces, (frame_w, frame_h)), strict=True):
            width = right - left
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
