"""rosinality's stylegan2-pytorch checkpoints (``.pt`` holding ``g_ema``), in NVIDIA's names.

Checked against both sources (rosinality ``model.py``, NVIDIA ``networks.py`` and
``conv2d_resample.py``), the two generators compute the same function; only names and some
shapes differ:

- Tensors carry extra unit dimensions: conv weights ``[1, O, I, k, k]``, the constant
  ``[1, C, 4, 4]``, noise strengths ``[1]``, toRGB biases ``[1, 3, 1, 1]``, noise buffers
  ``[1, 1, r, r]``. They are reshaped, never transposed.
- The 2x-up convolutions need no flip: both codebases run ``conv_transpose2d`` with the
  weight as stored (NVIDIA passes ``flip_weight=False`` for ``up=2``), then the same
  ``[1, 3, 3, 1]`` blur with gain 4 and padding 1. (TF-era weights are flipped by both.)
- rosinality scales every modulated weight by ``1 / sqrt(fan_in)`` at run time, NVIDIA only
  the toRGB one. Demodulation cancels the scale except inside ``rsqrt(sum + 1e-8)``, where
  the eps becomes ``1e-8 * fan_in`` in NVIDIA's units: a relative difference of about
  ``1e-8 / mean((W s)^2)``, below float32 precision for any live channel. Weights are
  copied unscaled, as NVIDIA's own converter does for TF weights, which carry the same scale.
- The mapping learning-rate multiplier is not stored; rosinality's default 0.01 is used.
- ``latent_avg`` exists only in checkpoints converted from NVIDIA's; training checkpoints
  lack it. Truncation toward zero would then ruin every truncated image, so the mean of
  ``w`` is estimated the way rosinality's ``generate.py`` does (mean of mapped random z).
"""

from __future__ import annotations

import argparse
import logging
import math
import pickle
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor

from .. import ops
from ..stylegan2 import DEFAULT_FILTER, Generator
from .checks import check_generator_kwargs
from .nvidia_pkl import load_state_strict
from .safe_pickle import UnsafePickleError, describe, torch_load_weights_only

logger = logging.getLogger(__name__)

LR_MLP = 0.01  # rosinality's Generator(lr_mlp=0.01); checkpoints do not record it
W_AVG_SAMPLES = 4096  # as rosinality's generate.py --truncation_mean

# How a rosinality tensor's shape relates to ours: (leading, trailing) unit dimensions.
SAME, BATCH, BIAS4D, NOISE = (0, 0), (1, 0), (1, 2), (2, 0)


def _pairs(G: Generator) -> list[tuple[str, str, tuple[int, int]]]:
    """(rosinality key, our key, unit dims) for every tensor that carries weights."""
    pairs = []
    for i in range(G.mapping.num_layers):
        for p in ("weight", "bias"):
            pairs.append((f"style.{i + 1}.{p}", f"mapping.fc{i}.{p}", SAME))
    pairs.append(("input.input", "synthesis.b4.const", BATCH))

    def conv(ros: str, ours: str) -> None:
        pairs.extend(
            [
                (f"{ros}.conv.weight", f"{ours}.weight", BATCH),
                (f"{ros}.conv.modulation.weight", f"{ours}.affine.weight", SAME),
                (f"{ros}.conv.modulation.bias", f"{ours}.affine.bias", SAME),
                (f"{ros}.noise.weight", f"{ours}.noise_strength", BATCH),
                (f"{ros}.activate.bias", f"{ours}.bias", SAME),
            ]
        )

    def torgb(ros: str, ours: str) -> None:
        pairs.extend(
            [
                (f"{ros}.conv.weight", f"{ours}.weight", BATCH),
                (f"{ros}.conv.modulation.weight", f"{ours}.affine.weight", SAME),
                (f"{ros}.conv.modulation.bias", f"{ours}.affine.bias", SAME),
                (f"{ros}.bias", f"{ours}.bias", BIAS4D),
            ]
        )

    conv("conv1", "synthesis.b4.conv1")
    torgb("to_rgb1", "synthesis.b4.torgb")
    noise_layers = ["synthesis.b4.conv1"]
    for i, res in enumerate(G.synthesis.block_resolutions[1:]):
        conv(f"convs.{2 * i}", f"synthesis.b{res}.conv0")
        conv(f"convs.{2 * i + 1}", f"synthesis.b{res}.conv1")
        torgb(f"to_rgbs.{i}", f"synthesis.b{res}.torgb")
        noise_layers += [f"synthesis.b{res}.conv0", f"synthesis.b{res}.conv1"]
    for j, layer in enumerate(noise_layers):
        pairs.append((f"noises.noise_{j}", f"{layer}.noise_const", NOISE))
    return pairs


def _blur_keys(G: Generator) -> list[str]:
    """rosinality's fixed blur-kernel buffers (the 2x-up convs and the skip upsampling)."""
    n = len(G.synthesis.block_resolutions) - 1
    return [f"convs.{2 * i}.conv.blur.kernel" for i in range(n)] + [
        f"to_rgbs.{i}.upsample.kernel" for i in range(n)
    ]


def _count(state: dict[str, Tensor], pattern: str, start: int) -> int:
    n = start
    while pattern.format(n) in state:
        n += 1
    return n - start


def _architecture(state: dict[str, Tensor]) -> dict[str, Any]:
    """Our Generator's constructor kwargs, read off the tensor shapes."""
    required = ("style.1.weight", "input.input", "to_rgb1.conv.weight")
    if any(key not in state for key in required):
        raise ValueError(
            f"not a rosinality generator state: it lacks one of {list(required)}; "
            f"found {describe(state)}"
        )
    n_mlp = _count(state, "style.{}.weight", 1)
    w_dim, z_dim = state["style.1.weight"].shape
    n_up = _count(state, "to_rgbs.{}.conv.weight", 0)
    img_resolution = 4 * 2**n_up
    channels = {4: state["input.input"].shape[1]}
    for i in range(n_up):
        key = f"convs.{2 * i}.conv.weight"
        if key not in state:
            raise ValueError(f"the rosinality state has 'to_rgbs.{i}' but no '{key}'")
        channels[8 * 2**i] = state[key].shape[1]
    channel_max = max(channels.values())
    channel_base = channels[img_resolution] * img_resolution
    if any(min(channel_base // r, channel_max) != c for r, c in channels.items()):
        raise ValueError(
            f"channels per resolution {channels} do not follow min(channel_base / res, "
            "channel_max) as StyleGAN2 and rosinality's channel_multiplier do"
        )
    return {
        "z_dim": int(z_dim),
        "c_dim": 0,
        "w_dim": int(w_dim),
        "img_resolution": img_resolution,
        "img_channels": int(state["to_rgb1.conv.weight"].shape[1]),
        "mapping_kwargs": {"num_layers": n_mlp, "lr_multiplier": LR_MLP},
        "synthesis_kwargs": {"channel_base": channel_base, "channel_max": channel_max},
    }


@torch.no_grad()
def estimate_w_avg(G: Generator, *, samples: int = W_AVG_SAMPLES, seed: int = 0) -> Tensor:
    """Mean of ``G.mapping(z)`` over seeded random z: ``w_avg`` for files that lack one.

    Returns:
        ``[w_dim]``.
    """
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(G.w_dim)
    for start in range(0, samples, 512):
        z = torch.randn(min(512, samples - start), G.z_dim, generator=gen)
        total += G.mapping(z, None)[:, 0].sum(dim=0)
    return total / samples


def from_rosinality_state(
    state: dict[str, Tensor], latent_avg: Optional[Tensor] = None
) -> Generator:
    """Build our Generator from a rosinality ``g_ema`` state dict.

    Args:
        state: the ``g_ema`` state dict of rosinality's ``Generator``.
        latent_avg: ``[w_dim]`` or ``[1, w_dim]`` mean of w; estimated when None.

    Raises:
        ValueError: the state is not a rosinality StyleGAN2 generator we can represent
            (unknown or missing tensors, wrong shapes, a blur kernel other than [1, 3, 3, 1]).
    """
    state = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    config = _architecture(state)
    check_generator_kwargs(config)
    G = Generator(**config)
    own = G.state_dict()
    pairs = _pairs(G)
    blur = ops.setup_filter(DEFAULT_FILTER) * 4
    for key in _blur_keys(G):
        kernel = state.get(key)
        if kernel is not None and (
            kernel.shape != blur.shape or not torch.allclose(kernel.float(), blur)
        ):
            raise ValueError(
                f"'{key}' is not the [1, 3, 3, 1] blur kernel; other kernels are not supported"
            )
    unexpected = sorted(set(state) - {r for r, _, _ in pairs} - set(_blur_keys(G)))
    if unexpected:
        raise ValueError(
            f"the rosinality state has tensors this StyleGAN2 converter does not know: "
            f"{unexpected[:6]}{'...' if len(unexpected) > 6 else ''}"
        )
    tensors = {k: v for k, v in own.items() if k.endswith("resample_filter")}
    for ros, ours, (lead, trail) in pairs:
        want = (1,) * lead + tuple(own[ours].shape) + (1,) * trail
        if ros not in state:
            raise ValueError(f"the rosinality state lacks '{ros}' (needed for {ours})")
        if tuple(state[ros].shape) != want:
            raise ValueError(f"'{ros}' has shape {list(state[ros].shape)}, expected {list(want)}")
        tensors[ours] = state[ros].float().reshape(own[ours].shape)
    tensors["mapping.w_avg"] = own["mapping.w_avg"]
    load_state_strict(G, tensors)
    if latent_avg is None:
        logger.warning(
            "the checkpoint has no 'latent_avg' (a training checkpoint); estimating w_avg "
            "for truncation from %d random z, as rosinality's generate.py does",
            W_AVG_SAMPLES,
        )
        latent_avg = estimate_w_avg(G)
    if latent_avg.numel() != G.w_dim:
        raise ValueError(f"latent_avg has shape {list(latent_avg.shape)}, expected [{G.w_dim}]")
    G.mapping.w_avg.copy_(latent_avg.float().reshape(-1))
    return G


def to_rosinality_state(G: Generator) -> dict[str, Tensor]:
    """The ``g_ema`` state dict rosinality's ``Generator`` would have for ``G``.

    The inverse of `from_rosinality_state`; ``w_avg`` is not part of it (rosinality keeps it
    beside ``g_ema`` as ``latent_avg``).

    Raises:
        ValueError: ``G`` uses a feature rosinality's generator lacks (class labels, z_dim
            != w_dim, conv clamping, another resample filter or mapping learning rate).
    """
    syn, mapping = G.synthesis_kwargs, G.mapping_kwargs
    unsupported = {
        "c_dim": G.c_dim != 0,
        "z_dim != w_dim": G.z_dim != G.w_dim,
        "img_channels": G.img_channels != 3,
        "conv_clamp": syn.get("conv_clamp") is not None,
        "resample_filter": list(syn.get("resample_filter", DEFAULT_FILTER)) != list(DEFAULT_FILTER),
        "lr_multiplier": not math.isclose(mapping.get("lr_multiplier", LR_MLP), LR_MLP),
        "layer_features": mapping.get("layer_features") not in (None, G.w_dim),
    }
    bad = [name for name, is_bad in unsupported.items() if is_bad]
    if bad:
        raise ValueError(f"rosinality's generator cannot represent this one's {bad}")
    own = G.state_dict()
    state = {}
    for ros, ours, (lead, trail) in _pairs(G):
        shape = (1,) * lead + tuple(own[ours].shape) + (1,) * trail
        state[ros] = own[ours].detach().reshape(shape).clone()
    blur = ops.setup_filter(DEFAULT_FILTER) * 4
    for key in _blur_keys(G):
        state[key] = blur.clone()
    return state


def _generator_state(ckpt: Any, path: Path) -> tuple[dict[str, Tensor], Optional[Tensor]]:
    """``g_ema`` and ``latent_avg`` of a checkpoint (or a bare ``g_ema.state_dict()``)."""
    if isinstance(ckpt, dict) and isinstance(ckpt.get("g_ema"), dict):
        avg = ckpt.get("latent_avg")
        return ckpt["g_ema"], avg if isinstance(avg, Tensor) else None
    if isinstance(ckpt, dict) and "style.1.weight" in ckpt:
        return ckpt, None
    raise ValueError(
        f"{path} is a torch checkpoint but holds no rosinality generator ('g_ema'); "
        f"found {describe(ckpt)}"
    )


def load_rosinality(path: Union[str, Path]) -> Generator:
    """Read a rosinality checkpoint with ``torch.load(weights_only=True)`` and convert it.

    Raises:
        UnsafePickleError: the checkpoint asks to call something torch does not allow.
        ValueError: unreadable (truncated, corrupt) or not a rosinality generator.
    """
    path = Path(path)
    try:
        ckpt = torch_load_weights_only(path, extra_globals=(argparse.Namespace,))
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: cannot read the torch checkpoint: {exc}") from exc
    state, latent_avg = _generator_state(ckpt, path)
    try:
        return from_rosinality_state(state, latent_avg)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
