"""Drag quality: the DragGAN paper's landmark transfer, paper's algorithm against ours.

    PYTHONPATH=. python bench/quality.py [--tasks 12] [--seed 0] [--max-steps 200]
        [--presets paper ours] [--ablations] [--out quality.json] [--table]
    PYTHONPATH=. python bench/quality.py --merge paper.json ours.json [--table]

A task takes two generated faces, A and B, and drags 1, 5 or all landmarks of A to where B
has them. Generated images have no ground truth, so a `LandmarkNet` trained on the
procedural renderer's ground-truth landmarks finds them, before the drag (handles and
targets) and after it (the distance MD the paper reports). The detector is trained once,
seeded, and cached (``runs/landmarks/`` or ``$DRAGGAN_WIDGET_HOME/landmarks/``); its own error
on held-out renders is in the report, so a reader can judge how far MD can be trusted.

Prints one JSON document: the machine, the settings, the detector, the task set, and per
preset the detected and tracked MD, success rate (as tracked, as detected, both at once,
and leaving out the face outline's landmarks, which slide along the face's edge as a drag
turns it), the share of tracked arrivals the detector refutes, steps and seconds, the
change outside the edited region (pixels and detector features), a Fréchet distance to
rendered faces, each landmark's tracked and detected error, and ours / paper for each.
``--table`` adds the markdown table of bench/README.md.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import Tensor

from draggan_widget.drag import DragConfig, DragSession, pick_device
from draggan_widget.gan.registry import HOME_ENV
from draggan_widget.gan.stylegan2 import Generator
from draggan_widget.train import faces, landmarks
from draggan_widget.train.faces import LANDMARK_NAMES, render_dataset
from draggan_widget.train.landmarks import (
    LandmarkNet,
    frechet_distance,
    load_landmark_net,
    save_landmark_net,
    train_landmark_net,
)

logger = logging.getLogger("bench.quality")

REPO = Path(__file__).resolve().parents[1]
KINDS: tuple[Optional[int], ...] = (1, 5, None)  # points per task, in turn; None = every landmark
SUCCESS_PX = 2.0  # a drag succeeds when every tracked handle ends this close to its target
OUTLINE = frozenset(  # where the turned head's silhouette crosses fixed heights, and the chin
    i for i, name in enumerate(LANDMARK_NAMES) if name.startswith(("outline.", "chin."))
)
REGION = 0.1  # the edited region: this fraction of the side around each handle -> target path
FEATURE_BLOCKS = 2  # detector blocks before the compared maps: 16 x 16 cells of 4 image px
ABLATIONS = (  # ours with one improvement switched off, or one of the options switched on
    "ours:tracking=nearest",
    "ours:max_track_move=None",
    "ours:track_patch=1",
    "ours:settle=1",
    "ours:anchor=0",
    "ours:rebalance=False",
    "ours:slow_down=3",
    "ours:template_momentum=0.2",
    "ours:track_res=64",
)
PRESETS: dict[str, Callable[..., DragConfig]] = {"paper": DragConfig.paper, "ours": DragConfig}


# ----------------------------------------------------------------------------- detector


@dataclass(frozen=True)
class DetectorRecipe:
    """How the landmark detector is trained; the cache file is named after all of it."""

    n_train: int = 12000  # rendered faces to fit
    n_heldout: int = 500  # other renders: the detector's test set and the FD reference
    steps: int = 6000  # 0.23 px held-out error; 3000 faces and 2000 x 8 reached 0.56 px
    batch: int = 16
    seed: int = 0  # the network's initialisation and batch order
    data_seed: int = 1  # dataset seed of the training renders; data_seed + 1 is held out
    size: int = 64

    def cache_name(self) -> str:
        """File name that changes with the recipe, the renderer and the network's code.

        A renderer edit moves the ground-truth landmarks, so an old detector must not be reused.
        """
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode())
        for module in (faces, landmarks):
            digest.update(Path(module.__file__).read_bytes())
        return f"landmark_net-{digest.hexdigest()[:12]}.safetensors"


def default_cache_dir() -> Path:
    """``$DRAGGAN_WIDGET_HOME/landmarks`` when that is set, else ``runs/landmarks`` in the repo."""
    home = os.environ.get(HOME_ENV)
    return (Path(home).expanduser() if home else REPO / "runs") / "landmarks"


def _recipe_of(path: Path) -> str:
    """The cache name recorded in a detector file's metadata ('' when there is none)."""
    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("recipe", "")


def load_or_train_detector(
    recipe: DetectorRecipe, cache_dir: Union[str, Path]
) -> tuple[LandmarkNet, dict[str, Any]]:
    """The cached detector of ``recipe``, trained and written first if there is none.

    Returns:
        The network and a description (path, whether it was trained now, training seconds).
    """
    bundled = REPO / "weights" / "landmarks.safetensors"  # what the canonical edits use
    if bundled.exists() and _recipe_of(bundled) == recipe.cache_name():
        logger.info("landmark detector: %s (bundled, same recipe)", bundled)
        return load_landmark_net(bundled), {"path": str(bundled), "trained_now": False}
    path = Path(cache_dir) / recipe.cache_name()
    if path.exists():
        logger.info("landmark detector: %s", path)
        return load_landmark_net(path), {"path": str(path), "trained_now": False}
    logger.info("training the landmark detector (%d steps); it is cached at %s", recipe.steps, path)
    t0 = time.perf_counter()
    images, marks = render_dataset(recipe.n_train, size=recipe.size, seed=recipe.data_seed)
    net = train_landmark_net(
        images, marks, steps=recipe.steps, batch=recipe.batch, seed=recipe.seed
    )
    seconds = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_landmark_net(net, partial, {"recipe": recipe.cache_name()})
    os.replace(partial, path)  # an interrupted run leaves no half-written detector to reuse
    return net, {"path": str(path), "trained_now": True, "train_s": round(seconds, 1)}


def detector_error(net: LandmarkNet, images: np.ndarray, marks: np.ndarray) -> dict[str, float]:
    """Pixel error of the detector on renders with known landmarks.

    The constant guess (every face's landmarks at the held-out mean) is what a detector that
    sees nothing scores; MD differences smaller than the detector's error are noise.
    """
    err = np.linalg.norm(net.locate(images, images.shape[1]) - marks, axis=-1)
    const = np.linalg.norm(marks.mean(0, keepdims=True) - marks, axis=-1)
    return {
        "mean_px": float(err.mean()),
        "median_px": float(np.median(err)),
        "p90_px": float(np.percentile(err, 90)),
        "constant_guess_px": float(const.mean()),
    }


# -------------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Limits:
    """Which landmark moves make tasks: inside the image and neither trivial nor absurd (px)."""

    min_dist: float  # a handle closer to its target than this is no drag (single points)
    max_dist: float  # a longer jump is a different face, not an edit
    margin: float  # handles and targets keep this far from the border

    @classmethod
    def for_size(
        cls, size: int, *, min_dist: float = 0.04, max_dist: float = 0.2, margin: float = 0.05
    ) -> Limits:
        """Limits given as fractions of the image side; the defaults are 2.6, 12.8, 3.2 px at 64."""
        return cls(min_dist=min_dist * size, max_dist=max_dist * size, margin=margin * size)


@dataclass(frozen=True)
class Task:
    """Drag landmarks ``points`` of image ``seed_a`` to where image ``seed_b`` has them."""

    seed_a: int
    seed_b: int
    kind: str  # "1", "5" or "all"
    points: tuple[int, ...]  # rows of LANDMARK_NAMES
    handles: tuple[tuple[float, float], ...]  # (x, y) px in image A
    targets: tuple[tuple[float, float], ...]  # (x, y) px in image B


def pick_points(
    handles: np.ndarray,
    targets: np.ndarray,
    n_points: Optional[int],
    rng: np.random.Generator,
    *,
    size: int,
    limits: Limits,
) -> Optional[tuple[int, ...]]:
    """The landmarks one task drags, or None when this pair of faces cannot give the task.

    Single points and five points are drawn among landmarks that move a sensible distance.
    An all-landmark task keeps the landmarks that barely move, as the paper's does, but the
    pair must move them all within the limits and by ``min_dist`` on average.

    Args:
        handles: ``[K, 2]`` landmarks of image A (px).
        targets: ``[K, 2]`` the same landmarks in image B.
        n_points: landmarks to drag; None = all.
    """
    dist = np.linalg.norm(targets - handles, axis=1)
    lo, hi = limits.margin, size - limits.margin
    inside = ((handles >= lo) & (handles <= hi) & (targets >= lo) & (targets <= hi)).all(axis=1)
    if n_points is None:
        ok = inside.all() and (dist <= limits.max_dist).all() and dist.mean() >= limits.min_dist
        return tuple(range(len(dist))) if ok else None
    usable = np.flatnonzero(inside & (dist >= limits.min_dist) & (dist <= limits.max_dist))
    if len(usable) < n_points:
        return None
    return tuple(sorted(int(i) for i in rng.choice(usable, n_points, replace=False)))


def make_tasks(
    landmarks_of: Callable[[int], np.ndarray],
    n: int,
    *,
    seed: int,
    size: int,
    limits: Limits,
    kinds: Sequence[Optional[int]] = KINDS,
    tries_per_task: int = 50,
) -> list[Task]:
    """``n`` tasks from pairs of image seeds drawn from ``seed``; the same list every time.

    Pairs that cannot give the next task's kind are skipped, so the kinds alternate exactly.

    Args:
        landmarks_of: image seed -> ``[K, 2]`` landmarks of that image (px).
        kinds: points per task, in turn; None = every landmark.

    Raises:
        RuntimeError: the limits rejected ``tries_per_task * n`` pairs (they are too strict).
    """
    rng = np.random.default_rng(seed)
    tasks: list[Task] = []
    for _ in range(tries_per_task * n):
        if len(tasks) == n:
            return tasks
        a, b = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
        if a == b:
            continue
        kind = kinds[len(tasks) % len(kinds)]
        ha, hb = landmarks_of(a), landmarks_of(b)
        points = pick_points(ha, hb, kind, rng, size=size, limits=limits)
        if points is None:
            continue
        rows = list(points)
        tasks.append(
            Task(
                a,
                b,
                "all" if kind is None else str(kind),
                points,
                tuple((float(x), float(y)) for x, y in ha[rows]),
                tuple((float(x), float(y)) for x, y in hb[rows]),
            )
        )
    if len(tasks) < n:
        raise RuntimeError(
            f"only {len(tasks)} of {n} tasks passed the limits {limits} in {tries_per_task * n} "
            "pairs of faces; loosen the limits, or check the detector: on images it does not "
            "read as faces it finds the mean face every time, and no landmark moves"
        )
    return tasks


# ------------------------------------------------------------------------------ metrics


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


def confirmed(row: dict[str, Any]) -> bool:
    """Whether a drag arrived both as tracked and as the detector finds it."""
    return bool(row["success"] and row["success_detected"])


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


# -------------------------------------------------------------------------------- drags


def parse_preset(spec: str) -> DragConfig:
    """``"paper"``, ``"ours"``, or one of them with changes: ``"ours:slow_down=0,lr=0.001"``.

    Raises:
        ValueError: an unknown base preset or config field, or a bad value.
    """
    base, _, changes = spec.partition(":")
    if base not in PRESETS:
        raise ValueError(f"unknown preset {base!r} in {spec!r}; known: {', '.join(PRESETS)}")
    kwargs: dict[str, Any] = {}
    for item in filter(None, changes.split(",")):
        name, eq, text = item.partition("=")
        if not eq:
            raise ValueError(f"expected field=value in preset {spec!r}, got {item!r}")
        try:
            kwargs[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[name] = text  # a bare word, such as tracking=nearest
    try:
        return PRESETS[base](**{**kwargs, "preset": spec})
    except TypeError as exc:
        raise ValueError(f"preset {spec!r}: {exc}") from exc


def run_task(
    G: Generator,
    task: Task,
    config: DragConfig,
    *,
    latent: Tensor,
    before: np.ndarray,
    detector: LandmarkNet,
    max_steps: int,
    device: torch.device,
    masked: bool = False,
) -> tuple[dict[str, Any], np.ndarray]:
    """Drag one task from image A's latent; measure the result.

    With ``masked`` the drag may change only the edited region (the user's brush), so the
    change outside it measures how well the mask term holds the rest of the image.

    Returns:
        The task's metrics and the dragged image (uint8 ``H x W x 3``).
    """
    size = G.img_resolution
    session = DragSession(G, w=latent, config=config, device=device)
    session.set_points(task.handles, task.targets)
    targets = np.asarray(task.targets)
    region = edit_region(np.asarray(task.handles), targets, size=size, radius=REGION * size)
    if masked:
        session.set_mask(region)
    t0 = time.perf_counter()
    result = session.run(max_steps)
    seconds = time.perf_counter() - t0
    after = session.image()
    found = detector.locate(after[None], size)[0][list(task.points)]
    detected_px = np.linalg.norm(found - targets, axis=1)
    return {
        "md": float(detected_px.mean()),
        "md_tracked": float(np.mean(result.distances)),
        "success": bool(max(result.distances) <= SUCCESS_PX),
        "success_detected": bool(detected_px.max() <= SUCCESS_PX),
        "success_off_outline": success_off_outline(task.points, result.distances),
        "tracked_px": [float(d) for d in result.distances],
        "detected_px": [float(d) for d in detected_px],
        "converged": bool(result.done),
        "steps": result.step - int(result.done),  # the last step of a finished drag only checks
        "seconds": seconds,
        "calls": result.step,
        "pixel_change": outside_pixel_change(before, after, region),
        "feature_change": outside_feature_change(detector, before, after, region),
    }, after


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def aggregate(rows: Sequence[dict[str, Any]], kinds: Sequence[str], fd: float) -> dict[str, Any]:
    """Means over a preset's tasks; MD also per task kind, as the paper's table splits it."""
    calls = max(sum(r["calls"] for r in rows), 1)
    return {
        "md": _nanmean([r["md"] for r in rows]),
        "md_by_kind": {k: _nanmean([r["md"] for r in rows if r["kind"] == k]) for k in kinds},
        "md_tracked": _nanmean([r["md_tracked"] for r in rows]),
        "success_rate": float(np.mean([r["success"] for r in rows])),
        "detected_success_rate": float(np.mean([r["success_detected"] for r in rows])),
        "confirmed_success_rate": float(np.mean([confirmed(r) for r in rows])),
        "false_arrivals": false_arrivals(rows),
        "off_outline_success_rate": _nanmean(
            [float(r["success_off_outline"]) for r in rows if r["success_off_outline"] is not None]
        ),
        "converged_rate": float(np.mean([r["converged"] for r in rows])),
        "steps": float(np.mean([r["steps"] for r in rows])),
        "seconds": float(np.mean([r["seconds"] for r in rows])),
        "ms_per_step": 1000 * sum(r["seconds"] for r in rows) / calls,
        "pixel_change": _nanmean([r["pixel_change"] for r in rows]),
        "feature_change": _nanmean([r["feature_change"] for r in rows]),
        "fd": fd,
    }


def ratios(ours: dict[str, Any], paper: dict[str, Any]) -> dict[str, float]:
    """``ours / paper`` for every scalar both have (finite, paper's non-zero)."""
    out = {}
    for key, value in ours.items():
        other = paper.get(key)
        numbers = isinstance(value, (int, float)) and isinstance(other, (int, float))
        if numbers and math.isfinite(value) and math.isfinite(other) and other != 0:
            out[key] = value / other
    return out


def run_benchmark(
    G: Generator,
    detector: LandmarkNet,
    reference: np.ndarray,
    *,
    presets: Sequence[str],
    n_tasks: int,
    seed: int,
    max_steps: int,
    device: torch.device,
    limits: Optional[Limits] = None,
    masked: bool = False,
) -> dict[str, Any]:
    """Make the task set, drag it with every preset, and measure.

    Args:
        reference: ``[M, D]`` detector embeddings of rendered faces (the FD reference).
        presets: specs for `parse_preset`.
        limits: task limits; default `Limits.for_size` of the model.
        masked: drag with the edited region as the mask (see `run_task`).

    Returns:
        ``{"tasks", "start", "presets", "ours_over_paper"}`` (the last when both ran).
        ``start.landmark_spread_px`` is the mean distance of the detected landmarks of the
        generated images to their mean: far below the renders' (the detector's constant-guess
        error), the detector does not see the model's faces as faces.
    """
    configs = {spec: parse_preset(spec) for spec in presets}  # bad specs fail before any work
    size = G.img_resolution
    limits = limits or Limits.for_size(size)
    latents: dict[int, Tensor] = {}
    images: dict[int, np.ndarray] = {}
    marks: dict[int, np.ndarray] = {}

    def landmarks_of(image_seed: int) -> np.ndarray:
        if image_seed not in marks:
            session = DragSession(G, seed=image_seed, device=device)
            latents[image_seed], images[image_seed] = session.ws, session.image()
            marks[image_seed] = detector.locate(images[image_seed][None], size)[0]
        return marks[image_seed]

    tasks = make_tasks(landmarks_of, n_tasks, seed=seed, size=size, limits=limits)
    kinds = list(dict.fromkeys(t.kind for t in tasks))
    seen = np.stack(list(marks.values()))  # [N, K, 2] every image looked at
    spread = float(np.linalg.norm(seen - seen.mean(0), axis=-1).mean())
    starts = np.stack([images[t.seed_a] for t in tasks])
    md_start = [mean_distance(t.handles, t.targets) for t in tasks]
    report: dict[str, Any] = {
        "tasks": [dataclasses.asdict(t) for t in tasks],
        "start": {
            "landmark_spread_px": spread,
            "md": float(np.mean(md_start)),
            "md_by_kind": {
                k: float(np.mean([d for d, t in zip(md_start, tasks) if t.kind == k]))
                for k in kinds
            },
            "fd": feature_fd(detector, starts, reference),
        },
        "presets": {},
    }
    warm_up = DragSession(G, w=latents[tasks[0].seed_a], device=device)
    warm_up.set_points(tasks[0].handles, tasks[0].targets)
    warm_up.step(render=False)  # torch's one-off imports and allocations, timed in no preset
    for spec, config in configs.items():
        rows, results = [], []
        for i, task in enumerate(tasks):
            row, after = run_task(
                G,
                task,
                config,
                latent=latents[task.seed_a],
                before=images[task.seed_a],
                detector=detector,
                max_steps=max_steps,
                device=device,
                masked=masked,
            )
            rows.append({"task": i, "kind": task.kind, **row})
            results.append(after)
            logger.info(
                "%s task %d/%d (%s points): MD %.2f px (tracked %.2f), %d steps, %.1f s",
                *(spec, i + 1, len(tasks), task.kind, row["md"], row["md_tracked"]),
                *(row["steps"], row["seconds"]),
            )
        fd = feature_fd(detector, np.stack(results), reference)
        report["presets"][spec] = {
            "config": config.asdict(),
            "aggregate": aggregate(rows, kinds, fd),
            "per_landmark": landmark_errors(tasks, rows),
            "per_task": rows,
        }
    if "ours" in configs and "paper" in configs:
        ours, paper = (report["presets"][k]["aggregate"] for k in ("ours", "paper"))
        report["ours_over_paper"] = ratios(ours, paper)
    return report


SAME_IN_A_MERGE = ("model", "max_steps", "masked")  # what the task list does not pin down


def setting_differences(report: dict[str, Any], first: dict[str, Any]) -> list[str]:
    """The settings of `SAME_IN_A_MERGE` in which ``report`` differs from ``first``."""
    mine, theirs = report.get("settings", {}), first.get("settings", {})
    return [k for k in SAME_IN_A_MERGE if mine.get(k) != theirs.get(k)]


def _differences(report: dict[str, Any], first: dict[str, Any]) -> list[str]:
    """What makes ``report`` another experiment than ``first``: its tasks (and so the task
    seed and count), what the detector found before the drags, or a setting."""
    keys = [k for k in ("tasks", "start") if report[k] != first[k]]
    return keys + setting_differences(report, first)


def merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from runs of the same task set with different presets.

    With one preset per process, two processes share two cores; this puts their reports
    into one table. Aggregates are recomputed from the tasks' rows, so a report written
    before a column existed gets that column too. The inputs are not changed.

    Raises:
        ValueError: no reports, reports of different task sets or settings, or a preset
            in more than one report.
    """
    if not reports:
        raise ValueError("nothing to merge: give at least one report")
    first = reports[0]
    kinds = list(first["start"]["md_by_kind"])
    presets: dict[str, Any] = {}
    for i, report in enumerate(reports):
        differences = _differences(report, first)
        if differences:
            raise ValueError(f"report {i} differs from report 0 in {', '.join(differences)}")
        for name, preset in report["presets"].items():
            if name in presets:
                raise ValueError(f"preset {name!r} is in more than one report")
            fd = preset["aggregate"].get("fd")
            agg = aggregate(preset["per_task"], kinds, math.nan if fd is None else fd)
            presets[name] = {**preset, "aggregate": agg}
    merged = {k: v for k, v in first.items() if k != "ours_over_paper"} | {"presets": presets}
    if "ours" in presets and "paper" in presets:
        merged["ours_over_paper"] = ratios(
            presets["ours"]["aggregate"], presets["paper"]["aggregate"]
        )
    return merged


# ------------------------------------------------------------------------------- report


def clean(value: Any, digits: int = 4) -> Any:
    """Round floats and turn NaN into None, so the document is strict JSON."""
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v, digits) for v in value]
    return value


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def markdown_table(report: dict[str, Any]) -> str:
    """The bench/README.md table: a row before the drag, one per preset, then ours / paper."""
    kinds = list(report["start"]["md_by_kind"])
    head = (
        "| preset | MD px | MD " + " / ".join(kinds) + " px | tracked MD px | success | "
        "detected success | confirmed success | success off the outline | false arrivals | "
        "converged | steps | s / drag | "
        "pixel change outside | feature change outside | FD |"
    )
    lines = [head, "|---" + "|---:" * 14 + "|"]
    start = report["start"]
    by_kind = " / ".join(_fmt(start["md_by_kind"][k]) for k in kinds)
    blank = " |" * 11
    md, fd = _fmt(start["md"]), _fmt(start["fd"])
    lines.append(f"| before the drag | {md} | {by_kind} |{blank} {fd} |")
    rows = [(name, p["aggregate"]) for name, p in report["presets"].items()]
    if "ours_over_paper" in report:
        rows.append(("ours / paper", report["ours_over_paper"]))
    for name, agg in rows:
        ratio = name == "ours / paper"
        by_kind = " / ".join(_fmt(agg.get("md_by_kind", {}).get(k)) for k in kinds)
        cells = [
            _fmt(agg.get("md")),
            by_kind if "md_by_kind" in agg else "",
            _fmt(agg.get("md_tracked")),
            _fmt(agg.get("success_rate")),
            _fmt(agg.get("detected_success_rate")),
            _fmt(agg.get("confirmed_success_rate")),
            _fmt(agg.get("off_outline_success_rate")),
            _fmt(agg.get("false_arrivals")),
            _fmt(agg.get("converged_rate")),
            _fmt(agg.get("steps"), 2 if ratio else 1),
            _fmt(agg.get("seconds")),
            _fmt(agg.get("pixel_change")),
            _fmt(agg.get("feature_change"), 3),
            _fmt(agg.get("fd")),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine(device: torch.device) -> dict[str, Any]:
    """What a report says of the machine it ran on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(),
    }


def emit(
    report: dict[str, Any],
    out: Optional[Path],
    table: Optional[Callable[[dict[str, Any]], str]] = None,
) -> None:
    """Print a benchmark's report as strict JSON (also to ``out``), then its markdown table."""
    report = clean(report)
    text = json.dumps(report, indent=2)
    if out is not None:
        out.write_text(text + "\n")
    print(text)
    if table is not None:
        print(table(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="'default', a registry name or a path")
    parser.add_argument("--tasks", type=int, default=12, help="drags per preset")
    parser.add_argument("--seed", type=int, default=0, help="seed of the task list")
    parser.add_argument("--max-steps", type=int, default=200, dest="max_steps")
    parser.add_argument(
        "--mask", action="store_true", help="drag with the edited region as the mask"
    )
    parser.add_argument("--presets", nargs="+", default=["paper", "ours"])
    parser.add_argument("--ablations", action="store_true", help="add " + ", ".join(ABLATIONS))
    parser.add_argument(
        "--min-dist",
        type=float,
        default=0.04,
        dest="min_dist",
        help="shortest single-point drag, fraction of the side",
    )
    parser.add_argument(
        "--max-dist",
        type=float,
        default=0.2,
        dest="max_dist",
        help="longest landmark move, fraction of the side",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=0.05,
        help="handles and targets this far inside, fraction of the side",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", type=Path, default=None, dest="cache_dir")
    parser.add_argument(
        "--detector-steps", type=int, default=DetectorRecipe.steps, dest="det_steps"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--table", action="store_true", help="print the markdown table too")
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="instead of running, merge reports of one task set (one preset each) into one",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.merge:
        try:
            merged = merge_reports([json.loads(path.read_text()) for path in args.merge])
        except (OSError, ValueError) as exc:
            parser.error(f"--merge: {exc}")
        except KeyError as exc:
            parser.error(f"--merge: not a report of this benchmark, it has no {exc}")
        emit(merged, args.out, markdown_table if args.table else None)
        return

    from draggan_widget.gan.formats import load_generator

    presets = list(dict.fromkeys([*args.presets, *(ABLATIONS if args.ablations else ())]))
    for spec in presets:
        parse_preset(spec)  # a typo fails now, not after the detector has trained
    device = pick_device(args.device)
    G = load_generator(args.model).to(device)
    recipe = DetectorRecipe(steps=args.det_steps)
    detector, detector_info = load_or_train_detector(recipe, args.cache_dir or default_cache_dir())
    held_images, held_marks = render_dataset(
        recipe.n_heldout, size=recipe.size, seed=recipe.data_seed + 1
    )
    detector_info |= {"recipe": dataclasses.asdict(recipe), "landmarks": len(LANDMARK_NAMES)}
    detector_info["heldout_error"] = detector_error(detector, held_images, held_marks)
    logger.info("detector error on %d held-out renders: %s", recipe.n_heldout, detector_info)
    limits = Limits.for_size(
        G.img_resolution, min_dist=args.min_dist, max_dist=args.max_dist, margin=args.margin
    )
    t0 = time.perf_counter()
    results = run_benchmark(
        G,
        detector,
        detector.embed_images(held_images),
        presets=presets,
        n_tasks=args.tasks,
        seed=args.seed,
        max_steps=args.max_steps,
        device=device,
        limits=limits,
        masked=args.mask,
    )
    spread, blind = results["start"]["landmark_spread_px"], detector_info["heldout_error"]
    if spread < 0.5 * blind["constant_guess_px"]:
        logger.warning(
            "detected landmarks of generated faces spread %.2f px, renders' %.2f px: the "
            "detector does not read this model's images as faces, MD means little",
            spread,
            blind["constant_guess_px"],
        )
    report = {
        "machine": machine(device),
        "settings": {
            "model": args.model,
            "resolution": G.img_resolution,
            "tasks": args.tasks,
            "seed": args.seed,
            "max_steps": args.max_steps,
            "masked": args.mask,
            "limits_px": dataclasses.asdict(limits),
            "success_px": SUCCESS_PX,
            "region_px": REGION * G.img_resolution,
            "seconds": time.perf_counter() - t0,
        },
        "detector": detector_info,
        **results,
    }
    emit(report, args.out, markdown_table if args.table else None)


if __name__ == "__main__":
    main()
