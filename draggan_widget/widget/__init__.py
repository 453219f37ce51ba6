"""The notebook UI: a DragGAN editor widget on ipycanvas and ipywidgets.

Knows nothing of StyleGAN internals: it drives a `DragSession` and draws what it returns.
Names are imported on first use, so that `runner` (threads and frame hand-off, no widgets)
imports where ipywidgets and ipycanvas are not installed, as ``bench/gpu_check.py`` needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BackgroundJob": "runner",
    "DragCanvas": "canvas",
    "DragControls": "controls",
    "DragRunner": "runner",
    "DragWidget": "app",
    "KernelLoop": "runner",
    "LatestFrame": "runner",
    "LiveConfig": "config",
    "enable_colab_widgets": "colab",
    "encode_frame": "canvas",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
