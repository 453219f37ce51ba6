"""A displacement field on one feature block: how a local drag moves what lies near the points.

W+ has no direction that moves content inside a small painted region while everything
outside stays: measured on random masked drags, a setting that lands more of them changes
the protected region more (bench/README.md). A warp of one block's features (and of the
image drawn so far), zero outside the painted region, is such a direction: the later blocks
redraw the moved features with the same styles, so the moved content is re-rendered at its
new place, and what lies outside the region changes only through those blocks' small
kernels near its edge. Without a mask, the region is what `DragConfig.hold` leaves free.

The field is kept in image pixels, ``[1, 2, h, w]`` (x then y) at the block of side ``h``: the
value shown at ``p`` is the one found at ``p + field(p)``.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

SMOOTHNESS = 0.08
"""Standard deviation of the blur a drag's warp variable passes through, as a fraction of
the image side, so that the region around a handle moves with it instead of stretching.
On 24 masked random drags of the bundled model (seed 101, ``warp=0.25, lr=5e-3``), a blur of
0.03 / 0.05 / 0.08 / 0.10 of the side landed 0.42 / 0.50 / 0.67 / 0.58 of them by the image
check, at 38.0 / 36.6 / 35.5 / 35.3 dB over the protected region."""


State = TypeVar("State")


def gaussian_blur(field: Tensor, sigma: float) -> Tensor:
    """``[N, C, h, w]`` blurred by a Gaussian of ``sigma`` cells, edges replicated."""
    radius = min(math.ceil(3 * sigma), max(field.shape[-2:]) - 1)
    if sigma <= 0 or radius < 1:
        return field
    taps = torch.arange(-radius, radius + 1, dtype=field.dtype, device=field.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = field.shape[1]
    rows = kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    out = F.conv2d(F.pad(field, (radius, radius, 0, 0), mode="replicate"), rows, groups=c)
    cols = kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), cols, groups=c)


def smooth_field(field: Tensor) -> Tensor:
    """A drag's warp variable as it moves the features: blurred by `SMOOTHNESS`."""
    return gaussian_blur(field, SMOOTHNESS * max(field.shape[-2:]))


def resample(x: Tensor, field_px: Tensor, image_hw: tuple[float, float]) -> Tensor:
    """``x`` ``[N, C, h, w]`` warped by ``field_px`` ``[1, 2, h, w]`` (image px, see above)."""
    _, _, h, w = x.shape
    height, width = image_hw
    to_grid = torch.tensor([2.0 / width, 2.0 / height], device=x.device).view(1, 2, 1, 1)
    theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], device=x.device)
    base = F.affine_grid(theta, [1, 1, h, w], align_corners=False)
    grid = base + (field_px.float() * to_grid).permute(0, 2, 3, 1)
    grid = grid.expand(x.shape[0], -1, -1, -1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp_state(state: State, field_px: Tensor, image_hw: tuple[int, int]) -> State:
    """A partial synthesis (`stylegan2.SynthesisState` or StyleGAN3's) with its features warped.

    StyleGAN2 goes on from ``x`` and the skip image ``img``, both warped. StyleGAN3's next
    layer reads ``full``, the layer's output with a margin around the image: the field is
    placed in the margin's frame (zero in the margin) and ``x`` is cropped again from it.
    """
    full = getattr(state, "full", None)
    if full is None:
        return state._replace(  # type: ignore[attr-defined]
            x=resample(state.x, field_px, image_hw),  # type: ignore[attr-defined]
            img=resample(state.img, field_px, image_hw),  # type: ignore[attr-defined]
        )
    rate, size = state.x.shape[-1], full.shape[-1]  # type: ignore[attr-defined]
    margin = (size - rate) // 2
    framed = field_px.new_zeros(1, 2, size, size)
    framed[:, :, margin : margin + rate, margin : margin + rate] = field_px
    scale = size / rate  # the margin frame spans this many image sides
    height, width = image_hw
    full = resample(full, framed, (height * scale, width * scale))
    x = full[:, :, margin : margin + rate, margin : margin + rate]
    return state._replace(full=full, x=x)  # type: ignore[attr-defined]
