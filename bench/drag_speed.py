"""ms per drag step: our DragSession.step() against the official loop, same generator, same process.

    python bench/drag_speed.py [--res 256 512 default] [--points 1 5] [--device cpu]

Prints one JSON document: the machine, then per (model, points) the median ms of ours
(with and without rendering the frame, and with the bfloat16 gradient pass) and of the
official step, and official / ours.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace

import torch

from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.gan.stylegan2 import Generator

try:
    from official_step import OfficialStep
except ImportError:  # run as a module from the repo root
    from bench.official_step import OfficialStep

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
    """n handles on a ring around the centre, each with a target 15% of the side away."""
    c, d = res / 2, 0.15 * res
    handles = [(c + 0.2 * res * (i % 3 - 1), c + 0.1 * res * (i // 3)) for i in range(n)]
    return handles, [(x + d, y) for x, y in handles]


def timed(fn, repeats: int, warmup: int, sync) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_one(G: Generator, name: str, n_points: int, device: torch.device, repeats: int) -> dict:
    res = G.img_resolution
    handles, targets = make_points(res, n_points)
    cfg = DragConfig(stop_distance=0.5)  # never stops during the timing
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    ours = DragSession(G, seed=0, config=cfg, device=device)
    ours.set_points(handles, targets)
    ours_ms = timed(lambda: ours.step(render=False), repeats, 2, sync)
    ours_render_ms = timed(lambda: ours.step(render=True), repeats, 1, sync)
    low = DragSession(G, seed=0, config=replace(cfg, precision="bfloat16"), device=device)
    low.set_points(handles, targets)
    bf16_render_ms = timed(lambda: low.step(render=True), repeats, 2, sync)
    side = cfg.feature_side(res)
    official_side = min(128, res)  # the release always supervises block 6 (128 x 128)
    official = OfficialStep(
        G,
        DragSession(G, seed=0, device=device).ws,
        handles,
        targets,
        feature_res=official_side,
        lr=cfg.lr,
    )
    official_ms = timed(official.step, repeats, 2, sync)
    return {
        "model": name,
        "resolution": res,
        "feature_res": side,
        "official_feature_res": official_side,
        "points": n_points,
        "ours_ms": round(ours_ms, 2),
        "ours_render_ms": round(ours_render_ms, 2),
        "ours_bf16_render_ms": round(bf16_render_ms, 2),
        "official_ms": round(official_ms, 2),
        "speedup": round(official_ms / ours_render_ms, 2),
        "speedup_no_render": round(official_ms / ours_ms, 2),
        "speedup_bf16": round(official_ms / bf16_render_ms, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", nargs="+", default=["default", "256", "512"])
    parser.add_argument("--points", nargs="+", type=int, default=[1, 5])
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    results = []
    for res in args.res:
        if res == "default":
            from draggan_widget.gan.formats import load_generator

            try:
                G, name = load_generator("default"), "default"
            except (FileNotFoundError, ValueError) as exc:
                results.append({"model": "default", "skipped": str(exc)})
                continue
        else:
            G, name = ffhq_like(int(res)), f"ffhq-config-{res}"
        reps = args.repeats if G.img_resolution <= 256 or device.type == "cuda" else 3
        for n in args.points:
            results.append(bench_one(G, name, n, device, reps))
            print(json.dumps(results[-1]), flush=True)
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(),
        },
        "baseline": "bench/official_step.py (official DragGAN step, same generator and process)",
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
