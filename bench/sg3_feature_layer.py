"""Which StyleGAN3 layer should a drag supervise? One-handle drags per feature layer.

    python bench/sg3_feature_layer.py [--models sg3_t_32 sg3_r_32 t64 r64] [--drags 4]

For every model and every (feature side, first or last layer of that side) the same drags
run for ``--steps`` steps. Judged by the image, not by our tracker: the pixels around the
handle at the start are looked for in the final image (least squares, near the target), and
``image_left`` is the distance from where they were found to the target over the starting
distance (1 = nothing moved, 0 = arrived). ``tracked_left`` is the same by our tracker, and
``rest_change`` the mean absolute change of the pixels far from the handle and the target,
over the image's standard deviation (how much of the rest the drag broke).

Models: the parity fixtures ``sg3_t_32`` / ``sg3_r_32`` (tests/data), random generators
of config T or R (``t64``, ``r64``; 14 layers, 32 channels), or any registry name or path
(``stylegan3-t-ffhqu-256``). Random weights draw textures, not objects: the figures say
which layers move content at all, not which give the nicest edit; a trained model is what
should set the default side. Prints one JSON line per configuration, then a summary.

Measured (CPU, float32, 3 drags of 20% of the side, 40 steps; ``image_left``, lower is
better): the last layer of a side beat the first in 6 of the 7 (model, side) pairs,
e.g. 0.761 against 0.909 (sg3_t_32, side 32) and 0.697 against 0.729 (sg3_r_32, side 32);
the exception, t64 at side 32, broke the image with either layer (rest_change 0.29-0.41).
On t64 the image-side layer (L13, side 64) moved content furthest (0.418).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import numpy as np
import torch

from draggan_widget import DragConfig, DragSession, load_generator
from draggan_widget.gan.stylegan3 import FeatureChoice, Generator

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def random_sg3(res: int, config: str, seed: int = 0) -> Generator:
    """A random StyleGAN3 of NVIDIA's layout (14 layers) at small width."""
    torch.manual_seed(seed)
    radial = {"conv_kernel": 1, "use_radial_filters": True} if config == "R" else {}
    G = Generator(
        z_dim=64,
        c_dim=0,
        w_dim=64,
        img_resolution=res,
        synthesis_kwargs={"channel_base": 2048, "channel_max": 32, **radial},
    )
    return G.eval().requires_grad_(False)


def load_model(name: str) -> Generator:
    """A parity fixture (``sg3_t_32``), a random one (``t64``, ``r128``), else a registry
    name, path or URL (``stylegan3-t-ffhqu-256``: the measurement that matters)."""
    if (DATA / f"{name}.pkl").is_file():
        return load_generator(DATA / f"{name}.pkl")
    if name[:1] in "tr" and name[1:].isdigit():
        return random_sg3(int(name[1:]), name[0].upper())
    return load_generator(name)


def drag_tasks(res: int, n: int, seed: int = 0) -> list[tuple[tuple, tuple]]:
    """n (handle, target) pairs: handles in the middle half, targets 20% of the side away."""
    rng = np.random.default_rng(seed)
    tasks = []
    for _ in range(n):
        hx, hy = rng.uniform(0.3, 0.7, size=2) * res
        a = rng.uniform(0, 2 * math.pi)
        d = 0.2 * res
        tasks.append(((hx, hy), (hx + d * math.cos(a), hy + d * math.sin(a))))
    return tasks


def locate(before: np.ndarray, after: np.ndarray, handle: tuple, target: tuple) -> float:
    """Distance to the target of the best match (least squares) in ``after`` of the patch
    of ``before`` around the handle, searched within twice the drag's length of the target."""
    res = before.shape[0]
    r = max(2, res // 16)
    hx, hy = int(handle[0]), int(handle[1])
    tpl = before[hy - r : hy + r + 1, hx - r : hx + r + 1].astype(np.float32)
    reach = 2 * math.dist(handle, target)
    best, best_d = math.inf, math.inf
    for y in range(r, res - r):
        for x in range(r, res - r):
            d = math.dist((x + 0.5, y + 0.5), target)
            if d > reach:
                continue
            patch = after[y - r : y + r + 1, x - r : x + r + 1].astype(np.float32)
            ssd = float(((patch - tpl) ** 2).sum())
            if ssd < best:
                best, best_d = ssd, d
    return best_d


def rest_change(before: np.ndarray, after: np.ndarray, handle: tuple, target: tuple) -> float:
    """Mean |change| of the pixels farther than a quarter side from handle and target."""
    res = before.shape[0]
    yy, xx = np.mgrid[0:res, 0:res] + 0.5
    far = np.ones((res, res), bool)
    for px, py in (handle, target):
        far &= np.hypot(xx - px, yy - py) > res / 4
    diff = np.abs(after.astype(np.float32) - before.astype(np.float32))[far].mean()
    return float(diff / max(before.astype(np.float32).std(), 1e-6))


def run_config(G: Generator, side: int, choice: FeatureChoice, tasks: list, steps: int) -> dict:
    G.synthesis.feature_choice = choice
    layer = G.synthesis.layer_names[G.synthesis.feature_layer(side)]
    image_left, tracked_left, rest = [], [], []
    for i, (handle, target) in enumerate(tasks):
        s = DragSession(
            G, seed=i, config=DragConfig(feature_res=side, precision="float32"), device="cpu"
        )
        before = s.image()
        s.set_points([handle], [target])
        result = s.run(steps)
        after = s.image()
        start = math.dist(handle, target)
        image_left.append(locate(before, after, handle, target) / start)
        tracked_left.append(result.distances[0] / start)
        rest.append(rest_change(before, after, handle, target))
    return {
        "side": side,
        "choice": choice,
        "layer": layer,
        "image_left": round(statistics.mean(image_left), 3),
        "tracked_left": round(statistics.mean(tracked_left), 3),
        "rest_change": round(statistics.mean(rest), 3),
    }


def _last(G: Generator, side: int) -> int:
    return max(i for i, r in enumerate(G.synthesis.sampling_rates[:-1]) if r == side)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["sg3_t_32", "sg3_r_32", "t64", "r64"])
    parser.add_argument("--drags", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    rows = []
    for name in args.models:
        G = load_model(name)
        tasks = drag_tasks(G.img_resolution, args.drags)
        for side in G.synthesis.feature_sides:
            for choice in ("first", "last"):
                G.synthesis.feature_choice = "first"
                if choice == "last" and G.synthesis.feature_layer(side) == _last(G, side):
                    continue  # one layer at this side
                row = {"model": name, **run_config(G, side, choice, tasks, args.steps)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    best = {}
    for row in rows:
        if row["model"] not in best or row["image_left"] < best[row["model"]]["image_left"]:
            best[row["model"]] = row
    print(json.dumps({"best_by_image": best}, indent=2))


if __name__ == "__main__":
    main()
