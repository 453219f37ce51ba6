"""bench/fid.py: the Fréchet distance's known answers, and floor < ceiling on a tiny run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import load_bench, make_generator
from draggan_widget.train.faces import LANDMARK_NAMES
from draggan_widget.train.landmarks import FEATURE_DIM, LandmarkNet, frechet_distance

fid = load_bench("fid")


def test_frechet_distance_of_a_set_with_itself_is_zero_and_a_shift_is_its_square():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))  # correlated features
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6 * np.trace(np.cov(a.T)))
    shift = np.full(16, 0.5)
    assert frechet_distance(a + shift, a) == pytest.approx(16 * 0.25, rel=1e-6)


def test_untrained_like_rebuilds_the_architecture_with_fresh_seeded_weights():
    G = make_generator(img_resolution=64)
    one, two = fid.untrained_like(G, seed=3), fid.untrained_like(G, seed=3)
    assert one.init_kwargs == G.init_kwargs
    w_one, w_two, w_G = (m.mapping.fc0.weight for m in (one, two, G))
    assert torch.equal(w_one, w_two) and not torch.equal(w_one, w_G)


def test_floor_is_below_the_ceiling_on_a_tiny_run(tmp_path, capsys):
    torch.manual_seed(0)
    detector = LandmarkNet(len(LANDMARK_NAMES)).eval()  # untrained: the runs/ cache is not in git
    G = make_generator(img_resolution=64)
    results = fid.procedural_fid(G, detector, n=64, psis=(1.0, 0.7), batch=32)
    assert set(results["model"]) == {"psi=1", "psi=0.7"}
    values = [results["floor"], results["ceiling"], *results["model"].values()]
    assert all(math.isfinite(v) and v >= 0 for v in values)
    assert results["floor"] < results["ceiling"]
    config = {"n": 64, "floor_seed": fid.FLOOR_SEED, "model": "tiny"}
    report = {"config": config, "results": results}
    out = tmp_path / "fid.json"
    fid.emit(report, out, fid.markdown_rows)
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == json.loads(printed[: printed.rindex("}") + 1])
    rows = printed[printed.rindex("}") + 1 :].strip().splitlines()
    assert len(rows) == 6 and all(row.count("|") == 3 for row in rows)


def test_generated_features_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    detector = LandmarkNet(len(LANDMARK_NAMES)).eval()
    G = make_generator(img_resolution=64)
    args = dict(seed=1, truncation_psi=0.7)
    whole = fid.embed_generated(G, detector, 6, batch=6, **args)
    split = fid.embed_generated(G, detector, 6, batch=4, **args)
    assert whole.shape == (6, FEATURE_DIM)
    np.testing.assert_allclose(whole, split, rtol=1e-3, atol=1e-3)
