"""bench/drag_speed.py and its baseline: the official step really drags, and one benchmark
row holds every variant's time and the ratios computed from them (no speed is asserted)."""

from __future__ import annotations

import numpy as np
import torch

from conftest import load_bench, make_generator
from draggan_widget import DragConfig, load_generator

drag_speed = load_bench("drag_speed")
official_step = load_bench("official_step")
phases = load_bench("phases")


def test_the_official_baseline_moves_its_handle_toward_the_target(one_thread):
    """A baseline that did not drag would make the speed ratios meaningless."""
    G = load_generator("default")
    k = G.img_resolution / 64  # (x, y): a cheek point, an eighth of the side to the right
    handle, target = (22.0 * k, 40.0 * k), (30.0 * k, 40.0 * k)
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None)
    step = official_step.OfficialStep(G, ws.detach(), [handle], [target], feature_res=64)
    start = np.hypot(*np.subtract(step.targets[0], step.points[0]))
    for _ in range(40):
        step.step()
    end = np.hypot(*np.subtract(step.targets[0], step.points[0]))
    assert end < start - 2 * k, f"the official step's handle went from {start} to {end} px"


def test_a_benchmark_row_times_every_variant_and_divides_them(one_thread):
    G = make_generator(img_resolution=32)
    row = drag_speed.bench_one(G, "tiny", 2, torch.device("cpu"), repeats=1)
    variants = ("ours", "ours_render", "ours_auto", "ours_auto_render", "official")
    assert all(row[f"{v}_ms"] > 0 for v in variants)
    assert row["points"] == 2 and row["resolution"] == 32
    assert row["auto_runs"] in ("float32", "bfloat16")
    official = row["official_ms"]
    assert row["speedup"] == round(official / row["ours_render_ms"], 2)
    assert row["speedup_no_render"] == round(official / row["ours_ms"], 2)
    assert row["speedup_auto"] == round(official / row["ours_auto_render_ms"], 2)
    assert row["speedup_auto_no_render"] == round(official / row["ours_auto_ms"], 2)


def test_the_phase_table_times_every_phase_against_its_floor(one_thread):
    G = make_generator(img_resolution=32)
    cfg = DragConfig(stop_distance=0.5)
    rows = phases.phase_rows(G, cfg, drag_speed.make_points(32, 1), torch.device("cpu"), 1)
    assert set(rows) == {"forward", "backward", "tracking", "finish", "encode"}
    for row in rows.values():
        assert row["ours_ms"] > 0 and row["floor_ms"] > 0
        assert row["ratio"] == round(row["ours_ms"] / row["floor_ms"], 2)


def test_the_floor_chain_has_the_synthesis_shapes():
    """The forward floor ends on the feature block's shape, so it does the same convolutions."""
    G = make_generator(img_resolution=32)
    const = G.synthesis.b4.const.detach()[None]
    out = phases.plain_chain(G, 0, 16)(const)
    assert (
        out.shape
        == G.synthesis.begin(G.mapping(torch.randn(1, G.z_dim), None), until_res=16).x.shape
    )
