"""The DragGAN algorithm: configuration, session state and the drag step. No widgets here."""

from .config import DragConfig
from .session import DragSession, StepResult, pick_device

__all__ = ["DragConfig", "DragSession", "StepResult", "pick_device"]
