"""The notebook UI: a DragGAN editor widget on ipycanvas and ipywidgets.

Knows nothing of StyleGAN internals: it drives a `DragSession` and draws what it returns.
"""

from .app import DragWidget, LiveConfig, enable_colab_widgets
from .canvas import DragCanvas, encode_frame
from .controls import DragControls
from .runner import BackgroundJob, DragRunner, KernelLoop, LatestFrame

__all__ = [
    "BackgroundJob",
    "DragCanvas",
    "DragControls",
    "DragRunner",
    "DragWidget",
    "KernelLoop",
    "LatestFrame",
    "LiveConfig",
    "enable_colab_widgets",
    "encode_frame",
]
