"""`gpu_check.py`'s memory section: the peak memory of two drag steps, ours against the
official step, each variant in a fresh interpreter (``gpu_check.py --child-memory``)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch

from draggan_widget.drag import DragSession

try:
    from drag_speed import make_points
    from gpu_setup import make_generator, never_done, sync_for
    from official_step import OfficialStep
except ImportError:  # run as a module from the repo root
    from bench.drag_speed import make_points
    from bench.gpu_setup import make_generator, never_done, sync_for
    from bench.official_step import OfficialStep

REPO = Path(__file__).resolve().parents[1]
GPU_CHECK = Path(__file__).resolve().with_name("gpu_check.py")
T4_BYTES = 15 * 10**9  # a T4's 15 GB (about 14.7 GiB usable)
MEMORY_GOAL = 0.6  # ours / official, peak of a step
MIB = 2**20

VARIANTS = ("ours", "ours_auto", "official")  # float32; the default precision; the release


def memory(device: torch.device, args: argparse.Namespace) -> dict:
    """Peak memory of a step, ours (float32 and default) against official, fresh processes."""
    rows = []
    for res in args.res:
        for n in args.points[:1]:  # more points add little memory; each row costs 3 processes
            got = {v: memory_child(v, res, n, device, args.quick) for v in VARIANTS}
            row = {"resolution": res, "points": n, "measure": got["official"]["measure"]}
            row["auto_runs"] = got["ours_auto"]["arithmetic"]
            for v in VARIANTS:
                row[f"{v}_peak_mib"] = got[v]["peak_mib"]
                row[f"{v}_step_mib"] = got[v]["step_mib"]
            official = got["official"]
            for v in VARIANTS[:2]:
                row[f"{v}_peak_ratio"] = round(got[v]["peak_mib"] / official["peak_mib"], 3)
                row[f"{v}_step_ratio"] = round(
                    got[v]["step_mib"] / max(official["step_mib"], 0.1), 3
                )
            row["fits_t4"] = max(got[v]["peak_mib"] for v in VARIANTS[:2]) * MIB < T4_BYTES
            rows.append(row)
    ok = all(r["ours_peak_ratio"] <= MEMORY_GOAL and r["fits_t4"] for r in rows)
    return {"ok": ok, "goal": f"ours_peak_ratio <= {MEMORY_GOAL}, fits a 15 GB T4", "rows": rows}


def memory_child(variant: str, res: int, points: int, device: torch.device, quick: bool) -> dict:
    """Run `measure_step` in a fresh interpreter, so no earlier allocation blurs the peak."""
    cmd = [sys.executable, str(GPU_CHECK), "--device", str(device)]
    cmd += ["--child-memory", variant, "--res", str(res), "--points", str(points)]
    cmd += ["--quick"] if quick else []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "bench"), env.get("PYTHONPATH", "")])
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} at {res} px failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def measure_step(variant: str, res: int, points: int, device: torch.device, quick: bool) -> dict:
    """Peak memory of two drag steps of ``variant`` (this process must be fresh)."""
    if device.type == "cpu":
        torch.set_num_threads(1)  # the peak does not depend on it, the shared machine does
    G = make_generator(res, quick).to(device)
    handles, targets = make_points(res, points)
    config = never_done()
    if variant == "ours":
        config.precision = "float32"
    session = DragSession(G, seed=0, config=config, device=device)
    session.set_points(handles, targets)
    if variant.startswith("ours"):
        step = lambda: session.step(render=True)  # noqa: E731  (what the widget runs)
    else:
        official = OfficialStep(
            G, session.ws, handles, targets, feature_res=min(128, res), lr=session.config.lr
        )
        step = official.step
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first use imports ~70 MB
    before = _memory_now(device)
    for _ in range(2):
        step()
    sync_for(device)()
    peak = _memory_peak(device)
    return {
        "variant": variant,
        "resolution": res,
        "arithmetic": session.arithmetic if variant.startswith("ours") else "float32",
        "measure": "cuda max_memory_allocated" if device.type == "cuda" else "peak RSS",
        "peak_mib": round(peak / MIB, 1),
        "step_mib": round((peak - before) / MIB, 1),
    }


def _memory_now(device: torch.device) -> int:
    """What is held before the steps: allocated on a GPU; on a CPU the peak RSS so far."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    return _max_rss()


def _memory_peak(device: torch.device) -> int:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _max_rss()


def _max_rss() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes there, KiB on Linux
