"""The landmark CNN learns positions; the Fréchet distance matches the textbook formula."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from safetensors.torch import save_file

from draggan_widget.train.landmarks import (
    LandmarkNet,
    frechet_distance,
    load_landmark_net,
    save_landmark_net,
    soft_argmax,
    train_landmark_net,
)


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.5
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    want = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(
        ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real
    )
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)


def _dots(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey images with one bright 3x3 dot; its centre is the single landmark."""
    rng = np.random.default_rng(seed)
    pos = rng.integers(8, 56, size=(n, 2))
    img = np.full((n, 64, 64, 3), 60, np.uint8)
    for i, (x, y) in enumerate(pos):
        img[i, y - 1 : y + 2, x - 1 : x + 2] = 250
    return img, (pos + 0.5)[:, None, :].astype(np.float32)


def test_landmark_net_learns_positions(tmp_path):
    img, lm = _dots(512, 0)
    net = train_landmark_net(img, lm, steps=100, batch=16, seed=0)
    test_img, test_lm = _dots(64, 1)
    err = np.abs(net.locate(test_img, 64) - test_lm).mean()
    assert err < 3.0  # px, on 64-px images; a constant guess is ~12 px off
    save_landmark_net(net, tmp_path / "lm.safetensors")
    again = load_landmark_net(tmp_path / "lm.safetensors")
    np.testing.assert_allclose(again.locate(test_img, 64), net.locate(test_img, 64), atol=1e-5)


def test_soft_argmax_finds_a_peak_between_cell_centres():
    scores = torch.full((1, 2, 8, 8), -30.0)
    scores[0, 0, 2, 5] = 0  # one sharp cell: its centre, (5.5, 2.5) of 8
    scores[0, 1, 4, 1] = scores[0, 1, 4, 2] = 0  # two equal cells: halfway between
    got = soft_argmax(scores) * 8
    torch.testing.assert_close(got, torch.tensor([[[5.5, 2.5], [2.0, 4.5]]]))


def test_the_heatmap_head_is_what_locates_and_old_files_load_without_it(tmp_path):
    torch.manual_seed(0)
    net = LandmarkNet(3).eval()
    x = torch.randn(2, 3, 64, 64)
    coarse, fine = net.both(x)
    torch.testing.assert_close(net(x), fine)
    assert not torch.allclose(coarse, fine)
    old = LandmarkNet(3, heatmap=False).eval()
    state = {k: v.contiguous() for k, v in old.state_dict().items()}
    save_file(state, tmp_path / "old.safetensors", metadata={"num_landmarks": "3"})  # as before
    again = load_landmark_net(tmp_path / "old.safetensors")
    assert again.heat is None
    torch.testing.assert_close(again(x), old.both(x)[0])


@pytest.mark.weights
def test_the_bundled_detector_finds_rendered_landmarks_within_a_third_of_a_pixel():
    """The drag benchmark and the canonical edits trust it to well under their 2-px criterion;
    the mouth corners, the faintest landmarks, included (the first detector missed them by
    1.3 px on average)."""
    from draggan_widget.train.edits import load_detector
    from draggan_widget.train.faces import LANDMARK_NAMES, render_dataset

    images, marks = render_dataset(200, size=64, seed=2)  # held out: the detector saw seed 1
    err = np.linalg.norm(load_detector().locate(images, 64) - marks, axis=2)
    assert err.mean() < 0.3, err.mean()
    corners = [LANDMARK_NAMES.index(f"mouth.{side}") for side in ("left", "right")]
    assert err[:, corners].mean() < 0.4, err[:, corners].mean(0)
