"""Weights formats behind one `load_generator`: the format is read from the content.

| first bytes                        | format                                               |
|------------------------------------|------------------------------------------------------|
| 8-byte length that fits, ``{``     | our safetensors (checked first: the length's first   |
|                                    | byte may be ``0x80``, like a pickle's)               |
| pickled ``torch.save`` magic number| legacy (pre-1.6) ``torch.save`` checkpoint           |
| pickle opcode ``0x80``             | NVIDIA pickle (PyTorch era, or TF era)               |
| ``PK`` zip                         | ``torch.save`` checkpoint (rosinality's ``g_ema``)   |

File extensions are not trusted: a renamed file loads, and a file that is not what its
name says fails with what it was found to be. Every failure caused by the file's content is
a `WeightsFileError` (a ValueError) that names the file, whatever part of the reading
stumbled on it: a hostile file gets the same clear refusal as a truncated one.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
from pathlib import Path
from typing import BinaryIO, Optional, Union

import torch
from safetensors import SafetensorError

from ..stylegan2 import Generator
from . import native, nvidia_pkl, rosinality, tf_pkl
from .checks import WeightsFileError, check_generator_kwargs
from .native import save_generator
from .safe_pickle import PersistentStub, UnsafePickleError, describe, safe_load

logger = logging.getLogger(__name__)

__all__ = [
    "UnsafePickleError",
    "WeightsFileError",
    "detect_format",
    "load_file",
    "load_generator",
    "save_generator",
]

ACCEPTED = (
    "NVIDIA StyleGAN2 pickles (.pkl from stylegan2-ada-pytorch, stylegan3, DragGAN), "
    "NVIDIA StyleGAN3 pickles (configs T and R), "
    "NVIDIA TF-era StyleGAN2 pickles, rosinality stylegan2-pytorch checkpoints (.pt with "
    "'g_ema'), and draggan-widget .safetensors"
)
# torch.save's legacy format starts with this number, pickled with protocol 2.
TORCH_LEGACY_HEAD = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
WEIGHT_SUFFIXES = {".pkl", ".pt", ".pth", ".ckpt", ".safetensors"}
SAFETENSORS_MAX_HEADER = 100_000_000  # the limit the safetensors library itself sets
# What reading a hostile or damaged file can raise from inside the pickle machinery, numpy,
# torch or the converters; each becomes a WeightsFileError that names the file.
FILE_CONTENT_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    ZeroDivisionError,
    OverflowError,
    RecursionError,
    MemoryError,
    RuntimeError,
    EOFError,
    struct.error,
    SafetensorError,
    pickle.UnpicklingError,  # from walking what was unpickled (a module inside itself)
)

Source = Union[str, "os.PathLike[str]"]


def _is_safetensors(f: BinaryIO, size: int) -> bool:
    """An 8-byte little-endian header length that fits the file, then ``{``.

    A pickle cannot pass for one: its opcodes in bytes 2-7 make the length far larger than
    any file. A damaged header is then reported by the safetensors reader, which says more.
    """
    head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = struct.unpack("<Q", head[:8])[0]
    return 2 <= n <= min(size - 8, SAFETENSORS_MAX_HEADER)


def detect_format(path: Union[str, Path]) -> str:
    """``'pickle'``, ``'torch_zip'``, ``'torch_legacy'`` or ``'safetensors'``, from the content.

    Raises:
        FileNotFoundError: no such file.
        WeightsFileError: empty, or not one of the accepted formats.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    size = path.stat().st_size
    with path.open("rb") as f:
        if _is_safetensors(f, size):
            return "safetensors"
        f.seek(0)
        head = f.read(len(TORCH_LEGACY_HEAD))
    if not head:
        raise WeightsFileError(f"{path} is empty; expected {ACCEPTED}")
    if head == TORCH_LEGACY_HEAD:
        return "torch_legacy"
    if head[0] == 0x80:
        return "pickle"
    if head[:4] == b"PK\x03\x04":
        return "torch_zip"
    raise WeightsFileError(
        f"{path} is not a weights file this package reads (it starts with {head[:8]!r}); "
        f"expected {ACCEPTED}"
    )


def _check_pickled_kwargs(obj: object) -> None:
    """Bound the kwargs of an NVIDIA pickle's generator before it is built from them."""
    if isinstance(obj, dict):
        for key in ("G_ema", "G"):
            if isinstance(obj.get(key), PersistentStub):
                check_generator_kwargs(obj[key].init_kwargs)
                return


def _load_pickle(path: Path) -> Generator:
    with path.open("rb") as f:
        try:
            obj = safe_load(f)
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{path}: {exc}") from None
        except pickle.UnpicklingError as exc:
            raise WeightsFileError(f"{path}: cannot read the pickle (truncated?): {exc}") from exc
    if nvidia_pkl.is_nvidia_pickle(obj):
        _check_pickled_kwargs(obj)
        return nvidia_pkl.generator_from_pickle(obj)
    if tf_pkl.is_tf_pickle(obj):
        return tf_pkl.generator_from_tf(obj)
    raise WeightsFileError(
        f"{path} is a pickle but holds no generator: found {describe(obj)}; expected {ACCEPTED}"
    )


def _read(path: Path) -> tuple[str, Generator]:
    """The format of ``path`` and the generator in it (any error the content causes)."""
    kind = detect_format(path)
    if kind == "pickle":
        return kind, _load_pickle(path)
    if kind == "safetensors":
        return kind, native.load_native(path)
    return kind, rosinality.load_rosinality(path)


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
        UnsafePickleError: the file asks to run code; nothing was run (a WeightsFileError).
        WeightsFileError: (a ValueError naming the file) the file is of no accepted format,
            truncated, damaged, asks for an implausibly large network, or holds no generator.
    """
    path = Path(path)
    try:
        kind, G = _read(path)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except WeightsFileError as exc:
        if str(path) in str(exc):
            raise
        raise type(exc)(f"{path}: {exc}") from exc
    except FILE_CONTENT_ERRORS as exc:
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        prefix = "" if str(path) in message else f"{path}: "
        raise WeightsFileError(
            f"{prefix}{message or type(exc).__name__}; the file is damaged, truncated or not "
            "a generator this package reads"
        ) from exc
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


def load_generator(
    source: Source,
    device: Optional[Union[str, torch.device]] = None,
    *,
    download: bool = True,
) -> Generator:
    """Load a StyleGAN2 generator from a file, a URL, a registry name or ``"default"``.

    The format is read from the file's content (see the module docstring); pickles are read
    with a restricted unpickler that runs nothing from the file.

    Args:
        source: a path (``str`` or ``Path``); ``"default"`` for the bundled model; a name
            from `list_models`; or an ``http(s)://`` URL (downloaded once into the cache).
        device: where to put the generator; None keeps it on the CPU.
        download: False refuses a URL or registry model that is not in the cache yet, rather
            than fetching it (for sources read from files, e.g. a saved session).

    Returns:
        A `Generator` in eval mode with ``requires_grad`` off.

    Raises:
        FileNotFoundError: a path that does not exist.
        UnsafePickleError: the file asks to run code; nothing was run (a WeightsFileError).
        WeightsFileError: (a ValueError naming the file) a file of no accepted format,
            truncated, damaged, or without a generator.
        ValueError: an unknown name.
        DownloadError: a download failed, or ``download=False`` and one was needed.
    """
    if _is_local(source):
        path = Path(source).expanduser()
    else:
        from ..registry import resolve_source  # the registry may download; only when asked

        path = resolve_source(str(source), download=download)
    return load_file(path, device)
