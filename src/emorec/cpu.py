"""The CPU a figure was measured on: its model name and the SIMD flags that change ONNX Runtime's speed and
int8 results (AVX2, AVX-512, VNNI, AMX). Benchmarks and evaluations print this beside their figures."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_vnni", "amx_tile")


def cpu_model_and_flags() -> tuple[str, set[str]]:
    """The CPU's model name and its feature flags, from /proc/cpuinfo (Linux); elsewhere the platform's
    processor string and no flags."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine() or "unknown CPU", set()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields.get("model name", platform.machine() or "unknown CPU"), set(fields.get("flags", "").split())


def cpu_summary() -> str:
    """One line, e.g. ``Intel(R) Xeon(R) Processor, 2 cores; avx2 yes, avx512f yes, avx512_vnni no, amx_tile no``."""
    name, flags = cpu_model_and_flags()
    listed = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in FLAGS_OF_INTEREST)
    return f"{name}, {os.cpu_count()} cores; {listed}"
