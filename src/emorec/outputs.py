"""Where results go: never over an input, one output per input, and each written whole or not at all.

``emorec predict``, ``video`` and ``batch`` write beside what they read. Each checks its output paths here
before any work, so that a mistyped ``--out`` costs an error message instead of the photos it would have
overwritten, and two inputs with the same file name keep one annotated copy each. Files are written under a
hidden partial name and renamed when complete (:func:`write_atomic`), so a full disk or a killed process
leaves the earlier file or none, never an empty or cut one (a full disk left 0-byte baselines).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from emorec.errors import RecordingError


def refuse_overwriting(
    inputs: Iterable[str | os.PathLike], outputs: Iterable[str | os.PathLike | None], option: str
) -> None:
    """Raise :class:`RecordingError` naming ``option`` and the input if any output is one of the inputs,
    however either is spelled (relative, ``..``, a symlink); None outputs are not written and are skipped."""
    originals = {Path(p).resolve(): Path(p) for p in inputs}
    for output in outputs:
        if output is None:
            continue
        original = originals.get(Path(output).resolve())
        if original is not None:
            raise RecordingError(f"{option} {output} would overwrite the input {original}; write it elsewhere")


def unique_names(names: Sequence[Path]) -> list[Path]:
    """``names`` with duplicates told apart: the first keeps its name, later ones get ``-2``, ``-3``... before
    the suffix (``a/x.jpg``, ``a/x-2.jpg``), skipping names already taken, so no output replaces another."""
    taken = set(names)
    seen: set[Path] = set()
    unique = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen or (candidate != name and candidate in taken):
            n += 1
            candidate = name.with_name(f"{name.stem}-{n}{name.suffix}")
        seen.add(candidate)
        unique.append(candidate)
    return unique


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies anywhere under it (both resolved)."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def partial_path(path: str | os.PathLike) -> Path:
    """The hidden name ``path`` is written under until it is complete; it keeps the suffix, which tells some
    writers the format (``.x.partial.mp4``)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """Have ``write`` fill :func:`partial_path`, then put it in ``path``'s place in one step (``os.replace``).
    If anything fails (a full disk), the partial file is removed and ``path`` is left as it was."""
    partial = partial_path(path)
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
