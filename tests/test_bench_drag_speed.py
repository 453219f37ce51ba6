"""bench/drag_speed.py and its baseline: the official step really drags, and one benchmark
row holds every variant's time and the ratios computed from them (no speed is asserted)."""

from __future__ import annotations

import numpy as np
import torch

from conftest import load_bench, make_generator
from draggan_widget import load_generator

drag_speed = load_bench("drag_speed")
official_step = load_bench("official_step")


def test_the_official_baseline_moves_its_handle_toward_the_target(one_thread):
    """A baseline that did not drag would make the speed ratios meaningless."""
    G = load_generator("default")
    handle, target = (22.0, 40.0), (30.0, 40.0)  # (x, y): a cheek point, 8 px to the right
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None)
    step = official_step.OfficialStep(G, ws.detach(), [handle], [target], feature_res=64)
    start = np.hypot(*np.subtract(step.targets[0], step.points[0]))
    for _ in range(40):
        step.step()
    end = np.hypot(*np.subtract(step.targets[0], step.points[0]))
    assert end < start - 2, f"the official step's handle went from {start} to {end} px"


def test_a_benchmark_row_times_every_variant_and_divides_them(one_thread):
    G = make_generator(img_resolution=32)
    row = drag_speed.bench_one(G, "tiny", 2, torch.device("cpu"), repeats=1)
    variants = ("ours", "ours_render", "ours_bf16", "ours_bf16_render", "official")
    assert all(row[f"{v}_ms"] > 0 for v in variants)
    assert row["points"] == 2 and row["resolution"] == 32
    official = row["official_ms"]
    assert row["speedup"] == round(official / row["ours_render_ms"], 2)
    assert row["speedup_no_render"] == round(official / row["ours_ms"], 2)
    assert row["speedup_bf16"] == round(official / row["ours_bf16_render_ms"], 2)
    assert row["speedup_bf16_no_render"] == round(official / row["ours_bf16_ms"], 2)
