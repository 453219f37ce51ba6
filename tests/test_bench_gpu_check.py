"""bench/gpu_check.py in its CPU mode, so that the GPU script cannot rot between GPU runs."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import load_bench
from draggan_widget.gan import stylegan2

gpu_check = load_bench("gpu_check")


@pytest.mark.slow
def test_the_quick_cpu_run_writes_every_section(tmp_path):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    sections = report["sections"]
    assert set(sections) == set(gpu_check.SECTIONS)
    assert not [name for name, s in sections.items() if "error" in s or "skipped" in s]
    assert frozenset({"cuda"}) == stylegan2.FP16_DEVICE_TYPES  # forced for parity, then reset

    cond = sections["parity"]["pickles"]["sg2_32_cond_clamp"]
    assert cond["fp16_blocks"] == [16, 32] and 0 < cond["fp16_max_diff"] <= gpu_check.ONE_LEVEL
    assert sections["parity"]["ok"]

    assert {(r["resolution"], r["points"]) for r in sections["speed"]["rows"]} == {
        (64, 1),
        (64, 5),
    }
    assert all(r["official_ms"] > 0 and r["ours_render_ms"] > 0 for r in sections["speed"]["rows"])

    (memory,) = sections["memory"]["rows"]  # one row: a fresh process per variant
    assert memory["measure"] == "peak RSS"
    assert all(memory[f"{v}_peak_mib"] > 100 for v in gpu_check.VARIANTS)  # torch alone is more

    assert sections["long_drag"]["ok"] and sections["long_drag"]["first_non_finite_step"] is None
    syncs = sections["host_syncs"]
    assert len(syncs["per_step_without_frame"]) == len(syncs["per_step_with_frame"]) == 3
    assert min(syncs["per_step_without_frame"]) >= 1  # the step reads the loss; zero = blind
    frames = sections["frames"]
    assert frames["ok"] and frames["frames_per_second"] > 0 and frames["steps"] == 5


def test_scalar_reads_are_counted_as_syncs():
    x = torch.ones(3)
    with gpu_check.ScalarReads() as reads:
        float(x.sum())
        bool(x.all())
        y = x * 2  # no read: stays on the device
    assert reads.count == 2 and y.shape == (3,)
