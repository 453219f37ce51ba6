"""The drags of bench/quality.py: presets by name, and one task dragged and measured.

A preset is ``"paper"`` (`DragConfig.paper`), ``"ours"`` (`DragConfig()`), or one of them with
fields changed on the command line (``"ours:anchor=0"``); bench/edits.py takes the same syntax.
"""

from __future__ import annotations

import ast
import math
import time
from typing import Any, Callable

import numpy as np
import torch
from quality_metrics import (
    REGION,
    SUCCESS_PX,
    edit_region,
    image_scores,
    outside_feature_change,
    outside_pixel_change,
    success_off_outline,
)
from quality_tasks import Task
from torch import Tensor

from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.gan.stylegan2 import Generator
from draggan_widget.train.landmarks import LandmarkNet

PRESETS: dict[str, Callable[..., DragConfig]] = {"paper": DragConfig.paper, "ours": DragConfig}


def parse_preset(spec: str) -> DragConfig:
    """``"paper"``, ``"ours"``, or one of them with changes: ``"ours:anchor=0,lr=0.001"``.

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
    change outside it measures how well the mask term holds the rest of the image. A task
    without landmarks (a random one) has no detector figures: MD is NaN, detected success None.

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
    marked = len(task.points) > 0
    detected_px = np.zeros(0)
    if marked:  # a random task has no landmark for the detector to find
        found = detector.locate(after[None], size)[0][list(task.points)]
        detected_px = np.linalg.norm(found - targets, axis=1)
    return {
        "md": float(detected_px.mean()) if marked else math.nan,
        "md_tracked": float(np.mean(result.distances)),
        "success": bool(max(result.distances) <= SUCCESS_PX),
        "success_detected": bool(detected_px.max() <= SUCCESS_PX) if marked else None,
        "success_off_outline": success_off_outline(task.points, result.distances),
        "tracked_px": [float(d) for d in result.distances],
        "detected_px": [float(d) for d in detected_px],
        "converged": bool(result.done),
        "steps": result.step - int(result.done),  # the last step of a finished drag only checks
        "seconds": seconds,
        "calls": result.step,
        "pixel_change": outside_pixel_change(before, after, region),
        "feature_change": outside_feature_change(detector, before, after, region),
        **image_scores(
            before,
            after,
            np.asarray(task.handles),
            targets,
            protected=~region if masked else None,
        ),
    }, after
