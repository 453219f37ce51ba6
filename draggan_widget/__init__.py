"""draggan-widget: DragGAN point-based image editing as a Jupyter notebook widget.

The public API. Names are imported on first use, so ``import draggan_widget`` stays cheap
and loads neither ipywidgets nor a model, and the core (`DragSession`, `DragConfig`,
`load_generator`) works where the notebook stack is not installed: a GPU server, a batch job.
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
    "doctor": "draggan_widget.doctor",
}

# What the widget imports beyond the core; a missing one gets an install hint, not a traceback.
_NOTEBOOK_MODULES = ("ipywidgets", "ipycanvas", "traitlets", "IPython", "ipykernel")

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'draggan_widget' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _NOTEBOOK_MODULES:
            raise
        raise ImportError(
            f"{name} needs the notebook packages, and {exc.name!r} is not installed: "
            "pip install ipywidgets ipycanvas (the rest of draggan_widget works without them)"
        ) from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
