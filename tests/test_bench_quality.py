"""bench/quality.py: deterministic, filtered tasks; metrics with known answers; a tiny run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import load_bench, make_generator
from draggan_widget.train.faces import LANDMARK_NAMES, render_dataset
from draggan_widget.train.landmarks import LandmarkNet

quality = load_bench("quality")
metrics = load_bench("quality_metrics")
tasks_mod = load_bench("quality_tasks")
K = len(LANDMARK_NAMES)


def _fake_landmarks(size: int, spread: float):
    """Image seed -> landmarks scattered around the centre, some near or past the border."""

    def landmarks_of(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return (size / 2 + rng.normal(0, spread, size=(K, 2))).astype(np.float32)

    return landmarks_of


def test_make_tasks_is_deterministic_per_seed():
    limits = quality.Limits.for_size(64)
    args = dict(size=64, limits=limits)
    one = quality.make_tasks(_fake_landmarks(64, 3.0), 6, seed=3, **args)
    two = quality.make_tasks(_fake_landmarks(64, 3.0), 6, seed=3, **args)
    other = quality.make_tasks(_fake_landmarks(64, 3.0), 6, seed=4, **args)
    assert one == two
    assert one != other
    assert [t.kind for t in one] == ["1", "5", "all"] * 2
    assert [len(t.points) for t in one] == [1, 5, K] * 2


def test_make_tasks_keeps_targets_inside_and_distances_in_range():
    size, limits = 64, quality.Limits(min_dist=3.0, max_dist=12.0, margin=4.0)
    tasks = quality.make_tasks(
        _fake_landmarks(size, 14.0), 8, seed=0, size=size, limits=limits, kinds=(1, 5)
    )
    for task in tasks:
        for points in (task.handles, task.targets):
            arr = np.asarray(points)
            assert (arr >= limits.margin).all() and (arr <= size - limits.margin).all()
        dist = np.linalg.norm(np.subtract(task.targets, task.handles), axis=1)
        assert (dist >= limits.min_dist).all() and (dist <= limits.max_dist).all()


def test_make_tasks_says_when_the_limits_reject_everything():
    limits = quality.Limits(min_dist=100.0, max_dist=200.0, margin=0.0)
    with pytest.raises(RuntimeError, match="loosen the limits"):
        quality.make_tasks(_fake_landmarks(64, 3.0), 2, seed=0, size=64, limits=limits)


def test_pick_points_all_rejects_a_pair_with_one_landmark_off_the_image():
    handles = np.full((4, 2), 30.0)
    targets = handles + [3.0, 0.0]
    limits = quality.Limits(min_dist=1.0, max_dist=10.0, margin=2.0)
    rng = np.random.default_rng(0)
    assert quality.pick_points(handles, targets, None, rng, size=64, limits=limits) == (0, 1, 2, 3)
    targets[2] = (63.0, 30.0)
    assert quality.pick_points(handles, targets, None, rng, size=64, limits=limits) is None


def test_mean_distance_and_edit_region_known_answers():
    assert (
        quality.mean_distance(np.array([[0.0, 0.0], [1.0, 1.0]]), [[3.0, 4.0], [1.0, 1.0]]) == 2.5
    )
    region = quality.edit_region(np.array([[2.0, 8.0]]), np.array([[14.0, 8.0]]), size=16, radius=2)
    assert region[7, 2:14].all() and region[8, 0:16].sum() == 16  # the segment and its ends
    assert not region[0].any() and not region[15].any()
    assert region.sum() < 16 * 16 / 2


def test_success_off_the_outline_leaves_out_only_outline_landmarks():
    names = list(quality.LANDMARK_NAMES)
    chin, jaw = names.index("chin.tip"), names.index("outline.3")
    nose = names.index("nose.tip")
    assert {chin, jaw} <= quality.OUTLINE and nose not in quality.OUTLINE
    assert len(quality.OUTLINE) == 9
    assert quality.success_off_outline((nose, chin, jaw), (1.5, 6.0, 3.0)) is True
    assert quality.success_off_outline((nose, chin), (2.5, 0.1)) is False
    assert quality.success_off_outline((chin, jaw), (0.1, 0.1)) is None


def test_false_arrivals_count_tracked_arrivals_the_detector_refutes():
    rows = [
        {"tracked_px": [0.5, 1.0, 3.0], "detected_px": [0.4, 2.5, 0.2]},  # 1 of 2 refuted
        {"tracked_px": [1.9], "detected_px": [4.0]},  # refuted; 3.0 above never arrived
    ]
    assert quality.false_arrivals(rows) == pytest.approx(2 / 3)
    assert math.isnan(quality.false_arrivals([{"tracked_px": [3.0], "detected_px": [0.1]}]))


def test_outside_pixel_change_ignores_the_region():
    before = np.zeros((16, 16, 3), np.uint8)
    region = np.zeros((16, 16), bool)
    region[4:8, 4:8] = True
    after = before.copy()
    after[region] = 200
    assert quality.outside_pixel_change(before, after, region) == 0.0
    after[~region] = 10
    assert quality.outside_pixel_change(before, after, region) == pytest.approx(10.0)
    assert math.isnan(quality.outside_pixel_change(before, after, np.ones((16, 16), bool)))


def test_outside_feature_change_is_zero_for_unchanged_images():
    torch.manual_seed(0)
    net = LandmarkNet(K).eval()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    region = np.zeros((64, 64), bool)
    region[:20, :20] = True
    assert quality.outside_feature_change(net, img, img, region) == 0.0
    assert quality.outside_feature_change(net, img, 255 - img, region) > 0.1


def test_parse_preset_changes_one_field_and_refuses_unknown_names():
    cfg = quality.parse_preset("ours:max_track_move=None,tracking=nearest")
    assert cfg.max_track_move is None and cfg.tracking == "nearest"
    assert cfg.anchor == quality.parse_preset("ours").anchor
    assert quality.parse_preset("paper").tracking == "nearest"
    with pytest.raises(ValueError, match="unknown preset"):
        quality.parse_preset("best")
    with pytest.raises(ValueError, match="no_such_field"):
        quality.parse_preset("ours:no_such_field=1")


def test_detector_is_trained_once_then_loaded(tmp_path):
    recipe = quality.DetectorRecipe(n_train=16, n_heldout=8, steps=2, batch=4, size=32)
    _, first = quality.load_or_train_detector(recipe, tmp_path)
    _, second = quality.load_or_train_detector(recipe, tmp_path)
    assert first["trained_now"] and not second["trained_now"]
    assert first["path"] == second["path"]
    other = quality.DetectorRecipe(n_train=16, n_heldout=8, steps=3, batch=4, size=32)
    assert other.cache_name() != recipe.cache_name()


def _mean_face_detector(marks: np.ndarray, size: int) -> LandmarkNet:
    """An untrained net whose output bias is the mean face: landmarks near where faces have
    them, moved a little by the random weights, so tasks differ without any training."""
    torch.manual_seed(0)
    net = LandmarkNet(K, heatmap=False)  # the global head locates
    with torch.no_grad():
        net.head.bias.copy_(torch.from_numpy(marks.mean(0).reshape(-1) / size))
    return net.eval()


def test_benchmark_runs_end_to_end_on_a_tiny_generator():
    G = make_generator(img_resolution=32)
    images, marks = render_dataset(32, size=32, seed=5)
    detector = _mean_face_detector(marks, 32)
    reference = detector.embed_images(images)
    limits = quality.Limits(min_dist=0.0, max_dist=32.0, margin=0.5)
    report = quality.run_benchmark(
        G,
        detector,
        reference,
        presets=["paper", "ours"],
        n_tasks=2,
        seed=0,
        max_steps=3,
        device=torch.device("cpu"),
        limits=limits,
    )
    assert [t["kind"] for t in report["tasks"]] == ["1", "5"]
    for preset in ("paper", "ours"):
        agg = report["presets"][preset]["aggregate"]
        assert 0 <= agg["success_rate"] <= 1 and 0 <= agg["steps"] <= 3
        both = min(agg["success_rate"], agg["detected_success_rate"])
        assert 0 <= agg["confirmed_success_rate"] <= both
        assert math.isfinite(agg["md"]) and math.isfinite(agg["fd"])
    assert "md" in report["ours_over_paper"]
    table = quality.markdown_table(quality.clean(report))
    assert table.count("\n") == 5 and "| ours / paper |" in table
    assert all(line.count("|") == 21 for line in table.splitlines())
    ours = report["presets"]["ours"]
    dragged = {quality.LANDMARK_NAMES[i] for t in report["tasks"] for i in t["points"]}
    assert set(ours["per_landmark"]) == dragged
    assert sum(e["n"] for e in ours["per_landmark"].values()) == 1 + 5
    for row, task in zip(ours["per_task"], report["tasks"]):
        assert len(row["tracked_px"]) == len(row["detected_px"]) == len(task["points"])
        assert row["success"] == (max(row["tracked_px"]) <= quality.SUCCESS_PX)
        assert len(row["image_px"]) == len(task["points"]) and row["protected_psnr"] is None
        assert row["success_image"] <= (max(row["image_px"]) <= quality.SUCCESS_PX)
    json.dumps(quality.clean(report), allow_nan=False)
    _check_merge_of_halves(quality.clean(report))


def _check_merge_of_halves(report: dict) -> None:
    """Split a two-preset report as two processes would write it; merging gives it back."""
    halves = []
    for name in ("paper", "ours"):
        half = {k: v for k, v in report.items() if k != "ours_over_paper"}
        halves.append(json.loads(json.dumps(half | {"presets": {name: report["presets"][name]}})))
    merged = quality.merge_reports(halves)
    for name in ("paper", "ours"):
        got, want = merged["presets"][name]["aggregate"], report["presets"][name]["aggregate"]
        for key in ("md", "success_rate", "steps", "pixel_change", "fd"):
            assert got[key] == pytest.approx(want[key], abs=1e-3)
    assert merged["ours_over_paper"]["md"] == pytest.approx(
        report["ours_over_paper"]["md"], abs=1e-3
    )
    with pytest.raises(ValueError, match="more than one report"):
        quality.merge_reports([halves[0], halves[0]])
    other = json.loads(json.dumps(halves[1]))
    other["tasks"][0]["seed_b"] += 1
    with pytest.raises(ValueError, match="differs from report 0 in tasks"):
        quality.merge_reports([halves[0], other])


def test_random_tasks_move_each_point_a_tenth_of_the_side_inside_the_margin():
    limits = quality.Limits.for_size(64)
    tasks = tasks_mod.make_random_tasks(20, seed=7, size=64, limits=limits)
    assert tasks == tasks_mod.make_random_tasks(20, seed=7, size=64, limits=limits)
    assert tasks != tasks_mod.make_random_tasks(20, seed=8, size=64, limits=limits)
    for task in tasks:
        assert task.kind == "random2" and task.points == () and task.seed_a == task.seed_b
        handles, targets = np.asarray(task.handles), np.asarray(task.targets)
        np.testing.assert_allclose(np.linalg.norm(targets - handles, axis=1), 6.4)
        assert np.linalg.norm(handles[0] - handles[1]) >= 6.4
        for arr in (handles, targets):
            assert (arr >= limits.margin).all() and (arr <= 64 - limits.margin).all()
    with pytest.raises(ValueError, match="does not fit"):
        tight = quality.Limits(min_dist=0.0, max_dist=1.0, margin=30.0)  # 4 px inside
        tasks_mod.make_random_tasks(1, seed=0, size=64, limits=tight)


def test_image_scores_judge_a_drag_by_the_image_alone():
    ys, xs = np.mgrid[:48, :64] + 0.5
    handles, targets = np.array([[20.0, 20.0]]), np.array([[25.0, 22.0]])

    def face(x: float, y: float) -> np.ndarray:
        blob = 200 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8.0)
        return np.stack([blob + 30, blob / 2 + 30, 60 + 0 * blob], -1).astype(np.uint8)

    before, protected = face(20.0, 20.0), np.zeros((48, 64), bool)
    protected[:, 40:] = True
    arrived = metrics.image_scores(before, face(25.0, 22.0), handles, targets, protected=protected)
    assert arrived["success_image"] and arrived["md_image"] < 0.3
    assert arrived["far_psnr"] == arrived["protected_psnr"] == 100.0  # the blob's tail is gone
    stayed = metrics.image_scores(before, before, handles, targets)
    assert not stayed["success_image"] and stayed["md_image"] == pytest.approx(29**0.5, abs=0.1)
    assert stayed["protected_psnr"] is None and stayed["far_colour_shift"] == 0.0


def _scored(kind: str, success: bool, image: bool, far: float, protected) -> dict:
    detected = None if kind == "random2" else success
    return {
        "kind": kind,
        "md": math.nan if kind == "random2" else 1.0,
        "md_tracked": 1.0,
        "md_image": 1.0,
        "success": success,
        "success_detected": detected,
        "success_image": image,
        "success_off_outline": None,
        "tracked_px": [1.0],
        "detected_px": [] if kind == "random2" else [1.0],
        "converged": True,
        "steps": 5,
        "seconds": 1.0,
        "calls": 6,
        "pixel_change": 1.0,
        "feature_change": 0.1,
        "far_psnr": far,
        "far_colour_shift": 1.0,
        "protected_psnr": protected,
    }


def test_aggregate_counts_image_success_and_takes_medians_of_psnr():
    rows = [
        _scored("random2", True, False, 20.0, 40.0),
        _scored("random2", True, True, 30.0, 35.0),
        _scored("random2", False, True, 99.0, 50.0),
    ]
    agg = metrics.aggregate(rows, ["random2"], math.nan)
    assert agg["image_success_rate"] == pytest.approx(2 / 3)
    assert agg["success_rate"] == pytest.approx(2 / 3)
    assert agg["far_psnr"] == 30.0 and agg["protected_psnr"] == 40.0
    assert agg["protected_psnr_worst"] == 35.0
    for no_landmarks in ("md", "detected_success_rate", "confirmed_success_rate"):
        assert math.isnan(agg[no_landmarks])
    unmasked = metrics.aggregate([_scored("1", True, True, 30.0, None)], ["1"], math.nan)
    assert unmasked["confirmed_success_rate"] == 1.0 and math.isnan(unmasked["protected_psnr"])
    old = {k: v for k, v in rows[0].items() if "image" not in k and "psnr" not in k}
    assert math.isnan(metrics.aggregate([old], ["random2"], math.nan)["image_success_rate"])
    assert "far_psnr" not in metrics.ratios(agg, agg) and metrics.ratios(agg, agg)["steps"] == 1


def test_benchmark_drags_random_points_masked_on_a_tiny_generator():
    G = make_generator(img_resolution=32)
    images, marks = render_dataset(8, size=32, seed=5)
    detector = _mean_face_detector(marks, 32)
    report = quality.run_benchmark(
        G,
        detector,
        detector.embed_images(images),
        presets=["ours"],
        n_tasks=2,
        seed=0,
        max_steps=2,
        device=torch.device("cpu"),
        limits=quality.Limits(min_dist=0.0, max_dist=32.0, margin=2.0),
        masked=True,
        kind="random2",
    )
    rows = report["presets"]["ours"]["per_task"]
    assert [r["kind"] for r in rows] == ["random2"] * 2
    for row in rows:
        assert math.isnan(row["md"]) and row["success_detected"] is None
        assert len(row["image_px"]) == 2 and 0 < row["protected_psnr"] <= 100
    agg = report["presets"]["ours"]["aggregate"]
    assert 0 <= agg["image_success_rate"] <= 1 and math.isfinite(agg["protected_psnr"])
