"""Our own weights format: safetensors with the generator's constructor kwargs in metadata.

safetensors holds only tensors and a string-to-string header, so reading it can run no code;
the architecture travels as JSON under the ``draggan_widget.config`` key, and the family
(StyleGAN2, including StyleGAN-Human, or StyleGAN3) in the format name under
``draggan_widget.format``: the two families take different constructor kwargs, so a
StyleGAN3 recorded as a StyleGAN2 could not be rebuilt. Files written before StyleGAN3
support say ``stylegan2-generator/1``, which is still what a StyleGAN2 gets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ...atomic_write import write_via_temp
from ..stylegan2 import Generator
from ..stylegan3 import Generator as StyleGAN3Generator
from .checks import WeightsFileError, check_generator_kwargs
from .nvidia_pkl import load_state_strict

FORMAT_KEY = "draggan_widget.format"
CONFIG_KEY = "draggan_widget.config"
FORMAT_NAME = "stylegan2-generator/1"  # StyleGAN2 and StyleGAN-Human
STYLEGAN3_FORMAT_NAME = "stylegan3-generator/1"
CLASSES: dict[str, type[torch.nn.Module]] = {
    FORMAT_NAME: Generator,
    STYLEGAN3_FORMAT_NAME: StyleGAN3Generator,
}


def _format_name(G: torch.nn.Module) -> str:
    """The format name that records ``G``'s family.

    Raises:
        TypeError: ``G`` is not one of our generators (its kwargs could not rebuild it).
    """
    for name, cls in CLASSES.items():
        if type(G) is cls:
            return name
    raise TypeError(
        f"save_generator saves draggan_widget's StyleGAN2 and StyleGAN3 generators (as "
        f"load_generator returns them), not a {type(G).__module__}.{type(G).__qualname__}; "
        "load the weights with load_generator first"
    )


def save_generator(
    G: Union[Generator, StyleGAN3Generator],
    path: Union[str, Path],
    *,
    dtype: torch.dtype = torch.float32,
    metadata: Optional[dict[str, str]] = None,
) -> Path:
    """Write ``G`` as ``.safetensors`` that `load_generator` reads back.

    Args:
        G: the generator: a StyleGAN2 (square or StyleGAN-Human's portrait) or a StyleGAN3.
        path: destination file.
        dtype: storage dtype for floating tensors (float16 halves the file).
        metadata: extra string fields kept in the header (e.g. a model card summary).

    Returns:
        The path written.

    Raises:
        TypeError: ``G`` is not one of our generator classes.
    """
    format_name = _format_name(G)
    path = Path(path)
    tensors = {
        k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in G.state_dict().items()
    }
    header = {**(metadata or {}), FORMAT_KEY: format_name, CONFIG_KEY: json.dumps(G.init_kwargs)}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written by Python, not by safetensors' save_file, which creates files readable by
    # their owner only (0600); this one gets the usual permissions (the umask's).
    data = save(tensors, metadata=header)
    return write_via_temp(path, lambda tmp: tmp.write_bytes(data))


def read_metadata(path: Union[str, Path]) -> dict[str, str]:
    """The header metadata of a safetensors file (no tensors are read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsFileError(f"{path} is not a readable safetensors file: {exc}") from exc


def load_native(path: Union[str, Path]) -> Union[Generator, StyleGAN3Generator]:
    """Read a generator written by `save_generator`, of the family its header names.

    Raises:
        WeightsFileError: not our format, an invalid or implausibly large config, or tensors
            that are unreadable or do not fit it.
    """
    meta = read_metadata(path)
    cls = CLASSES.get(meta.get(FORMAT_KEY, ""))
    if cls is None or CONFIG_KEY not in meta:
        raise WeightsFileError(
            f"{path} is a safetensors file but not a draggan-widget generator "
            f"this version reads (format {meta.get(FORMAT_KEY)!r}, expected one of "
            f"{sorted(CLASSES)} with a '{CONFIG_KEY}'); a newer draggan-widget may read it"
        )
    try:
        kwargs = json.loads(meta[CONFIG_KEY])
        check_generator_kwargs(kwargs)
        G = cls(**kwargs)
    except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise WeightsFileError(
            f"{path}: the generator config in the metadata is invalid: {exc}"
        ) from exc
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k).float() for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError, RuntimeError, TypeError) as exc:
        raise WeightsFileError(
            f"{path}: the tensors cannot be read (truncated or corrupt?): {exc}"
        ) from exc
    try:
        load_state_strict(G, tensors)
    except ValueError as exc:
        raise WeightsFileError(f"{path}: {exc}") from exc
    return G
