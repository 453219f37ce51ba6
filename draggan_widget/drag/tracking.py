"""Point tracking: find each handle's feature again after the latent moved. No state."""

from __future__ import annotations

import torch
from torch import Tensor

from .supervision import ImageSize, image_hw, sample_features


def window_offsets(radius: float, *, device: torch.device | None = None) -> Tensor:
    """Integer offsets of the square search window ``|dx|, |dy| <= round(radius)``, ``[S*S, 2]``.

    Row-major (y outer, x inner), so the distances reshape to ``[K, S, S]``.
    """
    r = max(int(round(radius)), 1)
    return _square_grid(torch.arange(-r, r + 1, dtype=torch.float32, device=device))


def _square_grid(ax: Tensor) -> Tensor:
    """Every ``(x, y)`` with both coordinates from ``ax``, row-major (y outer), ``[n*n, 2]``."""
    return torch.stack(torch.meshgrid(ax, ax, indexing="xy"), dim=-1).reshape(-1, 2)


CENTRE_WEIGHT = 4.0  # in a patch match, the handle's own cell counts this many ring cells


def patch_offsets(size: int, cell: float, *, device: torch.device | None = None) -> Tensor:
    """Image-px offsets of a ``size x size`` patch of feature cells around a point, ``[P, 2]``.

    Row-major, so the centre (the point itself) is row ``P // 2``; ``cell`` is the side of one
    feature cell in image pixels.
    """
    ax = (torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2) * cell
    return _square_grid(ax)


def _match_distance(
    feat: Tensor, templates: Tensor, cand: Tensor, img_size: ImageSize, patch: Tensor | None
) -> Tensor:
    """``[K, S]`` distance of each candidate's feature (or patch) to its handle's template.

    A patch compares the candidate's neighbourhood cell by cell and averages, the centre
    weighted `CENTRE_WEIGHT`: on an edge a single feature matches anywhere along the edge,
    while the cells around it also see where the edge bends or ends.
    """
    if patch is None:
        return (sample_features(feat, cand, img_size) - templates[:, None, :]).norm(dim=-1)
    pts = cand[:, :, None, :] + patch[None, None]  # [K, S, P, 2]
    cells = (sample_features(feat, pts, img_size) - templates[:, None]).norm(dim=-1)  # [K, S, P]
    weight = torch.ones(len(patch), device=feat.device)
    weight[len(patch) // 2] = CENTRE_WEIGHT
    return (cells * weight).sum(-1) / weight.sum()


def _parabola_vertex(left: Tensor, mid: Tensor, right: Tensor) -> Tensor:
    """Sub-pixel offset of the minimum of a parabola through three equally spaced samples."""
    curv = left - 2 * mid + right
    delta = 0.5 * (left - right) / curv.clamp_min(1e-12)
    return torch.where(curv > 1e-12, delta, torch.zeros_like(delta)).clamp(-0.5, 0.5)


def track_points(
    feat: Tensor,
    templates: Tensor,
    handles: Tensor,
    *,
    radius: float,
    img_size: ImageSize,
    subpixel: bool = False,
    max_move: float | None = None,
    patch: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Move each handle to the position in its window whose feature best matches its template.

    Args:
        feat: ``[1, C, h, w]`` current features (no gradient needed).
        templates: ``[K, C]`` each handle's reference feature, or ``[K, P, C]`` its patch.
        handles: ``[K, 2]`` current positions ``(x, y)`` in image coordinates.
        radius: half side of the square search window (image px), as the paper's r2.
        img_size: the image's side, or its ``(height, width)``.
        subpixel: refine the best grid position with a quadratic fit of the distances.
        max_move: if set, candidates farther than this from the handle are not considered,
            so a handle cannot jump to a look-alike feature elsewhere in the window.
        patch: ``[P, 2]`` `patch_offsets` to match whole patches (``templates`` ``[K, P, C]``);
            None matches the single feature at each candidate (the paper).

    Returns:
        ``(new_handles [K, 2], match_distance [K])``, positions clamped to the image
        (x to its width, y to its height). Candidates past a border see the border's
        features (`sample_features` pads with them), so a window may overhang the image.
    """
    offsets = window_offsets(radius, device=feat.device)  # [S*S, 2]
    side = int(round(offsets.shape[0] ** 0.5))
    cand = handles[:, None, :] + offsets[None]  # [K, S*S, 2]
    dist = _match_distance(feat, templates, cand, img_size, patch)
    if max_move is not None:
        far = offsets.norm(dim=1) > max_move + 1e-6
        dist = dist.masked_fill(far[None], float("inf"))
    best = dist.argmin(dim=1)  # [K]
    new = cand[torch.arange(len(handles), device=feat.device), best]  # [K, 2]
    best_dist = dist.gather(1, best[:, None])[:, 0]
    if subpixel:
        new = new + _refine(dist.reshape(-1, side, side), best, side)
    height, width = image_hw(img_size)
    upper = torch.tensor([width, height], dtype=new.dtype, device=new.device)
    return torch.minimum(new.clamp_min(0), upper), best_dist


def _refine(dist: Tensor, best: Tensor, side: int) -> Tensor:
    """Quadratic sub-pixel refinement around the argmin in each ``[S, S]`` distance grid."""
    k = torch.arange(dist.shape[0], device=dist.device)
    by, bx = best // side, best % side
    mid = dist[k, by, bx]

    def axis(y0: Tensor, x0: Tensor, y1: Tensor, x1: Tensor) -> Tensor:
        inside = (x0 >= 0) & (y0 >= 0) & (x1 < side) & (y1 < side)
        left = dist[k, y0.clamp(0, side - 1), x0.clamp(0, side - 1)]
        right = dist[k, y1.clamp(0, side - 1), x1.clamp(0, side - 1)]
        ok = inside & torch.isfinite(left) & torch.isfinite(right)
        return torch.where(ok, _parabola_vertex(left, mid, right), torch.zeros_like(mid))

    dx = axis(by, bx - 1, by, bx + 1)  # no refinement along an axis cut by the window edge
    dy = axis(by - 1, bx, by + 1, bx)
    return torch.stack([dx, dy], dim=1)
