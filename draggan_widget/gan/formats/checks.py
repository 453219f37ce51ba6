"""What every weights format may refuse a file for: the error type and the size limits.

A weights file states the architecture it holds (constructor kwargs in a pickle's or a
safetensors header's metadata, or tensor shapes); the generator is built from that before
its tensors are compared with it. A hostile or damaged file could ask for a network of any
size (``img_resolution`` = 2**20 divides by zero in the channel formula, ``channel_max`` =
10**6 asks for terabytes), so the kwargs are bounded here first. The bounds are far above any
published StyleGAN (the largest are 1024 px, 1024 channels, 512-d latents).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["WeightsFileError", "check_generator_kwargs"]

# name -> (lowest, highest) accepted value of a constructor kwarg, where it is given.
LIMITS: dict[str, tuple[int, int]] = {
    "z_dim": (0, 4096),
    "c_dim": (0, 100_000),
    "w_dim": (1, 4096),
    "img_resolution": (4, 8192),
    "img_channels": (1, 4),
    "num_layers": (1, 64),  # mapping
    "layer_features": (1, 8192),
    "embed_features": (1, 8192),
    "channel_base": (1, 1 << 20),
    "channel_max": (1, 4096),
    "num_fp16_res": (0, 16),
}


class WeightsFileError(ValueError):
    """A weights file cannot be used: damaged, truncated, of no accepted format, or asking for
    something refused. The message names the file and says what to do.

    A ValueError, so callers that catch ValueError for "this file is unusable" catch it too.
    """


def _check_value(name: str, value: Any) -> None:
    low, high = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WeightsFileError(
            f"the file asks for a generator with {name}={value!r}; this package accepts an "
            f"integer from {low} to {high}: the file is damaged or not a StyleGAN generator"
        )


def check_generator_kwargs(kwargs: Any) -> None:
    """Refuse constructor kwargs of implausible type or size, before anything is allocated.

    Accepts our layout (core kwargs flat, ``mapping_kwargs`` and ``synthesis_kwargs`` nested)
    and the stylegan3 repo's (synthesis options flat); options not in `LIMITS` are left to the
    generator's own checks.

    Raises:
        WeightsFileError: a kwarg outside its bounds, or kwargs that are not a mapping.
    """
    if not isinstance(kwargs, Mapping):
        raise WeightsFileError(f"the generator's kwargs are a {type(kwargs).__name__}, not a dict")
    groups = [kwargs]
    for nested in ("mapping_kwargs", "synthesis_kwargs"):
        sub = kwargs.get(nested)
        if sub is not None and not isinstance(sub, Mapping):
            raise WeightsFileError(
                f"the generator's {nested} is a {type(sub).__name__}, not a dict"
            )
        groups.append(sub or {})
    for group in groups:
        for name in LIMITS.keys() & set(group):
            _check_value(name, group[name])
    res = kwargs.get("img_resolution")
    base = groups[2].get("channel_base", kwargs.get("channel_base"))
    if isinstance(res, int) and isinstance(base, int) and base < res:
        raise WeightsFileError(
            f"the file asks for channel_base={base} at img_resolution={res}: that leaves no "
            "channel at the last block (channel_base / resolution < 1); the file is damaged"
        )
