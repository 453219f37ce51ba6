"""Our own weights format: safetensors with the generator's constructor kwargs in metadata.

safetensors holds only tensors and a string-to-string header, so reading it can run no code;
the architecture travels as JSON under the ``draggan_widget.config`` key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..stylegan2 import Generator
from .nvidia_pkl import load_state_strict

FORMAT_KEY = "draggan_widget.format"
CONFIG_KEY = "draggan_widget.config"
FORMAT_NAME = "stylegan2-generator/1"


def save_generator(
    G: Generator,
    path: Union[str, Path],
    *,
    dtype: torch.dtype = torch.float32,
    metadata: Optional[dict[str, str]] = None,
) -> Path:
    """Write ``G`` as ``.safetensors`` that `load_generator` reads back.

    Args:
        G: the generator.
        path: destination file.
        dtype: storage dtype for floating tensors (float16 halves the file).
        metadata: extra string fields kept in the header (e.g. a model card summary).

    Returns:
        The path written.
    """
    path = Path(path)
    tensors = {
        k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in G.state_dict().items()
    }
    header = {**(metadata or {}), FORMAT_KEY: FORMAT_NAME, CONFIG_KEY: json.dumps(G.init_kwargs)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=header)
    tmp.replace(path)
    return path


def read_metadata(path: Union[str, Path]) -> dict[str, str]:
    """The header metadata of a safetensors file (no tensors are read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc


def load_native(path: Union[str, Path]) -> Generator:
    """Read a generator written by `save_generator`."""
    meta = read_metadata(path)
    if meta.get(FORMAT_KEY) != FORMAT_NAME or CONFIG_KEY not in meta:
        raise ValueError(
            f"{path} is a safetensors file but not a draggan-widget generator "
            f"(no '{CONFIG_KEY}' in its metadata)"
        )
    try:
        kwargs = json.loads(meta[CONFIG_KEY])
        G = Generator(**kwargs)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path}: the generator config in the metadata is invalid: {exc}") from exc
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k).float() for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ValueError(
            f"{path}: the tensors cannot be read (truncated or corrupt?): {exc}"
        ) from exc
    load_state_strict(G, tensors)
    return G
