"""Where did the dragged content go? An image-based arrival check for bench/quality.py.

The tracker that drives a drag also reports where its handles ended, so it cannot be the
judge of whether they arrived: it may follow something else. This check uses only the two
images: the start image's patch around each handle is searched for in the final image by
normalised cross-correlation, near the target. The correlation peak says how sure the match
is, so a patch whose content the drag destroyed reads as "not found", not as a wrong place.

Also here: locality, the change a drag makes far from its points and outside a mask, in dB.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PATCH = 1 / 8  # the compared patch's side, as a fraction of the image's shorter side
MIN_RADIUS = 3  # ...but at least 7 x 7 px: fewer pixels match anything
FOUND_NCC = 0.5  # a peak below this is no match: the content is gone, not moved
SEARCH_MARGIN = 0.05  # the search reaches this fraction of the side beyond the handle
FAR = 0.25  # "far from the points": farther than this fraction of the side from all of them
PSNR_CAP = 100.0  # dB for identical pixels, so the figure stays finite


class Located(NamedTuple):
    """Where each handle's start patch is in the final image."""

    xy: np.ndarray  # [K, 2] located (x, y), px, sub-pixel
    peak: np.ndarray  # [K] normalised cross-correlation at the match, -1..1 (NaN: flat patch)
    found: np.ndarray  # [K] bool: peak >= FOUND_NCC


def patch_radius(shape: tuple[int, ...]) -> int:
    """Half the side of the compared patch for an ``H x W`` image: `PATCH` of the shorter side."""
    return max(MIN_RADIUS, round(PATCH * min(shape[:2]) / 2))


def _parabola_peak(left: float, centre: float, right: float) -> float:
    """Sub-pixel offset (-0.5..0.5) of the maximum of a parabola through three samples."""
    curve = left - 2 * centre + right
    if not math.isfinite(curve) or curve >= 0:
        return 0.0
    return float(np.clip(0.5 * (left - right) / curve, -0.5, 0.5))


def _centred(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Patches ``[..., h, w, 3]`` less their per-channel means, and their norms ``[...]``."""
    a = a - a.mean(axis=(-3, -2), keepdims=True)
    return a, np.sqrt((a**2).sum(axis=(-3, -2, -1)))


def _ncc_map(template: np.ndarray, t_norm: float, region: np.ndarray) -> np.ndarray:
    """Correlation of a centred ``h x w x 3`` template with every ``h x w`` window of
    ``region``: ``[H - h + 1, W - w + 1]``, -1..1."""
    windows = sliding_window_view(region.astype(np.float64), template.shape)[..., 0, :, :, :]
    windows, w_norm = _centred(windows)  # [nv, nu, h, w, 3], [nv, nu]
    return (windows * template).sum(axis=(-3, -2, -1)) / np.maximum(w_norm * t_norm, 1e-12)


def locate_one(
    before: np.ndarray,
    after: np.ndarray,
    handle: tuple[float, float],
    target: tuple[float, float],
    *,
    radius: int,
    reach: float,
) -> tuple[tuple[float, float], float]:
    """Where the patch of ``before`` around ``handle`` lies in ``after``, within ``reach`` px
    of ``target`` (a square window), and the correlation there.

    The patch is clipped to the image; a candidate place must hold all of it, so content
    pushed off the image is not found. Colour, zero mean per channel: a uniform tint does not
    change the score, a changed texture does. The peak is refined by a parabola per axis.

    Returns:
        ``((x, y), peak)``; the handle itself and NaN when the patch is flat (matches
        anything), or -1 when no place near the target can hold the patch.
    """
    height, width = before.shape[:2]
    cx, cy = (min(max(int(math.floor(v)), 0), n - 1) for v, n in zip(handle, (width, height)))
    x0, x1 = max(cx - radius, 0), min(cx + radius + 1, width)
    y0, y1 = max(cy - radius, 0), min(cy + radius + 1, height)
    template, t_norm = _centred(before[y0:y1, x0:x1].astype(np.float64))
    if t_norm < 1e-6:
        return (float(handle[0]), float(handle[1])), math.nan
    # candidate centres (u, v): those whose patch fits the image and lie within reach
    tx, ty = (int(math.floor(v)) for v in target)
    r = int(math.ceil(reach))
    u0, u1 = max(tx - r, cx - x0), min(tx + r, width - (x1 - cx))
    v0, v1 = max(ty - r, cy - y0), min(ty + r, height - (y1 - cy))
    if u1 < u0 or v1 < v0:
        return (float(handle[0]), float(handle[1])), -1.0
    region = after[v0 - (cy - y0) : v1 + (y1 - cy), u0 - (cx - x0) : u1 + (x1 - cx)]
    score = _ncc_map(template, t_norm, region)  # [v1 - v0 + 1, u1 - u0 + 1]
    iy, ix = np.unravel_index(int(np.argmax(score)), score.shape)
    dx = _parabola_peak(*score[iy, ix - 1 : ix + 2]) if 0 < ix < score.shape[1] - 1 else 0.0
    dy = _parabola_peak(*score[iy - 1 : iy + 2, ix]) if 0 < iy < score.shape[0] - 1 else 0.0
    shift = (u0 + ix + dx - cx, v0 + iy + dy - cy)  # how far the content moved, px
    return (handle[0] + shift[0], handle[1] + shift[1]), float(score[iy, ix])


def locate(
    before: np.ndarray, after: np.ndarray, handles: np.ndarray, targets: np.ndarray
) -> Located:
    """Each handle's start patch (`patch_radius`) found in ``after``, near its target.

    The search window is a square around the target that reaches the handle and `SEARCH_MARGIN`
    of the side beyond, so content that did not move, or went the wrong way, is found too.

    Args:
        before, after: uint8 ``H x W x 3`` images, the drag's start and end.
        handles, targets: ``[K, 2]`` (x, y) px.

    Raises:
        ValueError: images of different shapes, or not ``H x W x 3``.
    """
    if before.shape != after.shape or before.ndim != 3 or before.shape[2] != 3:
        raise ValueError(f"need two H x W x 3 images, got {before.shape} and {after.shape}")
    handles, targets = np.asarray(handles, np.float64), np.asarray(targets, np.float64)
    radius = patch_radius(before.shape)
    margin = SEARCH_MARGIN * min(before.shape[:2]) + 1
    xy, peak = np.zeros_like(handles), np.zeros(len(handles))
    for k, (h, t) in enumerate(zip(handles, targets)):
        reach = float(np.abs(t - h).max()) + margin
        xy[k], peak[k] = locate_one(before, after, tuple(h), tuple(t), radius=radius, reach=reach)
    found = np.nan_to_num(peak, nan=-1.0) >= FOUND_NCC
    return Located(xy, peak, found)


def far_region(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    """``[H, W]`` bool: pixels whose centres are farther than `FAR` of the shorter side from
    every point ``[K, 2]`` (x, y): what a drag of those points has no business changing."""
    ys, xs = np.mgrid[: shape[0], : shape[1]] + 0.5
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    dist = np.hypot(xs[None] - pts[:, 0, None, None], ys[None] - pts[:, 1, None, None])
    return (dist > FAR * min(shape[:2])).all(axis=0)


def psnr(before: np.ndarray, after: np.ndarray, where: np.ndarray) -> float:
    """PSNR (dB, peak 255) of two uint8 images over the pixels ``where``; `PSNR_CAP` when they
    are equal there, NaN when ``where`` is empty."""
    if not where.any():
        return math.nan
    diff = after[where].astype(np.float64) - before[where].astype(np.float64)
    mse = float((diff**2).mean())
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * math.log10(255.0**2 / mse))


def colour_shift(before: np.ndarray, after: np.ndarray, where: np.ndarray) -> float:
    """How far the mean colour of the pixels ``where`` moved (Euclidean, RGB, 0-255 units).

    A tint, a new skin tone or hair colour moves it; content only pushed around does not.
    NaN when ``where`` is empty.
    """
    if not where.any():
        return math.nan
    mean_before = before[where].astype(np.float64).mean(axis=0)
    return float(np.linalg.norm(after[where].astype(np.float64).mean(axis=0) - mean_before))
