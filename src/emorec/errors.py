"""The project's error types, all under one :class:`EmorecError` base.

Each also keeps the built-in base it had before (``InputError`` is a ``ValueError``, ``RecordingError`` an
``OSError``...), so callers' ``except ValueError`` goes on working. The command line prints any of them as
one line and exits with status 2. Nothing heavy is imported here.
"""

from __future__ import annotations


class EmorecError(Exception):
    """Base of every error emorec raises on purpose; the message says what is wrong and where."""


class InputError(EmorecError, ValueError):
    """An image, video or array the engine cannot use; the message names it and says why."""


class DatasetError(EmorecError, ValueError):
    """The data set file or folder is missing or malformed; the message says where and how."""


class ConfigError(EmorecError, ValueError):
    """Settings that cannot work together (e.g. resuming a run with other settings than it started with)."""


class CheckpointError(EmorecError, ValueError):
    """A training checkpoint that cannot be used: missing, damaged, not emorec's, or holding code."""


class UnknownModelError(EmorecError, KeyError):
    """A model name the registry does not know; the message suggests close ones."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class ModelFileError(EmorecError, FileNotFoundError, ValueError):
    """A model file that is missing or that ONNX Runtime cannot load; the message names it. It is both a
    ``FileNotFoundError`` and a ``ValueError``, the two built-ins these cases raised before it existed."""


class RunExistsError(EmorecError, FileExistsError):
    """A training run directory that already holds a run."""


class RecordingError(EmorecError, OSError):
    """An output file could not be written; the message names it."""
