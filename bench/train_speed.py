"""Training img/s and drag-step ms of candidate default-model configs on this machine.

    PYTHONPATH=. python bench/train_speed.py [--configs A B ...] [--steps 32] [--threads 2]

For each config: img/s of full training steps (every phase, lazy R1 every 16 steps
amortised by timing a multiple of 16 steps) on stand-in images, the generator's size, and
the median ms of a real `DragSession.step()` (1 point, no render) with that architecture.
Prints one JSON line per config, then a JSON document with all of them.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from common import machine, median_ms

from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.train.loop import TrainConfig, Trainer

CONFIGS = {  # name: TrainConfig fields
    "A": dict(z_dim=128, w_dim=128, map_layers=4, channel_base=4096, channel_max=128, batch=16),
    "A32": dict(z_dim=128, w_dim=128, map_layers=4, channel_base=4096, channel_max=128, batch=32),
    "B": dict(z_dim=128, w_dim=128, map_layers=4, channel_base=2048, channel_max=128, batch=16),
    "C": dict(z_dim=256, w_dim=256, map_layers=8, channel_base=8192, channel_max=256, batch=16),
    "D": dict(z_dim=256, w_dim=256, map_layers=4, channel_base=8192, channel_max=128, batch=16),
    "E": dict(z_dim=256, w_dim=256, map_layers=8, channel_base=4096, channel_max=256, batch=16),
    "F": dict(z_dim=128, w_dim=128, map_layers=4, channel_base=3072, channel_max=128, batch=16),
    "AD": dict(
        z_dim=128,
        w_dim=128,
        map_layers=4,
        channel_base=4096,
        channel_max=128,
        batch=16,
        d_channel_base=2048,
    ),
    "G": dict(z_dim=256, w_dim=256, map_layers=8, channel_base=4096, channel_max=128, batch=16),
    "GD": dict(
        z_dim=256,
        w_dim=256,
        map_layers=8,
        channel_base=4096,
        channel_max=128,
        batch=16,
        d_channel_base=2048,
    ),
}


def stand_in_images(n: int, res: int) -> np.ndarray:
    """Random coloured ellipses: enough for timing, which does not depend on the pixels."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:res, :res] / res
    imgs = np.empty([n, res, res, 3], np.uint8)
    for i in range(n):
        cx, cy, rx, ry = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), *rng.uniform(0.2, 0.4, 2)
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
        imgs[i] = np.where(inside[..., None], rng.integers(0, 256, 3), rng.integers(0, 256, 3))
    return imgs


def drag_ms(G: torch.nn.Module, repeats: int = 20) -> float:
    G = G.eval().requires_grad_(False)
    session = DragSession(G, seed=0, config=DragConfig(stop_distance=0.5))
    res = G.img_resolution
    session.set_points([(res * 0.4, res * 0.5)], [(res * 0.6, res * 0.5)])
    return median_ms(lambda: session.step(render=False), repeats, warmup=3)


def bench(name: str, steps: int, res: int) -> dict:
    cfg = TrainConfig(res=res, out="/tmp/train_speed", **CONFIGS[name])
    trainer = Trainer(cfg, stand_in_images(256, res))
    for _ in range(2):
        trainer.step()
    trainer.step_count = 0  # so that the timed steps hold exactly steps / 16 R1 steps
    t = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    sec = time.perf_counter() - t
    img_s = steps * cfg.batch / sec
    G = trainer.G_ema
    return {
        "config": name,
        **CONFIGS[name],
        "channels": G.synthesis.channels,
        "G_params_M": round(sum(p.numel() for p in G.parameters()) / 1e6, 3),
        "D_params_M": round(sum(p.numel() for p in trainer.D.parameters()) / 1e6, 3),
        "img_per_s": round(img_s, 1),
        "kimg_per_h": round(img_s * 3.6, 1),
        "drag_step_ms": round(drag_ms(G), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=32, help="timed steps (multiple of 16)")
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for name in args.configs:
        results.append(bench(name, args.steps, args.res))
        print(json.dumps(results[-1]), flush=True)
    report = {"machine": machine(), "results": results}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
