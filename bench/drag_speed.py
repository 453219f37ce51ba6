"""ms per drag step: our DragSession.step() against the official loop, same generator, same process.

    python bench/drag_speed.py [--res 256 512 default] [--points 1 5] [--device cpu] [--phases]
    # --res takes a side (a random NVIDIA-config generator) or a load_generator source
    python bench/drag_speed.py --stylegan3 --res 256 --points 1   # StyleGAN3 T, R vs StyleGAN2

Prints one JSON document: the machine, then per (model, points) the median ms of ours
(with and without rendering the frame, in float32 and in the default precision 'auto', with
what auto chose) and of the official step, and official / ours. ``--phases`` adds, per model,
each phase of our default step against its floor (`phases.py`).

``--stylegan3`` times instead, per resolution, our step on a StyleGAN3 of NVIDIA's config T
and of config R against the StyleGAN2 above, all in float32 (the official DragGAN cannot
drag a StyleGAN3, so there is no official baseline), and gives StyleGAN3 / StyleGAN2.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace
from typing import Callable

import torch

from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.gan.stylegan2 import Generator

try:
    from generator_speed import stylegan3_like
    from official_step import OfficialStep
    from phases import phase_rows
except ImportError:  # run as a module from the repo root
    from bench.generator_speed import stylegan3_like
    from bench.official_step import OfficialStep
    from bench.phases import phase_rows

FFHQ = {  # NVIDIA's configs: 'paper256' and 'stylegan2' (FFHQ 512)
    256: {"channel_base": 16384, "channel_max": 512},
    512: {"channel_base": 32768, "channel_max": 512},
}


def ffhq_like(res: int) -> Generator:
    torch.manual_seed(0)
    G = Generator(
        z_dim=512,
        c_dim=0,
        w_dim=512,
        img_resolution=res,
        img_channels=3,
        mapping_kwargs={"num_layers": 8},
        synthesis_kwargs={**FFHQ[res], "num_fp16_res": 4},
    )
    return G.eval().requires_grad_(False)


def make_points(res: int, n: int) -> tuple[list, list]:
    """n handles in rows of three around the centre, each with a target 15% of the side to
    its right; beyond five rows the rows close up, so any n stays inside the image."""
    c, d = res / 2, 0.15 * res
    step = 0.5 * res / max(5, -(-n // 3))  # rows 0.1 of the side apart, up to five; then closer
    handles = [(c + 0.2 * res * (i % 3 - 1), c - 0.1 * res + step * (i // 3)) for i in range(n)]
    return handles, [(x + d, y) for x, y in handles]


def timed(fns: dict[str, Callable[[], object]], repeats: int, warmup: int, sync) -> dict:
    """Median ms of each function, timed in turn within every round.

    Interleaving gives every variant the same share of whatever else the machine is doing,
    so the ratios hold on a shared CPU even when the absolute figures drift.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - t) * 1000)
    return {name: statistics.median(ms) for name, ms in times.items()}


def session_for(G: Generator, cfg: DragConfig, points: tuple, device: torch.device) -> DragSession:
    s = DragSession(G, seed=0, config=cfg, device=device)
    s.set_points(*points)
    return s


def bench_one(G: Generator, name: str, n_points: int, device: torch.device, repeats: int) -> dict:
    res = G.img_resolution
    points = make_points(res, n_points)
    cfg = DragConfig(stop_distance=0.5)  # never stops during the timing; precision 'auto'
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    ours = session_for(G, replace(cfg, precision="float32"), points, device)
    auto = session_for(G, cfg, points, device)
    side = cfg.feature_side(res)
    official_side = min(128, res)  # the release always supervises block 6 (128 x 128)
    official = OfficialStep(
        G,
        DragSession(G, seed=0, device=device).ws,
        *points,
        feature_res=official_side,
        lr=cfg.lr,
    )
    ms = timed(
        {
            "ours": lambda: ours.step(render=False),
            "ours_render": lambda: ours.step(render=True),
            "ours_auto": lambda: auto.step(render=False),
            "ours_auto_render": lambda: auto.step(render=True),
            "official": official.step,
        },
        repeats,
        2,
        sync,
    )
    ms = {k: round(v, 2) for k, v in ms.items()}  # the ratios are those of the printed times
    return {
        "model": name,
        "resolution": res,
        "feature_res": side,
        "official_feature_res": official_side,
        "points": n_points,
        "auto_runs": auto.arithmetic,
        **{f"{k}_ms": v for k, v in ms.items()},
        "speedup": round(ms["official"] / ms["ours_render"], 2),
        "speedup_no_render": round(ms["official"] / ms["ours"], 2),
        "speedup_auto": round(ms["official"] / ms["ours_auto_render"], 2),
        "speedup_auto_no_render": round(ms["official"] / ms["ours_auto"], 2),
    }


def bench_stylegan3(
    generators: dict[str, torch.nn.Module], n_points: int, device: torch.device, repeats: int
) -> dict:
    """Median ms of our step (with and without the frame) on each generator, taking turns
    every round, and each one's time over the first's (the StyleGAN2 baseline)."""
    res = next(iter(generators.values())).img_resolution
    points = make_points(res, n_points)
    cfg = DragConfig(stop_distance=0.5, precision="float32")  # never stops while timed
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fns, layers = {}, {}
    for name, G in generators.items():
        s = session_for(G, cfg, points, device)
        fns[name] = lambda s=s: s.step(render=False)
        fns[f"{name}_render"] = lambda s=s: s.step(render=True)
        if hasattr(G.synthesis, "feature_layer"):
            side = cfg.feature_side(res)
            layers[name] = G.synthesis.layer_names[G.synthesis.feature_layer(side)]
    ms = {k: round(v, 2) for k, v in timed(fns, repeats, 2, sync).items()}
    base = next(iter(generators))
    ratios = {}
    for name in generators:
        if name != base:
            ratios[f"{name}_over_{base}"] = round(ms[name] / ms[base], 2)
            ratios[f"{name}_render_over_{base}"] = round(
                ms[f"{name}_render"] / ms[f"{base}_render"], 2
            )
    return {
        "model": f"stylegan3-vs-stylegan2-{res}",
        "resolution": res,
        "feature_res": cfg.feature_side(res),
        "feature_layers": layers,
        "points": n_points,
        **{f"{k}_ms": v for k, v in ms.items()},
        **ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", nargs="+", default=["default", "256", "512"])
    parser.add_argument("--points", nargs="+", type=int, default=[1, 5])
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--phases", action="store_true", help="each phase against its floor")
    parser.add_argument(
        "--stylegan3", action="store_true", help="StyleGAN3 T and R against StyleGAN2 instead"
    )
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    results = []
    for res in args.res:
        if args.stylegan3:
            models = {"stylegan2": ffhq_like(int(res))}
            models.update({f"stylegan3_{c.lower()}": stylegan3_like(int(res), c) for c in "TR"})
            reps = args.repeats if int(res) <= 256 or device.type == "cuda" else 3
            for n in args.points:
                results.append(bench_stylegan3(models, n, device, reps))
                print(json.dumps(results[-1]), flush=True)
            continue
        if res.isdigit():
            G, name = ffhq_like(int(res)), f"ffhq-config-{res}"
        else:
            from draggan_widget.gan.formats import load_generator

            try:
                G, name = load_generator(res), res
            except (FileNotFoundError, ValueError) as exc:
                results.append({"model": res, "skipped": str(exc)})
                continue
        reps = args.repeats if G.img_resolution <= 256 or device.type == "cuda" else 3
        for n in args.points:
            results.append(bench_one(G, name, n, device, reps))
            print(json.dumps(results[-1]), flush=True)
        if args.phases:
            cfg, points = DragConfig(stop_distance=0.5), make_points(G.img_resolution, 1)
            results.append({"model": name, "phases": phase_rows(G, cfg, points, device, reps)})
            print(json.dumps(results[-1]), flush=True)
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(),
        },
        "baseline": (
            "our step on a StyleGAN2 of the same resolution (ffhq_like), same process"
            if args.stylegan3
            else "bench/official_step.py (official DragGAN step, same generator and process)"
        ),
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
