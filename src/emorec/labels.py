"""The seven FER2013 emotions, in the data set's order (ids 0-6), their display colours, and the size of the
face the classifiers read."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)
# The classifiers read FACE_SIZE x FACE_SIZE grayscale faces, as FER2013 holds them: the one definition of
# the crop size (engine, classifier, data loader, export, photo evaluation).
FACE_SIZE = 48

# BGR colours for OpenCV drawing; chosen to be distinguishable and to read well on video.
EMOTION_COLORS_BGR: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (160, 60, 160),
    "happy": (40, 200, 250),
    "sad": (200, 120, 40),
    "surprise": (40, 160, 250),
    "neutral": (180, 180, 180),
}


def emotion_id(name: str) -> int:
    """Map an emotion name (any case, 'surprised'/'fearful'/'angry' variants) to its FER2013 id."""
    key = name.strip().lower()
    aliases = {"anger": "angry", "fearful": "fear", "surprised": "surprise", "happiness": "happy",
               "sadness": "sad", "disgusted": "disgust"}
    key = aliases.get(key, key)
    if key not in EMOTIONS:
        raise ValueError(f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}")
    return EMOTIONS.index(key)
