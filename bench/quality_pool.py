"""Paper against ours over several task sets of bench/quality.py, with bootstrap intervals.

One 24-task set decides little: a success rate over 24 drags moves by 4 points per drag,
and its sampling error is about 10 points. This pools the reports of several task sets
(one preset per file is fine: files of the same set are merged first) and says, for each
column the issue sets a goal on, how far ours is from the paper over all their tasks, with
a 95% interval from a paired bootstrap, and how often a new set of the same size, drawn
like these, would meet the goal.

    PYTHONPATH=. python bench/quality_pool.py runs/quality/*.json --table
    # --draws 4000, --hidden-tasks 24 (the size of the imagined new set), --out FILE.json,
    # --presets paper "ours:anchor=0" (a variant against the paper)

The bootstrap resamples tasks, the same ones for both presets (a hard task is hard for
both), within each task kind (1, 5 and all landmarks), so every draw keeps the sets' mix.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
from common import emit
from quality_metrics import confirmed
from quality_report import SAME_IN_A_MERGE, merge_reports, setting_differences

Compare = Literal["difference", "ratio", "level"]
PRESETS = ("paper", "ours")  # the baseline, then the preset set against it


@dataclass(frozen=True)
class Metric:
    """One compared column: a per-task field, how ours is set against the paper, the goal.

    Attributes:
        label: the column's name in the table.
        field: the per-task row field (booleans count as 0 / 1; None, a task the column
            does not apply to, is left out).
        compare: ``difference`` (ours - paper), ``ratio`` (ours / paper) or ``level``
            (ours alone, an absolute goal), of the tasks' means or medians.
        goal: the issue's bound: a difference or level at least this, a ratio at most
            this; None where the issue sets none.
        median: compare medians over tasks instead of means.
        masked: the goal holds for masked pools only (True), unmasked only (False), or both.
    """

    label: str
    field: str
    compare: Compare
    goal: Optional[float]
    median: bool = False
    masked: Optional[bool] = None

    def statistic(self, values: np.ndarray, axis: Optional[int] = None) -> np.ndarray:
        """The tasks' median or mean, whichever this column compares (NaN tasks left out)."""
        return (np.nanmedian if self.median else np.nanmean)(values, axis=axis)

    def applies(self, masked: bool) -> bool:
        """Whether this column's goal is one a pool of masked (or unmasked) drags has."""
        return self.goal is not None and self.masked in (None, masked)

    def meets(self, value: np.ndarray) -> np.ndarray:
        """Whether each value meets the goal (all False without one)."""
        if self.goal is None:
            return np.zeros(np.shape(value), dtype=bool)
        return value <= self.goal if self.compare == "ratio" else value >= self.goal


#: Success is judged by the image (`quality_locate`, or the detector on landmarks); the
#: tracker's own verdict is a diagnostic. The goals: unmasked, 15 points more drags land
#: than the paper's with the far image at 30 dB (median); masked, 30% land with the
#: protected region at 35 dB. PSNR in dB.
METRICS: tuple[Metric, ...] = (
    Metric("image success", "success_image", "difference", 0.15, masked=False),
    Metric("image success rate", "success_image", "level", 0.30, masked=True),
    Metric("success (tracked)", "success", "difference", None),
    Metric("detected success", "success_detected", "difference", 0.15),
    Metric("confirmed success", "confirmed", "difference", None),
    Metric("success off the outline", "success_off_outline", "difference", None),
    Metric("MD", "md", "ratio", 0.7),
    Metric("tracked MD", "md_tracked", "ratio", None),
    Metric("pixel change outside", "pixel_change", "ratio", 1.0),
    Metric("far PSNR dB", "far_psnr", "difference", None),
    Metric("median far PSNR dB", "far_psnr", "level", 30.0, median=True, masked=False),
    Metric("far colour shift", "far_colour_shift", "ratio", None),
    Metric("protected PSNR dB", "protected_psnr", "difference", None),
    Metric("median protected PSNR dB", "protected_psnr", "level", 35.0, median=True, masked=True),
)
#: The goal, all at once, of a pool of unmasked (False) or masked (True) drags.
GOALS = {
    False: ("image success", "median far PSNR dB"),
    True: ("image success rate", "median protected PSNR dB"),
}


def task_sets(
    reports: Sequence[dict[str, Any]], presets: Sequence[str] = PRESETS
) -> list[dict[str, Any]]:
    """The reports grouped by task set, each group merged into one report (`merge_reports`),
    in the order of the sets' seeds.

    Raises:
        ValueError: a set lacks one of ``presets``, or the sets differ in a setting that a
            pool must share (the model, the step limit, masked or not).
    """
    groups: list[list[dict[str, Any]]] = []
    for report in reports:
        for group in groups:
            if group[0]["tasks"] == report["tasks"]:
                group.append(report)
                break
        else:
            groups.append([report])
    merged = [merge_reports(group) for group in groups]
    seeds = [m.get("settings", {}).get("seed") for m in merged]
    if None not in seeds:  # in the order of their seeds, however the files were listed
        merged = [m for _, m in sorted(zip(seeds, merged), key=lambda pair: pair[0])]
    for i, report in enumerate(merged):
        missing = [p for p in presets if p not in report["presets"]]
        if missing:
            raise ValueError(f"task set {_name(report, i)} has no {' or '.join(missing)} run")
        differ = setting_differences(report, merged[0])
        if differ:
            raise ValueError(
                f"task set {_name(report, i)} differs from the first in {', '.join(differ)}"
            )
    return merged


def _name(report: dict[str, Any], index: int) -> str:
    seed = report.get("settings", {}).get("seed")
    return f"seed {seed}" if seed is not None else f"#{index}"


def _values(rows: Sequence[dict[str, Any]], field: str) -> np.ndarray:
    if field == "confirmed":
        return np.array([confirmed(r) for r in rows], dtype=float)
    return np.array([r.get(field) for r in rows], dtype=float)  # older reports lack some


def paired(report: dict[str, Any], presets: Sequence[str] = PRESETS) -> dict[str, Any]:
    """Per-task values of both presets, in the same task order, and each task's kind."""
    order = [sorted(report["presets"][p]["per_task"], key=lambda r: r["task"]) for p in presets]
    if [r["task"] for r in order[0]] != [r["task"] for r in order[1]]:
        raise ValueError(f"{' and '.join(presets)} dragged different tasks")
    both = {m.field: tuple(_values(rows, m.field) for rows in order) for m in METRICS}
    return {"kind": np.array([r["kind"] for r in order[0]]), **both}


def compare(metric: Metric, paper: np.ndarray, ours: np.ndarray, axis: int = -1) -> np.ndarray:
    """Ours against the paper over tasks (the last axis): difference, ratio or ours' level,
    of means or medians."""
    a, b = metric.statistic(paper, axis), metric.statistic(ours, axis)
    if metric.compare == "level":
        return b
    if metric.compare == "difference":
        return b - a
    return np.divide(b, a, out=np.full(np.shape(a), np.nan), where=a != 0)


def resample(
    kinds: np.ndarray, sizes: dict[str, int], draws: int, rng: np.random.Generator
) -> np.ndarray:
    """``[draws, n]`` task indices: ``sizes[k]`` tasks of each kind, with replacement."""
    parts = [
        rng.choice(np.flatnonzero(kinds == kind), size=(draws, n), replace=True)
        for kind, n in sizes.items()
    ]
    return np.concatenate(parts, axis=1)


def _mix(kinds: np.ndarray, counts: np.ndarray, n: int) -> dict[str, int]:
    """How many of ``n`` tasks each kind gets, in the pooled tasks' proportions (one at least)."""
    share = counts / counts.sum()
    return {str(k): int(c) for k, c in zip(kinds, np.maximum(1, np.round(share * n)))}


def pool(
    reports: Sequence[dict[str, Any]],
    *,
    draws: int = 2000,
    hidden_tasks: Optional[int] = None,
    seed: int = 0,
    presets: Sequence[str] = PRESETS,
) -> dict[str, Any]:
    """Per set and pooled comparisons, intervals, and the chance a new set meets the goal.

    Args:
        reports: `bench/quality.py` reports, one or more presets each.
        draws: bootstrap resamples.
        hidden_tasks: size of the imagined new task set; default the sets' mean size.
        seed: the bootstrap's seed (the result is deterministic).
        presets: the baseline and the preset set against it, as the reports name them
            (``"ours:anchor=0"`` for a variant).

    Returns:
        ``{"settings", "sets", "pooled", "new_set"}``: ``pooled`` has, per metric, the
        baseline's and the other preset's means over every task (``paper``, ``ours``),
        the comparison and its 95% interval; ``new_set`` the share of drawn sets of
        ``hidden_tasks`` tasks that meet each goal (``per_metric``) and all of the pool's
        `GOALS` at once (``goal``; None when the tasks lack a column it needs).
    """
    if len(presets) != 2:
        raise ValueError(f"compare two presets, a baseline and another, got {list(presets)}")
    sets = task_sets(reports, presets)
    if not sets:
        raise ValueError("nothing to pool: give at least one report")
    data = [paired(s, presets) for s in sets]
    kinds = np.concatenate([d["kind"] for d in data])
    values = {
        m.field: tuple(np.concatenate([d[m.field][i] for d in data]) for i in (0, 1))
        for m in METRICS
    }
    # a column no task of a preset has is left out: MD of random tasks, protected PSNR of
    # unmasked ones, or a column added after the reports were written
    metrics = [m for m in METRICS if all(np.isfinite(v).any() for v in values[m.field])]
    rng = np.random.default_rng(seed)
    unique, counts = np.unique(kinds, return_counts=True)
    pooled_idx = resample(kinds, dict(zip(unique, counts)), draws, rng)
    new_sizes = _mix(unique, counts, hidden_tasks or round(len(kinds) / len(sets)))
    new_idx = resample(kinds, new_sizes, draws, rng)
    masked = bool(sets[0].get("settings", {}).get("masked", False))
    pooled, new_set, met = {}, {}, np.ones(draws, dtype=bool)
    for m in metrics:
        paper, ours = values[m.field]
        boot = compare(m, paper[pooled_idx], ours[pooled_idx])
        pooled[m.label] = {
            "paper": float(m.statistic(paper)),
            "ours": float(m.statistic(ours)),
            "compare": m.compare,
            "value": float(compare(m, paper, ours)),
            "interval": [float(q) for q in np.nanpercentile(boot, [2.5, 97.5])],
            "goal": m.goal if m.applies(masked) else None,
        }
        if m.applies(masked):
            hits = m.meets(compare(m, paper[new_idx], ours[new_idx]))
            new_set[m.label] = float(hits.mean())
            if m.label in GOALS[masked]:
                met &= hits
    measured = all(label in new_set for label in GOALS[masked])
    new_set = {
        "per_metric": new_set,
        "goal_columns": list(GOALS[masked]),
        "goal": float(met.mean()) if measured else None,
    }
    per_set = [
        {
            "set": _name(s, i),
            "tasks": len(d["kind"]),
            **{m.label: float(compare(m, *d[m.field])) for m in metrics},
        }
        for i, (s, d) in enumerate(zip(sets, data))
    ]
    return {
        "settings": {
            "draws": draws,
            "seed": seed,
            "tasks": len(kinds),
            "new_set_tasks": int(sum(new_sizes.values())),
            "presets": list(presets),
            "masked": masked,
            **{k: sets[0].get("settings", {}).get(k) for k in SAME_IN_A_MERGE},
        },
        "sets": per_set,
        "pooled": pooled,
        "new_set": new_set,
    }


def _signed(metric: Metric, value: Optional[float]) -> str:
    if value is None:
        return "-"
    return {"difference": f"{value:+.2f}", "ratio": f"{value:.2f}x", "level": f"{value:.2f}"}[
        metric.compare
    ]


def _goal(goal: Optional[float], metric: Metric) -> str:
    if goal is None:
        return ""
    return f"<= {goal:.2f}x" if metric.compare == "ratio" else f">= {_signed(metric, goal)}"


def _chance(chance: Optional[float]) -> str:
    return "not measured" if chance is None else f"{chance:.2f}"


def markdown_tables(summary: dict[str, Any]) -> str:
    """Per set, then pooled with intervals and the chance a new set meets each goal."""
    metrics = [m for m in METRICS if m.label in summary["pooled"]]
    head = "| set | tasks | " + " | ".join(m.label for m in metrics) + " |"
    lines = [head, "|---|---:" + "|---:" * len(metrics) + "|"]
    for row in summary["sets"]:
        cells = [_signed(m, row[m.label]) for m in metrics]
        lines.append(f"| {row['set']} | {row['tasks']} | " + " | ".join(cells) + " |")
    n_new = summary["settings"]["new_set_tasks"]
    base, other = summary["settings"]["presets"]
    lines += [
        "",
        f"| column | {base} | {other} | {other} vs {base} | 95% interval | goal | "
        f"new {n_new}-task sets meeting it |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for m in metrics:
        p = summary["pooled"][m.label]
        low, high = (_signed(m, v) for v in p["interval"])
        chance = summary["new_set"]["per_metric"].get(m.label)
        lines.append(
            f"| {m.label} | {p['paper']:.2f} | {p['ours']:.2f} | {_signed(m, p['value'])} | "
            f"{low} to {high} | {_goal(p['goal'], m)} | "
            f"{'' if chance is None else f'{chance:.2f}'} |"
        )
    goal, chance = " and ".join(summary["new_set"]["goal_columns"]), summary["new_set"]["goal"]
    lines.append(f"| the goal: {goal} at once | | | | | | {_chance(chance)} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="bench/quality.py JSON reports")
    parser.add_argument("--draws", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument(
        "--hidden-tasks", type=int, default=None, dest="hidden_tasks", help="new set size"
    )
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    parser.add_argument(
        "--presets", nargs=2, default=list(PRESETS), help="the baseline, then the other preset"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--table", action="store_true", help="print the markdown tables too")
    args = parser.parse_args(argv)
    if args.draws < 1 or (args.hidden_tasks is not None and args.hidden_tasks < 1):
        parser.error("--draws and --hidden-tasks must be at least 1")
    try:
        reports = [json.loads(path.read_text()) for path in args.reports]
        summary = pool(
            reports,
            draws=args.draws,
            hidden_tasks=args.hidden_tasks,
            seed=args.seed,
            presets=args.presets,
        )
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    except KeyError as exc:
        parser.error(f"not a report of bench/quality.py, it has no {exc}")
    emit(summary, args.out, markdown_tables if args.table else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
