"""bench/quality_pool.py: sets grouped and checked, paired comparisons, honest intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import load_bench

pool_mod = load_bench("quality_pool")
KINDS = ("1", "5", "all")


def _row(
    task: int, *, success: bool, detected: bool, md: float, change: float, psnr: float = 32.0
) -> dict:
    return {
        "task": task,
        "kind": KINDS[task % 3],
        "md": md,
        "md_tracked": md,
        "success": success,
        "success_detected": detected,
        "success_image": success,
        "far_psnr": psnr,
        "success_off_outline": None if task % 4 == 3 else success,  # an outline-only task
        "tracked_px": [md],
        "detected_px": [md],
        "converged": success,
        "steps": 10,
        "seconds": 0.1,
        "calls": 10,
        "pixel_change": change,
        "feature_change": 0.1,
    }


def _report(seed: int, presets: dict[str, list[dict]], *, masked: bool = False) -> dict:
    """A report as bench/quality.py writes it, with only what pooling reads filled in."""
    n = len(next(iter(presets.values())))
    return {
        "settings": {"model": "default", "seed": seed, "max_steps": 200, "masked": masked},
        "tasks": [{"seed_a": seed, "index": i} for i in range(n)],
        "start": {"md": 5.0, "md_by_kind": dict.fromkeys(KINDS, 5.0), "fd": 0.3},
        "presets": {
            name: {"config": {}, "aggregate": {"fd": 0.3}, "per_task": rows}
            for name, rows in presets.items()
        },
    }


def _rows(n: int, rng: np.random.Generator, *, p_success: float, md: float, change: float):
    return [
        _row(
            i,
            success=bool(rng.random() < p_success),
            detected=bool(rng.random() < p_success),
            md=md * rng.uniform(0.5, 1.5),
            change=change * rng.uniform(0.5, 1.5),
        )
        for i in range(n)
    ]


def test_identical_presets_compare_as_equal_with_no_spread():
    rows = _rows(12, np.random.default_rng(0), p_success=0.5, md=1.0, change=10.0)
    summary = pool_mod.pool([_report(0, {"paper": rows, "ours": rows})], draws=200)
    for label, p in summary["pooled"].items():
        want = {"difference": 0.0, "ratio": 1.0, "level": p["ours"]}[p["compare"]]
        assert p["value"] == pytest.approx(want), label
        if p["compare"] != "level":  # ours' own level varies over resampled tasks
            assert p["interval"] == pytest.approx([want, want]), label
    assert summary["new_set"]["per_metric"]["MD"] == 0.0  # 1.0x is not at most 0.7x
    assert summary["new_set"]["per_metric"]["median far PSNR dB"] == 1.0  # 32 dB >= 30
    assert summary["new_set"]["goal"] == 0.0  # no more drags land


def test_a_clear_win_is_certain_and_meets_the_goal_on_every_new_set():
    paper = [_row(i, success=False, detected=False, md=2.0, change=10.0) for i in range(12)]
    ours = [_row(i, success=True, detected=True, md=1.0, change=8.0) for i in range(12)]
    summary = pool_mod.pool([_report(0, {"paper": paper, "ours": ours})], draws=200)
    assert summary["pooled"]["success (tracked)"]["value"] == 1.0
    assert summary["pooled"]["success off the outline"]["paper"] == 0.0  # None left out
    assert summary["pooled"]["confirmed success"]["interval"] == [1.0, 1.0]
    assert summary["pooled"]["MD"]["value"] == pytest.approx(0.5)
    assert summary["pooled"]["pixel change outside"]["value"] == pytest.approx(0.8)
    assert summary["new_set"]["goal_columns"] == ["image success", "median far PSNR dB"]
    assert summary["new_set"]["goal"] == 1.0
    blurred = [dict(r, far_psnr=25.0) for r in ours]  # lands, but changes the far image
    summary = pool_mod.pool([_report(0, {"paper": paper, "ours": blurred})], draws=200)
    assert summary["new_set"]["goal"] == 0.0


def test_a_masked_pool_has_absolute_goals_on_landing_and_the_protected_region():
    rng = np.random.default_rng(7)
    paper = [_row(i, success=False, detected=False, md=2.0, change=1.0) for i in range(20)]
    ours = [
        dict(r, success_image=bool(rng.random() < 0.4), protected_psnr=36.0 + i % 3)
        for i, r in enumerate(paper)
    ]
    held = [dict(r, protected_psnr=49.0) for r in paper]
    summary = pool_mod.pool([_report(0, {"paper": held, "ours": ours}, masked=True)], draws=300)
    rate = summary["pooled"]["image success rate"]
    assert rate["ours"] == pytest.approx(np.mean([r["success_image"] for r in ours]))
    assert rate["value"] == rate["ours"] and rate["goal"] == 0.30
    assert summary["pooled"]["median protected PSNR dB"]["ours"] == pytest.approx(37.0)
    assert summary["pooled"]["image success"]["goal"] is None  # an unmasked pool's goal
    assert summary["new_set"]["goal_columns"] == ["image success rate", "median protected PSNR dB"]
    assert 0 < summary["new_set"]["goal"] < 1  # 40% land: most new sets, not all
    assert "| image success rate | 0.00 |" in pool_mod.markdown_tables(summary)


def test_one_preset_per_file_is_merged_per_set_and_pooled_across_sets():
    rng = np.random.default_rng(1)
    a_paper, a_ours = (_rows(9, rng, p_success=p, md=1.0, change=10.0) for p in (0.4, 0.6))
    b = {
        p: _rows(9, rng, p_success=s, md=1.2, change=9.0)
        for p, s in (("paper", 0.5), ("ours", 0.7))
    }
    reports = [_report(3, b), _report(0, {"paper": a_paper}), _report(0, {"ours": a_ours})]
    summary = pool_mod.pool(json.loads(json.dumps(reports)), draws=300, seed=4)
    assert [s["set"] for s in summary["sets"]] == ["seed 0", "seed 3"]
    assert summary["settings"]["tasks"] == 18 and summary["settings"]["new_set_tasks"] == 9
    success = summary["pooled"]["success (tracked)"]
    every = [r["success"] for r in a_paper + b["paper"]], [r["success"] for r in a_ours + b["ours"]]
    assert success["value"] == pytest.approx(np.mean(every[1]) - np.mean(every[0]))
    low, high = success["interval"]
    assert low <= success["value"] <= high and high - low > 0.1  # 18 tasks decide little
    again = pool_mod.pool(reports, draws=300, seed=4)
    assert again == summary  # seeded: the same intervals every run
    tables = pool_mod.markdown_tables(summary)
    assert "| seed 3 | 9 |" in tables and "9-task sets" in tables
    widths = {line.count("|") for line in tables.splitlines() if line}
    assert len(widths) == 2 and 8 in widths  # the per-set table's rows, the pooled table's


def test_wider_pools_give_narrower_intervals():
    def width(n_sets: int) -> float:
        rng = np.random.default_rng(2)
        reports = [
            _report(
                s,
                {
                    "paper": _rows(12, rng, p_success=0.5, md=1.0, change=10.0),
                    "ours": _rows(12, rng, p_success=0.6, md=0.8, change=9.0),
                },
            )
            for s in range(n_sets)
        ]
        low, high = pool_mod.pool(reports, draws=400)["pooled"]["MD"]["interval"]
        return high - low

    assert width(8) < width(1)


def test_sets_that_cannot_be_pooled_are_refused():
    rows = _rows(6, np.random.default_rng(3), p_success=0.5, md=1.0, change=10.0)
    with pytest.raises(ValueError, match="seed 0 has no ours"):
        pool_mod.pool([_report(0, {"paper": rows})])
    both = {"paper": rows, "ours": rows}
    with pytest.raises(ValueError, match="differs from the first in masked"):
        pool_mod.pool([_report(0, both), _report(1, both, masked=True)])
    with pytest.raises(ValueError, match="nothing to pool"):
        pool_mod.pool([])


def test_the_command_line_explains_a_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"presets": {}}))
    with pytest.raises(SystemExit):
        pool_mod.main([str(bad)])
    assert "not a report of bench/quality.py" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pool_mod.main([str(tmp_path / "missing.json")])
    assert "missing.json" in capsys.readouterr().err


def test_a_variant_is_set_against_the_paper_by_its_name():
    rng = np.random.default_rng(5)
    rows = {p: _rows(9, rng, p_success=0.5, md=1.0, change=10.0) for p in ("paper", "ours")}
    variant = [dict(r, md=0.5 * r["md"]) for r in rows["ours"]]
    report = _report(0, {**rows, "ours:anchor=0": variant})
    summary = pool_mod.pool([report], draws=100, presets=("paper", "ours:anchor=0"))
    want = np.mean([r["md"] for r in variant]) / np.mean([r["md"] for r in rows["paper"]])
    assert summary["pooled"]["MD"]["value"] == pytest.approx(want)
    assert "| column | paper | ours:anchor=0 | ours:anchor=0 vs paper |" in (
        pool_mod.markdown_tables(summary)
    )
    with pytest.raises(ValueError, match="seed 0 has no ours:settle=1"):
        pool_mod.pool([report], presets=("paper", "ours:settle=1"))


def test_image_success_and_psnr_are_compared_where_the_tasks_have_them():
    paper = [
        _row(i, success=True, detected=False, md=2.0, change=10.0)
        | {"success_image": False, "far_psnr": 18.0}
        for i in range(6)
    ]
    ours = [dict(r, success_image=i % 2 == 0, far_psnr=30.0) for i, r in enumerate(paper)]
    summary = pool_mod.pool([_report(0, {"paper": paper, "ours": ours})], draws=100)
    assert summary["pooled"]["image success"]["value"] == pytest.approx(0.5)
    assert summary["pooled"]["far PSNR dB"]["value"] == pytest.approx(12.0)
    assert "protected PSNR dB" not in summary["pooled"]  # unmasked: no task has it
    tables = pool_mod.markdown_tables(summary)
    assert "| image success |" in tables and "protected PSNR" not in tables
