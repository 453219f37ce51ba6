"""Drag quality: the DragGAN paper's landmark transfer, paper's algorithm against ours.

    PYTHONPATH=. python bench/quality.py [--tasks 12] [--seed 0] [--max-steps 200]
        [--presets paper ours] [--ablations] [--mask] [--kind random2] [--out FILE] [--table]
    PYTHONPATH=. python bench/quality.py --merge paper.json ours.json [--table]

A task takes two generated faces, A and B, and drags 1, 5 or all landmarks of A to where B
has them. Generated images have no ground truth, so a `LandmarkNet` trained on the
procedural renderer's ground-truth landmarks finds them, before the drag (handles and
targets) and after it (the distance MD the paper reports). The detector is trained once,
seeded, and cached (``runs/landmarks/`` or ``$DRAGGAN_WIDGET_HOME/landmarks/``); its own error
on held-out renders is in the report, so a reader can judge how far MD can be trusted.
``--kind random2`` drags two points drawn anywhere instead, a tenth of the side each, which
only the image check below can judge.

Prints one JSON document: the machine, the settings, the detector, the task set, and per
preset the detected and tracked MD, success rate (by the image: each handle's start patch
found in the result, `quality_locate`; as tracked, as detected, both at once,
and leaving out the face outline's landmarks, which slide along the face's edge as a drag
turns it), the share of tracked arrivals the detector refutes, steps and seconds, the
change outside the edited region (pixels and detector features), PSNR and colour shift far
from every point and (masked) outside the mask, a Fréchet distance to
rendered faces, each landmark's tracked and detected error, and ours / paper for each.
``--table`` adds the markdown table of bench/README.md.

Its pieces, one concern each: `quality_tasks` (the task set), `quality_detector` (the landmark
detector and its cache), `quality_drags` (presets, one task dragged), `quality_metrics` (what
a drag is scored on), `quality_locate` (the image's own arrival check and locality),
`quality_report` (merging reports, the table); `common` prints JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import numpy as np
import torch
from common import clean, emit, machine
from quality_detector import (
    DetectorRecipe,
    default_cache_dir,
    detector_error,
    load_or_train_detector,
)
from quality_drags import parse_preset, run_task
from quality_metrics import (
    OUTLINE,
    REGION,
    SUCCESS_PX,
    aggregate,
    edit_region,
    false_arrivals,
    feature_fd,
    landmark_errors,
    mean_distance,
    outside_feature_change,
    outside_pixel_change,
    ratios,
    success_off_outline,
)
from quality_report import markdown_table, merge_reports
from quality_tasks import Limits, Task, make_random_tasks, make_tasks, pick_points
from torch import Tensor

from draggan_widget.drag import DragSession, pick_device
from draggan_widget.gan.stylegan2 import Generator
from draggan_widget.train.faces import LANDMARK_NAMES, render_dataset
from draggan_widget.train.landmarks import LandmarkNet

__all__ = [  # the benchmark's pieces, wherever they live, for its tests and sibling scripts
    "LANDMARK_NAMES",
    "OUTLINE",
    "SUCCESS_PX",
    "DetectorRecipe",
    "Limits",
    "clean",
    "edit_region",
    "false_arrivals",
    "load_or_train_detector",
    "make_tasks",
    "markdown_table",
    "mean_distance",
    "merge_reports",
    "outside_feature_change",
    "outside_pixel_change",
    "parse_preset",
    "pick_points",
    "run_benchmark",
    "run_task",
    "success_off_outline",
]

logger = logging.getLogger("bench.quality")

TaskKind = Literal["landmarks", "random2"]

ABLATIONS = (  # ours with one improvement switched off
    "ours:tracking=nearest",
    "ours:max_track_move=None",
    "ours:track_patch=1",
    "ours:settle=1",
    "ours:anchor=0",
    "ours:rebalance=False",
)


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
    kind: TaskKind = "landmarks",
) -> dict[str, Any]:
    """Make the task set, drag it with every preset, and measure.

    Args:
        reference: ``[M, D]`` detector embeddings of rendered faces (the FD reference).
        presets: specs for `parse_preset`.
        limits: task limits; default `Limits.for_size` of the model.
        masked: drag with the edited region as the mask (see `run_task`).
        kind: landmark transfer (`make_tasks`) or random points (`make_random_tasks`).

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

    tasks = _task_set(kind, landmarks_of, n_tasks, seed=seed, size=size, limits=limits)
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


def _task_set(
    kind: TaskKind,
    landmarks_of: Callable[[int], np.ndarray],
    n: int,
    *,
    seed: int,
    size: int,
    limits: Limits,
) -> list[Task]:
    """The task list of ``kind``; every image it drags is rendered (``landmarks_of``)."""
    if kind == "landmarks":
        return make_tasks(landmarks_of, n, seed=seed, size=size, limits=limits)
    tasks = make_random_tasks(n, seed=seed, size=size, limits=limits, n_points=2)
    for task in tasks:
        landmarks_of(task.seed_a)
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="'default', a registry name or a path")
    parser.add_argument("--tasks", type=int, default=12, help="drags per preset")
    parser.add_argument("--seed", type=int, default=0, help="seed of the task list")
    parser.add_argument("--max-steps", type=int, default=200, dest="max_steps")
    parser.add_argument(
        "--mask", action="store_true", help="drag with the edited region as the mask"
    )
    parser.add_argument(
        "--kind",
        choices=("landmarks", "random2"),
        default="landmarks",
        help="landmark transfer, or two random points moved a tenth of the side each",
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
        kind=args.kind,
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
            "kind": args.kind,
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
