"""What every benchmark shares: the machine it ran on, timing, and the JSON it prints.

The scripts in bench/ import this by its bare name (``from common import emit``): running
``python bench/X.py`` puts bench/ first on ``sys.path``, and the tests load them likewise.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch


def machine(device: Optional[torch.device] = None) -> dict[str, Any]:
    """What a report says of the machine it ran on (and of ``device``, when given)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if device is not None:
        info["device"] = str(device) if device.type != "cuda" else torch.cuda.get_device_name()
    return info


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> float:
    """Median wall milliseconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed
    ones (first calls pay for allocations and lazy imports that later ones do not)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def clean(value: Any, digits: int = 4) -> Any:
    """Round floats and turn NaN into None, so the document is strict JSON."""
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v, digits) for v in value]
    return value


def emit(
    report: dict[str, Any],
    out: Optional[Path],
    table: Optional[Callable[[dict[str, Any]], str]] = None,
) -> None:
    """Print a benchmark's report as strict JSON (also to ``out``), then its markdown table."""
    report = clean(report)
    text = json.dumps(report, indent=2)
    if out is not None:
        out.write_text(text + "\n")
    print(text)
    if table is not None:
        print(table(report))
