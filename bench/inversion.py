"""Projection and pivotal-tuning quality on images the generator made from held-out seeds.

    python bench/inversion.py [--model default|PATH] [--seeds 1000 1001 1002 1003 1004]
                              [--steps 1000] [--pti-steps 350] [--device cpu] [--threads 1]

Each seed's image is drawn as the widget draws it (``DragSession(G, seed=s).image()``, with
the config's truncation), projected into W then W+ (`project`), then the generator is tuned
around the result (`pti`). Prints one JSON document: the machine, the model, and per seed
the PSNR/SSIM after each stage, with the targets of issue 7 (W+ >= 25 dB, PTI >= 30 dB).

With ``--model default`` and no ``weights/default.safetensors`` yet, it runs on a 64-px
random-init generator of the default model's architecture and says so under ``"model"``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time

import torch
from common import machine

from draggan_widget.drag import DragSession
from draggan_widget.gan.formats import load_generator
from draggan_widget.gan.stylegan2 import Generator
from draggan_widget.invert import project, pti
from draggan_widget.train.loop import TrainConfig, build_networks

logger = logging.getLogger("bench.inversion")

TARGETS = {"w+": 25.0, "pti": 30.0}  # dB, issue 7


def get_model(name: str) -> tuple[Generator, str]:
    """The generator and how to describe it; the random stand-in when the default is absent."""
    try:
        return load_generator(name), name
    except FileNotFoundError:
        if name != "default":
            raise
    torch.manual_seed(0)
    G = build_networks(TrainConfig())[0].eval().requires_grad_(False)
    return G, "random-init 64-px generator of the default architecture (default model absent)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default", help="'default', a registry name or a path")
    p.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003, 1004])
    p.add_argument("--steps", type=int, default=1000, help="projection steps (W, then W+)")
    p.add_argument("--pti-steps", type=int, default=350, dest="pti_steps")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    G, model = get_model(args.model)
    G = G.to(args.device)
    rows = []
    for seed in args.seeds:
        target = DragSession(G, seed=seed, device=args.device).image()
        t0 = time.perf_counter()
        ws, report = project(G, target, steps=args.steps, bar=False)
        t1 = time.perf_counter()
        pti(G, ws, target, steps=args.pti_steps, bar=False, report=report)
        t2 = time.perf_counter()
        rows.append(
            {
                "seed": seed,
                "psnr": {k: round(v, 2) for k, v in report.stage_psnr.items()},
                "ssim": {k: round(v, 4) for k, v in report.stage_ssim.items()},
                "project_s": round(t1 - t0, 1),
                "pti_s": round(t2 - t1, 1),
            }
        )
        logger.warning("seed %d: %s", seed, report.summary())
    summary = {}
    for stage in ("w", "w+", "pti"):
        values = [r["psnr"][stage] for r in rows if stage in r["psnr"]]
        if values:
            summary[stage] = {
                "mean_psnr": round(statistics.mean(values), 2),
                "min_psnr": min(values),
                "target_psnr": TARGETS.get(stage),
                "met": None if stage not in TARGETS else min(values) >= TARGETS[stage],
            }
    doc = {
        "machine": machine(torch.device(args.device)),
        "model": {
            "source": model,
            "img_resolution": G.img_resolution,
            "num_ws": G.num_ws,
            "w_dim": G.w_dim,
        },
        "config": {"steps": args.steps, "pti_steps": args.pti_steps, "seeds": args.seeds},
        "results": rows,
        "summary": summary,
    }
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
