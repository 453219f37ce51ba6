"""Weights formats behind one `load_generator`: the format is read from the content.

| first bytes                  | format                                             |
|------------------------------|----------------------------------------------------|
| pickle opcode ``0x80``       | NVIDIA pickle (PyTorch era, or TF era)             |
| ``PK`` zip                   | ``torch.save`` checkpoint (rosinality's ``g_ema``) |
| 8-byte length + ``{``        | our safetensors                                    |
"""

from __future__ import annotations

import logging
import pickle
import struct
from pathlib import Path
from typing import Optional, Union

import torch

from ..stylegan2 import Generator
from . import native, nvidia_pkl
from .native import save_generator
from .safe_pickle import UnsafePickleError, safe_load

logger = logging.getLogger(__name__)

__all__ = ["UnsafePickleError", "detect_format", "load_file", "save_generator"]

ACCEPTED = (
    "NVIDIA StyleGAN2 pickles (.pkl from stylegan2-ada-pytorch, stylegan3, DragGAN), "
    "NVIDIA TF-era StyleGAN2 pickles, rosinality stylegan2-pytorch checkpoints (.pt with "
    "'g_ema'), and draggan-widget .safetensors"
)


def detect_format(path: Union[str, Path]) -> str:
    """``'pickle'``, ``'torch_zip'`` or ``'safetensors'``, from the file's first bytes.

    Raises:
        FileNotFoundError: no such file.
        ValueError: empty, or not one of the accepted formats.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    with path.open("rb") as f:
        head = f.read(16)
    if not head:
        raise ValueError(f"{path} is empty; expected {ACCEPTED}")
    if head[0] == 0x80:
        return "pickle"
    if head[:4] == b"PK\x03\x04":
        return "torch_zip"
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < 100_000_000:
        return "safetensors"
    raise ValueError(f"{path} is not a weights file this package reads; expected {ACCEPTED}")


def _load_pickle(path: Path) -> Generator:
    with path.open("rb") as f:
        try:
            obj = safe_load(f)
        except UnsafePickleError:
            raise
        except pickle.UnpicklingError as exc:
            raise ValueError(f"{path}: cannot read the pickle: {exc}") from exc
    if nvidia_pkl.is_nvidia_pickle(obj):
        return nvidia_pkl.generator_from_pickle(obj)
    raise ValueError(f"{path} is a pickle but holds no generator; expected {ACCEPTED}")


def load_file(
    path: Union[str, Path], device: Optional[Union[str, torch.device]] = None
) -> Generator:
    """Load a generator from a local file of any accepted format, in eval mode.

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: a pickle asks to run code; nothing was run.
        ValueError: the file is of no accepted format, truncated, or holds no generator.
    """
    path = Path(path)
    kind = detect_format(path)
    if kind == "pickle":
        G = _load_pickle(path)
    elif kind == "safetensors":
        G = native.load_native(path)
    else:
        raise ValueError(
            f"{path}: torch.save checkpoints are not readable yet; expected {ACCEPTED}"
        )
    logger.info("loaded %s generator from %s", kind, path)
    G.eval().requires_grad_(False)
    return G if device is None else G.to(device)
