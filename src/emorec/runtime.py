"""How emorec opens ONNX Runtime sessions: the one home of the session settings of the classifier and the
detectors, chosen by measurement with ``benchmarks/ort_settings.py`` (figures in docs/speed.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import onnxruntime as ort

from emorec.errors import ModelFileError

OPTIMIZATION_LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True)
class SessionSettings:
    """ONNX Runtime CPU session settings besides the thread count, which callers choose (``threads=``).

    The defaults are the measured choice (interleaved, on a busy 2-core AVX-512 machine; docs/speed.md
    has the table):
    - ``optimization="all"``: the graph rewrites of the top level (fused int8 and convolution kernels, the
      NCHWc layout) make the classifier and both BlazeFace models several times faster than any lower
      level, with the same answers (tests/test_runtime.py).
    - ``arena=True`` and ``memory_pattern=True`` (ORT's own defaults): switching either off saved a few
      MiB of resident memory, a few percent, and was never faster beyond the noise of the machine, so the
      buffers of one run are kept and planned for the next, the common case of a video stream.
    - ``inter_op_threads=1`` (sequential execution): these graphs are single chains of layers, so ORT's
      parallel mode has nothing to overlap and only adds a pool's overhead; it was slower on every model.
    - ``spinning=False`` (ORT spins by default): with two or more threads, spinning pools burned several
      times the CPU per frame, and on a busy machine made batches and detection slower, since one
      session's spinning threads take the cores that the next session or another stream needs.
    """

    optimization: str = "all"
    arena: bool = True
    memory_pattern: bool = True
    inter_op_threads: int = 1
    spinning: bool = False

    def __post_init__(self) -> None:
        if self.optimization not in OPTIMIZATION_LEVELS:
            levels = ", ".join(OPTIMIZATION_LEVELS)
            raise ValueError(f"unknown graph optimization level {self.optimization!r}: expected one of {levels}")
        if self.inter_op_threads < 1:
            raise ValueError(f"inter_op_threads must be at least 1, got {self.inter_op_threads}")

    def options(self, threads: int) -> ort.SessionOptions:
        """The ``SessionOptions`` for ``threads`` intra-op threads (>= 1)."""
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = self.inter_op_threads
        options.graph_optimization_level = OPTIMIZATION_LEVELS[self.optimization]
        options.enable_cpu_mem_arena = self.arena
        options.enable_mem_pattern = self.memory_pattern
        parallel = self.inter_op_threads > 1
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        return options


def open_session(
    path: str | os.PathLike, threads: int, settings: SessionSettings = SessionSettings()
) -> ort.InferenceSession:
    """An ONNX Runtime CPU session for the model at ``path``; ModelFileError if ORT cannot load the file."""
    options = settings.options(threads)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises several private exception types for bad files
        raise ModelFileError(f"{path}: not a usable ONNX model ({exc})") from None
