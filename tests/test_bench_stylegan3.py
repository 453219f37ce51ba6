"""bench/drag_speed.py and bench/generator_speed.py with ``--stylegan3``: one row times a
StyleGAN2 and StyleGAN3s of the same resolution and divides them (no speed is asserted)."""

from __future__ import annotations

import torch

from conftest import load_bench, make_generator
from draggan_widget.gan.stylegan3 import Generator as StyleGAN3Generator

drag_speed = load_bench("drag_speed")
generator_speed = load_bench("generator_speed")


def tiny_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    sg3 = StyleGAN3Generator(
        z_dim=16,
        c_dim=0,
        w_dim=16,
        img_resolution=32,
        synthesis_kwargs={"channel_base": 256, "channel_max": 8, "num_layers": 6},
    )
    return {"stylegan2": make_generator(img_resolution=32), "stylegan3_t": sg3.eval()}


def test_drag_speed_row_times_stylegan3_against_stylegan2(one_thread):
    row = drag_speed.bench_stylegan3(tiny_models(), 1, torch.device("cpu"), repeats=1)
    assert row["resolution"] == 32 and row["feature_res"] == 32
    assert row["feature_layers"] == {"stylegan3_t": "L5_32_8"}  # the last layer at 32 x 32
    for name in ("stylegan2", "stylegan3_t"):
        assert row[f"{name}_ms"] > 0 and row[f"{name}_render_ms"] > 0
    assert row["stylegan3_t_over_stylegan2"] == round(
        row["stylegan3_t_ms"] / row["stylegan2_ms"], 2
    )


def test_generator_speed_row_times_stylegan3_against_stylegan2(one_thread):
    row = generator_speed.bench_stylegan3(tiny_models(), torch.device("cpu"), repeats=1)
    assert row["resolution"] == 32 and row["stylegan3_t_ms"] > 0
    assert row["stylegan3_t_over_stylegan2"] == round(
        row["stylegan3_t_ms"] / row["stylegan2_ms"], 2
    )


def test_stylegan3_like_builds_nvidias_configs():
    for config in ("T", "R"):
        G = generator_speed.stylegan3_like(256, config)
        assert G.config_name == config and G.num_ws == 16
        assert G.synthesis.layer_names[0] == ("L0_36_512" if config == "T" else "L0_36_1024")
