"""Weights formats behind one `load_generator`: the format is read from the content.

| first bytes                        | format                                               |
|------------------------------------|------------------------------------------------------|
| pickle opcode ``0x80``             | NVIDIA pickle (PyTorch era, or TF era)               |
| ``PK`` zip                         | ``torch.save`` checkpoint (rosinality's ``g_ema``)   |
| pickled ``torch.save`` magic number| legacy (pre-1.6) ``torch.save`` checkpoint, the same |
| 8-byte length + ``{``              | our safetensors                                      |

File extensions are not trusted: a renamed file loads, and a file that is not what its
name says fails with what it was found to be.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
from pathlib import Path
from typing import Optional, Union

import torch

from ..stylegan2 import Generator
from . import native, nvidia_pkl, rosinality, tf_pkl
from .native import save_generator
from .safe_pickle import UnsafePickleError, describe, safe_load

logger = logging.getLogger(__name__)

__all__ = ["UnsafePickleError", "detect_format", "load_file", "load_generator", "save_generator"]

ACCEPTED = (
    "NVIDIA StyleGAN2 pickles (.pkl from stylegan2-ada-pytorch, stylegan3, DragGAN), "
    "NVIDIA TF-era StyleGAN2 pickles, rosinality stylegan2-pytorch checkpoints (.pt with "
    "'g_ema'), and draggan-widget .safetensors"
)
# torch.save's legacy format starts with this number, pickled with protocol 2.
TORCH_LEGACY_HEAD = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
WEIGHT_SUFFIXES = {".pkl", ".pt", ".pth", ".ckpt", ".safetensors"}

Source = Union[str, "os.PathLike[str]"]


def detect_format(path: Union[str, Path]) -> str:
    """``'pickle'``, ``'torch_zip'``, ``'torch_legacy'`` or ``'safetensors'``, from the first bytes.

    Raises:
        FileNotFoundError: no such file.
        ValueError: empty, or not one of the accepted formats.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    with path.open("rb") as f:
        head = f.read(len(TORCH_LEGACY_HEAD))
    if not head:
        raise ValueError(f"{path} is empty; expected {ACCEPTED}")
    if head == TORCH_LEGACY_HEAD:
        return "torch_legacy"
    if head[0] == 0x80:
        return "pickle"
    if head[:4] == b"PK\x03\x04":
        return "torch_zip"
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < 100_000_000:
        return "safetensors"
    raise ValueError(
        f"{path} is not a weights file this package reads (it starts with {head[:8]!r}); "
        f"expected {ACCEPTED}"
    )


def _load_pickle(path: Path) -> Generator:
    with path.open("rb") as f:
        try:
            obj = safe_load(f)
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{path}: {exc}") from None
        except pickle.UnpicklingError as exc:
            raise ValueError(f"{path}: cannot read the pickle (truncated?): {exc}") from exc
    try:
        if nvidia_pkl.is_nvidia_pickle(obj):
            return nvidia_pkl.generator_from_pickle(obj)
        if tf_pkl.is_tf_pickle(obj):
            return tf_pkl.generator_from_tf(obj)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    raise ValueError(
        f"{path} is a pickle but holds no generator: found {describe(obj)}; expected {ACCEPTED}"
    )


def load_file(
    path: Union[str, Path], device: Optional[Union[str, torch.device]] = None
) -> Generator:
    """Load a generator from a local file of any accepted format, in eval mode.

    Args:
        path: the weights file.
        device: where to put the generator; None keeps it on the CPU.

    Returns:
        The generator, in eval mode with ``requires_grad`` off: DragGAN optimises latents,
        never weights, and the widget must not build autograd graphs through them.

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: the file asks to run code; nothing was run (also a ValueError).
        ValueError: the file is of no accepted format, truncated, or holds no generator.
    """
    path = Path(path)
    kind = detect_format(path)
    if kind == "pickle":
        G = _load_pickle(path)
    elif kind == "safetensors":
        G = native.load_native(path)
    else:
        G = rosinality.load_rosinality(path)
    logger.info("loaded %s generator from %s", kind, path)
    G.eval().requires_grad_(False)
    return G if device is None else G.to(device)


def _is_local(source: Source) -> bool:
    """Whether ``source`` names a file rather than a URL, registry name or 'default'."""
    if not isinstance(source, str):
        return True
    if "://" in source:
        return False
    return (
        os.sep in source
        or "/" in source
        or Path(source).suffix.lower() in WEIGHT_SUFFIXES
        or Path(source).is_file()
    )


def load_generator(source: Source, device: Optional[Union[str, torch.device]] = None) -> Generator:
    """Load a StyleGAN2 generator from a file, a URL, a registry name or ``"default"``.

    The format is read from the file's content (see the module docstring); pickles are read
    with a restricted unpickler that runs nothing from the file.

    Args:
        source: a path (``str`` or ``Path``); ``"default"`` for the bundled model; a name
            from `list_models`; or an ``http(s)://`` URL (downloaded once into the cache).
        device: where to put the generator; None keeps it on the CPU.

    Returns:
        A `Generator` in eval mode with ``requires_grad`` off.

    Raises:
        FileNotFoundError: a path that does not exist.
        UnsafePickleError: the file asks to run code; nothing was run (also a ValueError).
        ValueError: an unknown name, or a file of no accepted format, truncated, or without
            a generator.
    """
    if _is_local(source):
        path = Path(source).expanduser()
    else:
        from ..registry import resolve_source  # the registry may download; only when asked

        path = resolve_source(str(source))
    return load_file(path, device)
