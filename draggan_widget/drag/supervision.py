"""Motion supervision and the fixed-region loss: pure tensor functions, no state.

Features are sampled where they are needed with ``grid_sample`` instead of upsampling the
whole map to image resolution (the official release does that every step). Sampling at
normalised coordinates with ``align_corners=False`` is exactly the bilinear upsampling the
release uses, so both give the same values at the same image-pixel positions.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

ImageSize = Union[int, tuple[int, int]]
"""A square image's side, or ``(height, width)`` (images need not be square)."""


def image_hw(img_size: ImageSize) -> tuple[int, int]:
    """``(height, width)`` of an `ImageSize`."""
    if isinstance(img_size, (tuple, list, torch.Size)):
        height, width = img_size
        return int(height), int(width)
    return int(img_size), int(img_size)


def to_grid(xy: Tensor, img_size: ImageSize) -> Tensor:
    """Image coordinates ``(x, y)`` -> ``grid_sample`` coordinates in [-1, 1].

    Image coordinates are continuous, as in PIL and canvas mouse events: pixel ``i`` covers
    ``[i, i + 1)`` and its centre is ``i + 0.5``. x is scaled by the width, y by the height.
    """
    height, width = image_hw(img_size)
    if height == width:
        return xy * (2.0 / width) - 1.0
    scale = torch.tensor([2.0 / width, 2.0 / height], dtype=xy.dtype, device=xy.device)
    return xy * scale - 1.0


def sample_features(feat: Tensor, xy: Tensor, img_size: ImageSize) -> Tensor:
    """Bilinear feature values at image-pixel positions.

    Args:
        feat: ``[1, C, h, w]`` feature map covering the whole image.
        xy: ``[..., 2]`` positions ``(x, y)`` in pixels of an ``img_size`` image.
        img_size: the image the positions refer to: its side, or ``(height, width)``.

    Returns:
        ``[..., C]``.
    """
    grid = to_grid(xy, img_size).reshape(1, -1, 1, 2).to(feat.dtype)
    out = F.grid_sample(feat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, :, 0].t().reshape(*xy.shape[:-1], feat.shape[1])  # [..., C]


def disc_offsets(radius: float, *, device: torch.device | None = None) -> Tensor:
    """Integer ``(x, y)`` offsets strictly inside a disc of ``radius`` pixels, ``[M, 2]``."""
    r = math.ceil(radius)
    ax = torch.arange(-r, r + 1, dtype=torch.float32, device=device)
    grid = torch.stack(torch.meshgrid(ax, ax, indexing="xy"), dim=-1).reshape(-1, 2)
    return grid[grid.norm(dim=1) < radius]


def shift_vectors(handles: Tensor, targets: Tensor) -> Tensor:
    """Per-handle supervision shift ``d``: a unit step toward the target.

    Args:
        handles: ``[K, 2]`` current handle positions.
        targets: ``[K, 2]`` target positions.

    Returns:
        ``[K, 2]``.
    """
    delta = targets - handles
    dist = delta.norm(dim=1, keepdim=True)
    return delta / dist.clamp_min(1e-7)


def motion_loss(
    feat: Tensor,
    handles: Tensor,
    shifts: Tensor,
    offsets: Tensor,
    *,
    img_size: ImageSize,
    active: Tensor,
    anchor: Optional[Tensor] = None,
    anchor_weight: float = 0.0,
) -> Tensor:
    """L1 between ``sg(F(q))`` and ``F(q + d)`` for ``q`` in a disc around each active handle.

    The gradient moves the content at ``q`` toward ``q + d``: the handle follows its target.
    All handles are sampled in one ``grid_sample`` call.

    With an ``anchor``, what ``F(q + d)`` is pulled toward is ``sg(F(q))`` blended with the
    disc's features when the drag started. The plain loss is also zero when the features
    around the handle are all alike, so a drag may flatten what it was asked to move (a
    mouth fades instead of opening) and copies its own errors forward step by step; the
    anchor keeps the clicked-on content in the target.

    Args:
        feat: ``[1, C, h, w]`` features with gradients.
        handles: ``[K, 2]`` handle positions (image px).
        shifts: ``[K, 2]`` shift per handle (see `shift_vectors`).
        offsets: ``[M, 2]`` disc offsets (see `disc_offsets`).
        img_size: the image the positions refer to: its side, or ``(height, width)``.
        active: ``[K]`` bool; arrived handles contribute nothing.
        anchor: ``[K, M, C]`` features at the same disc offsets around each handle's
            position when the drag started, in the features of that moment.
        anchor_weight: share of ``anchor`` in the target, in [0, 1]; 0 = the paper's loss.

    Returns:
        Scalar: sum over active handles of the mean absolute difference.
    """
    q = handles[:, None, :] + offsets[None, :, :]  # [K, M, 2]
    both = torch.cat([q, q + shifts[:, None, :]], dim=1)  # [K, 2M, 2]
    sampled = sample_features(feat, both, img_size)  # [K, 2M, C]
    m = offsets.shape[0]
    here, there = sampled[:, :m].detach(), sampled[:, m:]
    if anchor is not None and anchor_weight > 0:
        here = torch.lerp(here, anchor, anchor_weight)
    per_handle = (there - here).abs().mean(dim=(1, 2))  # [K]
    return (per_handle * active.to(per_handle.dtype)).sum()


def rebalance_scale(active: Tensor) -> Tensor:
    """``K / active handles``: what the whole drag loss is scaled by as handles arrive.

    Adam divides each step by a running RMS of past gradients that fades over ~1000 steps.
    As handles arrive, the plain motion sum shrinks, and the steps for the remaining ones
    shrink with it. Scaling the motion term alone would also tip its balance with the mask
    term, and a masked drag would change the rest more; scaling the whole loss keeps that
    balance and only gives the step back its size.
    """
    return len(active) / active.sum().clamp(min=1).to(torch.float32)


def downsample_mask(mask: Tensor, side: ImageSize) -> Tensor:
    """``[H, W]`` editable-region mask (1 = may change) -> ``[1, 1, h, w]`` area average, where
    ``side`` is the feature map's side or its ``(h, w)``."""
    return F.interpolate(mask[None, None].float(), size=image_hw(side), mode="area")


def path_distance(
    starts: Tensor, targets: Tensor, img_size: ImageSize, hw: tuple[int, int]
) -> Tensor:
    """``[h, w]`` image-pixel distance from each cell centre of an ``h x w`` map over the image
    to the nearest handle path (the segment from a handle's start to its target)."""
    height, width = image_hw(img_size)
    h, w = hw
    ys = (torch.arange(h, device=starts.device, dtype=torch.float32) + 0.5) * (height / h)
    xs = (torch.arange(w, device=starts.device, dtype=torch.float32) + 0.5) * (width / w)
    cells = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 1, 2)
    a, ab = starts.float()[None], (targets - starts).float()[None]
    t = (((cells - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-6)).clamp(0, 1)
    nearest = a + t[..., None] * ab
    return (cells - nearest).norm(dim=-1).min(dim=1).values.reshape(h, w)


def held_region(distance: Tensor, near: float, far: float) -> Tensor:
    """``[1, 1, h, w]`` editable weight for an unmasked drag: 1 within ``near`` px of a path,
    falling linearly to 0 at ``far``: the far image is held, the points' surroundings free."""
    free = ((far - distance) / max(far - near, 1e-6)).clamp(0, 1)
    return free[None, None]


def fixed_region_loss(
    feat: Tensor, feat0: Tensor, editable: Tensor, *, beta: float = 0.0
) -> Tensor:
    """Mean ``|F - F0|`` outside the editable region (the paper's mask term, unweighted).

    With ``beta > 0`` the difference costs ``d^2 / (2 beta)`` below ``beta`` (Huber). The
    L1 term pulls every feature back with the same force however little it moved; at the
    paper's weight that force outweighs the motion term, and handles stall short of their
    targets. A quadratic core lets tiny changes through and still resists large ones.

    Args:
        feat: ``[1, C, h, w]`` current features.
        feat0: ``[1, C, h, w]`` features when the drag started.
        editable: ``[1, 1, h, w]`` in [0, 1], 1 = may change.
        beta: width of the quadratic core; 0 = L1 (paper).
    """
    diff = (feat - feat0) * (1.0 - editable)
    if beta <= 0:
        return diff.abs().mean()
    return F.smooth_l1_loss(diff, torch.zeros_like(diff), beta=beta)
