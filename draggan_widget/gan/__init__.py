"""StyleGAN2 generators and their weights; knows nothing of dragging or widgets."""

from __future__ import annotations

from .formats import load_generator, save_generator
from .stylegan2 import Generator

__all__ = ["Generator", "load_generator", "save_generator"]
