"""What bench/quality.py measures of one drag, and the means over a preset's drags.

Success is judged by the image (`quality_locate`: where each handle's start patch is in the
result), by the landmark detector in the result, and as tracked (a diagnostic: the tracker
judges its own drag). The change a drag makes outside its edited region is measured in
pixels and in the detector's features, far from its points and outside a mask in dB;
realism by a Fréchet distance of the detector's embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from quality_locate import colour_shift, far_region, locate, psnr
from torch import Tensor

from draggan_widget.train.faces import LANDMARK_NAMES
from draggan_widget.train.landmarks import LandmarkNet, frechet_distance

if TYPE_CHECKING:
    from quality_tasks import Task

SUCCESS_PX = 2.0  # a drag succeeds when every tracked handle ends this close to its target
OUTLINE = frozenset(  # where the turned head's silhouette crosses fixed heights, and the chin
    i for i, name in enumerate(LANDMARK_NAMES) if name.startswith(("outline.", "chin."))
)
REGION = 0.1  # the edited region: this fraction of the side around each handle -> target path
FEATURE_BLOCKS = 2  # detector blocks before the compared maps: 16 x 16 cells of 4 image px


def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean distance between corresponding points ``[K, 2]``."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1).mean())


def success_off_outline(points: Sequence[int], tracked_px: Sequence[float]) -> Optional[bool]:
    """Whether every tracked handle that is not an `OUTLINE` landmark ends within `SUCCESS_PX`.

    The outline landmarks slide along the edge of the face as a drag turns the head, so they
    mark no piece of the image that a tracker could follow; this success leaves them out.
    None when a task drags outline landmarks only.
    """
    kept = [d for i, d in zip(points, tracked_px) if i not in OUTLINE]
    return bool(max(kept) <= SUCCESS_PX) if kept else None


def confirmed(row: dict[str, Any]) -> Optional[bool]:
    """Whether a drag arrived both as tracked and as the detector finds it; None for a task
    without landmarks."""
    if row["success_detected"] is None:
        return None
    return bool(row["success"] and row["success_detected"])


def image_scores(
    before: np.ndarray,
    after: np.ndarray,
    handles: np.ndarray,
    targets: np.ndarray,
    *,
    protected: Optional[np.ndarray] = None,
) -> dict[str, Any]:
    """The image's own verdict on a drag, with no tracker and no detector.

    ``success_image``: every handle's start patch is found (`quality_locate.FOUND_NCC`) within
    `SUCCESS_PX` of its target. ``far_psnr`` and ``far_colour_shift``: the change over the
    pixels far from every handle and target (`quality_locate.far_region`); a local edit
    leaves them alone. ``protected_psnr``: over ``protected`` (``[H, W]`` bool, outside a
    mask), None without one.

    Args:
        before, after: uint8 ``H x W x 3``, the drag's start and result.
        handles, targets: ``[K, 2]`` (x, y) px.
    """
    found = locate(before, after, handles, targets)
    image_px = np.linalg.norm(found.xy - targets, axis=1)
    far = far_region(before.shape, np.concatenate([handles, targets]))
    return {
        "md_image": float(image_px.mean()),
        "success_image": bool(found.found.all() and image_px.max() <= SUCCESS_PX),
        "image_xy": found.xy.tolist(),
        "image_px": image_px.tolist(),
        "image_peak": found.peak.tolist(),
        "far_psnr": psnr(before, after, far),
        "far_colour_shift": colour_shift(before, after, far),
        "protected_psnr": None if protected is None else psnr(before, after, protected),
    }


def false_arrivals(rows: Sequence[dict[str, Any]]) -> float:
    """Of the handles the tracker puts within `SUCCESS_PX` of their targets, the share whose
    landmark the detector finds farther off: arrivals the tracker reports and the image
    does not show (it followed something else). NaN when no handle arrived as tracked.
    """
    pairs = [(t, d) for r in rows for t, d in zip(r["tracked_px"], r["detected_px"])]
    arrived = [d for t, d in pairs if t <= SUCCESS_PX]
    return float(np.mean([d > SUCCESS_PX for d in arrived])) if arrived else math.nan


def landmark_errors(tasks: Sequence[Task], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per landmark, over the tasks that drag it: mean tracked and detected px to the target.

    Where the two part, the tracker has lost a point that the detector still finds (or the
    reverse).
    """
    found: dict[int, list[tuple[float, float]]] = {}
    for task, row in zip(tasks, rows):
        for i, tr, de in zip(task.points, row["tracked_px"], row["detected_px"]):
            found.setdefault(i, []).append((tr, de))
    return {
        LANDMARK_NAMES[i]: {
            "n": len(pairs),
            "tracked_px": float(np.mean([p[0] for p in pairs])),
            "detected_px": float(np.mean([p[1] for p in pairs])),
        }
        for i, pairs in sorted(found.items())
    }


def edit_region(
    handles: np.ndarray, targets: np.ndarray, *, size: int, radius: float
) -> np.ndarray:
    """``[size, size]`` bool: pixels within ``radius`` of some handle -> target segment.

    That is where a drag is meant to change the image; a change elsewhere is a side effect.
    """
    centres = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="xy"), -1) + 0.5
    p = centres[None].astype(np.float64)  # [1, H, W, 2]
    a = np.asarray(handles, np.float64)[:, None, None]  # [K, 1, 1, 2]
    ab = np.asarray(targets, np.float64)[:, None, None] - a
    t = ((p - a) * ab).sum(-1, keepdims=True) / np.maximum((ab**2).sum(-1, keepdims=True), 1e-12)
    nearest = a + np.clip(t, 0, 1) * ab
    return (np.linalg.norm(p - nearest, axis=-1) <= radius).any(axis=0)


def outside_pixel_change(before: np.ndarray, after: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute difference (0-255 per channel) of two uint8 images outside ``region``.

    NaN when the region covers the whole image.
    """
    outside = ~region
    if not outside.any():
        return math.nan
    diff = np.abs(after.astype(np.float64) - before.astype(np.float64))
    return float(diff[outside].mean())


def feature_maps(net: LandmarkNet, images: np.ndarray) -> Tensor:
    """The detector's ``[N, C, 16, 16]`` maps after `FEATURE_BLOCKS` blocks.

    Local enough to be masked, yet past the edges and colours that pixels already measure.
    """
    net.eval()
    with torch.no_grad():
        return net.body[:FEATURE_BLOCKS](net.prepare(images))


def outside_feature_change(
    net: LandmarkNet, before: np.ndarray, after: np.ndarray, region: np.ndarray
) -> float:
    """Mean absolute change of the detector's feature maps outside ``region``, relative to
    their mean magnitude there (0 = unchanged, 1 = as large as the features themselves).

    Only cells wholly outside the region count. NaN when there is none.
    """
    maps = feature_maps(net, np.stack([before, after]))  # [2, C, h, w]
    outside = torch.from_numpy(~region).float()[None, None]
    share = F.interpolate(outside, size=tuple(maps.shape[-2:]), mode="area")[0, 0]
    cells = share >= 1 - 1e-6
    if not bool(cells.any()):
        return math.nan
    change = (maps[1] - maps[0]).abs().mean(0)[cells].mean()
    scale = maps[0].abs().mean(0)[cells].mean().clamp_min(1e-12)
    return float(change / scale)


def feature_fd(net: LandmarkNet, images: np.ndarray, reference: np.ndarray) -> float:
    """Fréchet distance of the detector's embeddings of ``images`` to ``reference`` ``[M, D]``.

    A realism proxy: with a dozen images it is biased upwards, so compare it only between
    presets (and against the undragged images) on the same task set. NaN below two images.
    """
    if len(images) < 2:
        return math.nan
    return frechet_distance(net.embed_images(images), reference)


def _finite(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    """The finite values of ``key`` over ``rows`` (booleans as 0 / 1): rows of a task the
    field does not apply to (None), or written before it existed, are left out."""
    return _finite_values(r.get(key) for r in rows)


def _finite_values(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _mean_of(values: Iterable[Any]) -> float:
    finite = _finite_values(values)
    return float(np.mean(finite)) if finite else math.nan


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float:
    return _mean_of(r.get(key) for r in rows)


def _median(rows: Sequence[dict[str, Any]], key: str) -> float:
    values = _finite(rows, key)
    return float(np.median(values)) if values else math.nan


def aggregate(rows: Sequence[dict[str, Any]], kinds: Sequence[str], fd: float) -> dict[str, Any]:
    """Means over a preset's tasks; MD also per task kind, as the paper's table splits it.

    PSNR and colour shift are medians (one drag that repaints the face would swamp a mean);
    ``protected_psnr_worst`` is the lowest over masked drags.
    """
    calls = max(sum(r["calls"] for r in rows), 1)
    protected = _finite(rows, "protected_psnr")
    return {
        "md": _mean(rows, "md"),
        "md_by_kind": {k: _mean([r for r in rows if r["kind"] == k], "md") for k in kinds},
        "md_tracked": _mean(rows, "md_tracked"),
        "md_image": _mean(rows, "md_image"),
        "image_success_rate": _mean(rows, "success_image"),
        "success_rate": float(np.mean([r["success"] for r in rows])),
        "detected_success_rate": _mean(rows, "success_detected"),
        "confirmed_success_rate": _mean_of(confirmed(r) for r in rows),
        "false_arrivals": false_arrivals(rows),
        "off_outline_success_rate": _mean(rows, "success_off_outline"),
        "converged_rate": float(np.mean([r["converged"] for r in rows])),
        "steps": float(np.mean([r["steps"] for r in rows])),
        "seconds": float(np.mean([r["seconds"] for r in rows])),
        "ms_per_step": 1000 * sum(r["seconds"] for r in rows) / calls,
        "pixel_change": _mean(rows, "pixel_change"),
        "feature_change": _mean(rows, "feature_change"),
        "far_psnr": _median(rows, "far_psnr"),
        "far_colour_shift": _median(rows, "far_colour_shift"),
        "protected_psnr": _median(rows, "protected_psnr"),
        "protected_psnr_worst": min(protected) if protected else math.nan,
        "fd": fd,
    }


def ratios(ours: dict[str, Any], paper: dict[str, Any]) -> dict[str, float]:
    """``ours / paper`` for every scalar both have (finite, paper's non-zero); not for PSNR
    and colour shift, whose ratio means nothing (a dB figure is already a log ratio)."""
    out = {}
    for key, value in ours.items():
        if key.startswith(("far_", "protected_")):
            continue
        other = paper.get(key)
        numbers = isinstance(value, (int, float)) and isinstance(other, (int, float))
        if numbers and math.isfinite(value) and math.isfinite(other) and other != 0:
            out[key] = value / other
    return out
