"""Reports of bench/quality.py: runs of one task set merged, and the README's table.

With one preset per process, two processes share two cores; `merge_reports` puts their
reports into one, and `markdown_table` prints it as bench/README.md shows it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from quality_metrics import aggregate, ratios

SAME_IN_A_MERGE = ("model", "max_steps", "masked")  # what the task list does not pin down


def setting_differences(report: dict[str, Any], first: dict[str, Any]) -> list[str]:
    """The settings of `SAME_IN_A_MERGE` in which ``report`` differs from ``first``."""
    mine, theirs = report.get("settings", {}), first.get("settings", {})
    return [k for k in SAME_IN_A_MERGE if mine.get(k) != theirs.get(k)]


def _differences(report: dict[str, Any], first: dict[str, Any]) -> list[str]:
    """What makes ``report`` another experiment than ``first``: its tasks (and so the task
    seed and count), what the detector found before the drags, or a setting."""
    keys = [k for k in ("tasks", "start") if report[k] != first[k]]
    return keys + setting_differences(report, first)


def merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from runs of the same task set with different presets.

    With one preset per process, two processes share two cores; this puts their reports
    into one table. Aggregates are recomputed from the tasks' rows, so a report written
    before a column existed gets that column too. The inputs are not changed.

    Raises:
        ValueError: no reports, reports of different task sets or settings, or a preset
            in more than one report.
    """
    if not reports:
        raise ValueError("nothing to merge: give at least one report")
    first = reports[0]
    kinds = list(first["start"]["md_by_kind"])
    presets: dict[str, Any] = {}
    for i, report in enumerate(reports):
        differences = _differences(report, first)
        if differences:
            raise ValueError(f"report {i} differs from report 0 in {', '.join(differences)}")
        for name, preset in report["presets"].items():
            if name in presets:
                raise ValueError(f"preset {name!r} is in more than one report")
            fd = preset["aggregate"].get("fd")
            agg = aggregate(preset["per_task"], kinds, math.nan if fd is None else fd)
            presets[name] = {**preset, "aggregate": agg}
    merged = {k: v for k, v in first.items() if k != "ours_over_paper"} | {"presets": presets}
    if "ours" in presets and "paper" in presets:
        merged["ours_over_paper"] = ratios(
            presets["ours"]["aggregate"], presets["paper"]["aggregate"]
        )
    return merged


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def markdown_table(report: dict[str, Any]) -> str:
    """The bench/README.md table: a row before the drag, one per preset, then ours / paper."""
    kinds = list(report["start"]["md_by_kind"])
    head = (
        "| preset | MD px | MD " + " / ".join(kinds) + " px | tracked MD px | image MD px | "
        "image success | tracked success | detected success | confirmed success | "
        "success off the outline | false arrivals | converged | steps | s / drag | "
        "pixel change outside | feature change outside | far PSNR dB | far colour shift | "
        "protected PSNR dB | FD |"
    )
    lines = [head, "|---" + "|---:" * 19 + "|"]
    start = report["start"]
    by_kind = " / ".join(_fmt(start["md_by_kind"][k]) for k in kinds)
    blank = " |" * 16
    md, fd = _fmt(start["md"]), _fmt(start["fd"])
    lines.append(f"| before the drag | {md} | {by_kind} |{blank} {fd} |")
    rows = [(name, p["aggregate"]) for name, p in report["presets"].items()]
    if "ours_over_paper" in report:
        rows.append(("ours / paper", report["ours_over_paper"]))
    for name, agg in rows:
        ratio = name == "ours / paper"
        by_kind = " / ".join(_fmt(agg.get("md_by_kind", {}).get(k)) for k in kinds)
        cells = [
            _fmt(agg.get("md")),
            by_kind if "md_by_kind" in agg else "",
            _fmt(agg.get("md_tracked")),
            _fmt(agg.get("md_image")),
            _fmt(agg.get("image_success_rate")),
            _fmt(agg.get("success_rate")),
            _fmt(agg.get("detected_success_rate")),
            _fmt(agg.get("confirmed_success_rate")),
            _fmt(agg.get("off_outline_success_rate")),
            _fmt(agg.get("false_arrivals")),
            _fmt(agg.get("converged_rate")),
            _fmt(agg.get("steps"), 2 if ratio else 1),
            _fmt(agg.get("seconds")),
            _fmt(agg.get("pixel_change")),
            _fmt(agg.get("feature_change"), 3),
            _fmt(agg.get("far_psnr"), 1),
            _fmt(agg.get("far_colour_shift"), 1),
            _fmt(agg.get("protected_psnr"), 1),
            _fmt(agg.get("fd")),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
