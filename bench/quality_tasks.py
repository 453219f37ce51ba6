"""The task set of bench/quality.py: which landmarks of which face go where.

A landmark task takes two generated faces, A and B, and drags 1, 5 or all landmarks of A to
where B has them. Tasks are drawn from pairs of image seeds, filtered by `Limits`, so that one
task seed always gives the same list. A random task (`make_random_tasks`) drags points drawn
anywhere in one face, each a fixed distance in its own direction: drags that no setting was
tuned on, judged by the image alone (no landmark marks them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

KINDS: tuple[Optional[int], ...] = (1, 5, None)  # points per task, in turn; None = every landmark


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
    """Drag landmarks ``points`` of image ``seed_a`` to where image ``seed_b`` has them.

    A random task has no landmarks (``points`` is empty) and ``seed_b == seed_a``.
    """

    seed_a: int
    seed_b: int
    kind: str  # "1", "5", "all", or "random<K>" (K random points)
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


def make_random_tasks(
    n: int,
    *,
    seed: int,
    size: int,
    limits: Limits,
    n_points: int = 2,
    length: float = 0.1,
) -> list[Task]:
    """``n`` drags of ``n_points`` points anywhere on a face, the same list for one ``seed``.

    Each handle moves ``length`` of the side in a direction of its own. Handles and targets
    keep ``limits.margin`` inside; handles keep ``length`` of the side apart, so no two
    points share the content that the image check looks for.
    """
    rng = np.random.default_rng(seed)
    step, lo, hi = length * size, limits.margin, size - limits.margin
    if hi - lo <= step:
        raise ValueError(f"a drag of {step:.1f} px does not fit {size} px inside {lo:.1f} px")
    tasks: list[Task] = []
    while len(tasks) < n:
        image_seed = int(rng.integers(0, 2**31 - 1))
        handles: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        while len(handles) < n_points:
            handle = rng.uniform(lo, hi, size=2)
            angle = rng.uniform(0, 2 * np.pi)
            target = handle + step * np.array([np.cos(angle), np.sin(angle)])
            apart = all(np.linalg.norm(handle - h) >= step for h in handles)
            if apart and ((target >= lo) & (target <= hi)).all():
                handles.append(handle)
                targets.append(target)
        pairs = [tuple(tuple(float(v) for v in p) for p in ps) for ps in (handles, targets)]
        tasks.append(Task(image_seed, image_seed, f"random{n_points}", (), *pairs))
    return tasks
