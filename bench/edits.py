"""The default model's canonical edits, each placed on many faces: how often does it work?

`python -m draggan_widget.train.edits` runs each edit on its one face and writes its GIF;
the end-to-end test asserts those. One face can be lucky. This places each edit's moves on
the faces of other seeds (at their detected landmarks, as on its own face), drags for at
most ``--steps`` steps and counts the faces where it *arrives*: every tracked handle within
2 px of its target, and every dragged landmark too as the detector finds it in the result
(the end-to-end test's criterion; a tracker can follow a fading feature and report arrival).
The 2 px are at 64 px and grow with the image (4 px at 128): the same share of the face.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/edits.py --edits open_mouth --seeds 2-13
    # --preset "ours:anchor=0" (bench/quality.py's syntax), --steps 200, --out FILE.json

Prints one JSON document: the machine, the settings, per edit the per-face results and
their summary. For the mouth each face also records its detected lip gap (lower minus upper
lip, px) before and after: a mouth that starts closed is the hard case.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from common import emit, machine
from quality_drags import parse_preset

from draggan_widget.drag import DragConfig
from draggan_widget.gan.stylegan2 import Generator
from draggan_widget.train.edits import (
    EDITS,
    EditSpec,
    arrival_tolerance,
    detected_distances,
    load_detector,
    start,
)
from draggan_widget.train.faces import LANDMARK_NAMES
from draggan_widget.train.landmarks import LandmarkNet

logger = logging.getLogger(__name__)


def parse_seeds(text: str) -> list[int]:
    """``"2-13"``, ``"2,5,9"`` or a mix (``"2-4,9"``) as a list of seeds, in order.

    Raises:
        ValueError: not of that form, or an empty or reversed range.
    """
    seeds: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValueError(f"seeds must look like '2-13' or '2,5,9', got {text!r}") from None
        if last < first:
            raise ValueError(f"seed range {part!r} runs backwards")
        seeds.extend(range(first, last + 1))
    return seeds


def lip_gap(detector: LandmarkNet, image: np.ndarray) -> float:
    """Detected lower lip minus upper lip, px down the image (<= 0: a closed mouth)."""
    found = detector.locate(image[None], image.shape[0])[0]
    upper, lower = (LANDMARK_NAMES.index(f"mouth.{n}") for n in ("upper", "lower"))
    return float(found[lower, 1] - found[upper, 1])


def run_face(
    G: Generator, spec: EditSpec, detector: LandmarkNet, config: DragConfig, max_steps: int
) -> dict[str, Any]:
    """One edit on the face of ``spec.seed``: where its handles end, tracked and detected."""
    session, edit = start(G, spec, detector, config=config, device="cpu")
    before = session.image()
    result = session.run(max_steps=max_steps, render=False)
    after = session.image()
    tracked = np.asarray(result.distances)
    tolerance = arrival_tolerance(max(after.shape[:2]))
    detected = detected_distances(detector, spec, after, result.targets)
    row = {
        "seed": spec.seed,
        "steps": result.step,
        "start_px": round(float(np.mean(np.hypot(*np.subtract(edit.targets, edit.handles).T))), 3),
        "tracked_px": [round(float(d), 3) for d in tracked],
        "detected_px": [round(float(d), 3) for d in detected],
        "arrived_tracked": bool(tracked.max() <= tolerance),
        "arrived": bool(tracked.max() <= tolerance and detected.max() <= tolerance),
    }
    if any(name.startswith("mouth.") for name, _ in spec.moves):
        row["lip_gap_px"] = [round(lip_gap(detector, im), 3) for im in (before, after)]
    return row


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts of arrivals and the mean detected distance over an edit's faces."""
    return {
        "faces": len(rows),
        "arrived_tracked": sum(r["arrived_tracked"] for r in rows),
        "arrived": sum(r["arrived"] for r in rows),
        "detected_mean_px": round(float(np.mean([np.mean(r["detected_px"]) for r in rows])), 3),
        "start_mean_px": round(float(np.mean([r["start_px"] for r in rows])), 3),
    }


def run_edits(
    G: Generator,
    detector: LandmarkNet,
    names: Sequence[str],
    seeds: Sequence[int],
    config: DragConfig,
    max_steps: int,
) -> dict[str, Any]:
    """Every named edit on every seed's face: ``{name: {"faces": [...], "summary": {...}}}``."""
    specs = {spec.name: spec for spec in EDITS}
    out: dict[str, Any] = {}
    for name in names:
        rows = []
        for seed in seeds:
            spec = dataclasses.replace(specs[name], seed=seed)
            rows.append(run_face(G, spec, detector, config, max_steps))
            logger.info("%s seed %d: %s", name, seed, rows[-1])
        out[name] = {"faces": rows, "summary": summarise(rows)}
        logger.info("%s: %s", name, out[name]["summary"])
    return out


def main(argv: Optional[list[str]] = None) -> int:
    from draggan_widget.gan.formats import load_generator

    names = [spec.name for spec in EDITS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="a load_generator source")
    parser.add_argument("--edits", nargs="+", default=names, choices=names)
    parser.add_argument("--seeds", default="2-13", help="faces to place each edit on")
    parser.add_argument("--steps", type=int, default=200, help="most steps per drag")
    parser.add_argument("--preset", default="ours", help="bench/quality.py's preset syntax")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as err:
        parser.error(str(err))
    config = parse_preset(args.preset)
    G, detector = load_generator(args.model), load_detector()
    report = {
        "machine": machine(torch.device("cpu")),
        "settings": {
            "model": args.model,
            "seeds": seeds,
            "steps": args.steps,
            "preset": args.preset,
            "config": config.asdict(),
        },
        "edits": run_edits(G, detector, args.edits, seeds, config, args.steps),
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
