"""The arithmetic a drag step runs in: what ``DragConfig.precision`` resolves to on a device.

``"auto"`` picks the fastest low precision the hardware runs natively, because emulated
low precision is slower than float32: bfloat16 on CPUs with AVX512-BF16 or AMX and on GPUs
that support it (Ampere and newer), float16 on older CUDA GPUs (a T4 has fast float16 and
no fast bfloat16), float32 everywhere else (MPS, CPUs without BF16 instructions).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Optional

import torch

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bfloat16 math


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU does bfloat16 arithmetic in hardware (Linux: read from cpuinfo).

    Elsewhere (macOS, Windows) we cannot tell cheaply, so the answer is False and auto
    stays on float32, which is never slower than an emulated bfloat16.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def cuda_has_bf16(device: torch.device) -> bool:
    """True on CUDA GPUs with native bfloat16 (compute capability 8.0 and newer)."""
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def resolve_precision(precision: str, device: torch.device) -> str:
    """The arithmetic ``precision`` means on ``device``: 'float32', 'bfloat16' or 'float16'."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bfloat16" if cuda_has_bf16(device) else "float16"
    if device.type == "cpu" and cpu_has_bf16():
        return "bfloat16"
    return "float32"


def autocast(resolved: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Autocast to the resolved low precision, or nothing at all for float32.

    No autocast object is built in float32: on MPS before torch 2.5 building one raises.
    """
    if resolved == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[resolved])


def loss_scale(resolved: str) -> Optional[float]:
    """A static scale for the loss before backward: float16 gradients of a small L1 loss
    underflow to zero without one; bfloat16 has float32's range and needs none."""
    return 1024.0 if resolved == "float16" else None
