"""draggan-widget: DragGAN point-based image editing as a Jupyter notebook widget.

The public API. Names are imported on first use, so ``import draggan_widget`` stays cheap
and loads neither ipywidgets nor a model.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Generator": "draggan_widget.gan.stylegan2",
    "load_generator": "draggan_widget.gan.formats",
    "save_generator": "draggan_widget.gan.formats",
    "list_models": "draggan_widget.gan.registry",
    "download_model": "draggan_widget.gan.registry",
    "DragConfig": "draggan_widget.drag",
    "DragSession": "draggan_widget.drag",
    "StepResult": "draggan_widget.drag",
    "DragWidget": "draggan_widget.widget",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'draggan_widget' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
