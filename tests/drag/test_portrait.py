"""The drag on images that are not square: StyleGAN-Human's 2:1 portraits.

x runs along the width and y along the height everywhere: feature sampling, tracking, the
point and mask checks; a drag moves content and its frames keep the model's H x W.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import make_generator, portrait_of
from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.drag.supervision import downsample_mask, sample_features
from draggan_widget.drag.tracking import track_points
from draggan_widget.gan import load_generator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def portrait():
    """The bundled face model in StyleGAN-Human's layout: side x side/2, a narrow face."""
    return portrait_of(load_generator("default"))


def test_sample_features_on_a_portrait_equals_bilinear_upsampling():
    torch.manual_seed(0)
    feat = torch.randn(1, 5, 8, 4)  # the feature map of a 32 x 16 image
    up = F.interpolate(feat, size=(32, 16), mode="bilinear", align_corners=False)
    ys, xs = torch.meshgrid(torch.arange(32), torch.arange(16), indexing="ij")
    centres = torch.stack([xs, ys], dim=-1).reshape(-1, 2).float() + 0.5
    got = sample_features(feat, centres, (32, 16))
    torch.testing.assert_close(got, up[0].permute(1, 2, 0).reshape(-1, 5))


def test_tracking_clamps_x_to_the_width_and_y_to_the_height():
    feat = torch.zeros(1, 2, 16, 8)
    feat[0, :, 15, 7] = 1.0  # the bottom-right cell of a 32 x 16 image
    template = torch.ones(1, 2)
    found, _ = track_points(
        feat, template, torch.tensor([[15.0, 31.0]]), radius=4, img_size=(32, 16)
    )
    assert 14 <= found[0, 0] <= 16 and 30 <= found[0, 1] <= 32  # on the cell, inside the image


def test_mask_downsamples_to_the_feature_maps_shape():
    mask = torch.zeros(32, 16)
    mask[:, :8] = 1  # the left half may change
    small = downsample_mask(mask, (8, 4))
    assert small.shape == (1, 1, 8, 4)
    assert torch.equal(small[0, 0], torch.tensor([[1.0, 1.0, 0.0, 0.0]]).expand(8, 4))


@pytest.fixture
def small_portrait_session():
    G = make_generator(img_resolution=32, square=False)
    return DragSession(G, seed=0, device="cpu")


def test_the_session_knows_height_and_width(small_portrait_session):
    s = small_portrait_session
    assert s.shape == (32, 16) and (s.height, s.width) == (32, 16) and s.resolution == 32
    assert s.image().shape == (32, 16, 3)


def test_points_are_checked_against_width_and_height(small_portrait_session):
    s = small_portrait_session
    s.set_points([(16, 32)], [(0, 0)])  # the bottom-right corner is on the image
    with pytest.raises(ValueError, match=r"x must lie in \[0, 16\] and y in \[0, 32\]"):
        s.set_points([(20, 10)], [(5, 5)])
    assert s.handles == [(16.0, 32.0)]


def test_masks_have_the_images_shape(small_portrait_session):
    s = small_portrait_session
    mask = np.zeros((32, 16), dtype=bool)
    mask[:16] = True
    s.set_mask(mask)
    with pytest.raises(ValueError, match=r"\(height, width\) = \(32, 16\), got \(32, 32\)"):
        s.set_mask(np.ones((32, 32), dtype=bool))
    s.set_points([(8.5, 8.5)], [(10.5, 12.5)])
    assert s.step().image.shape == (32, 16, 3)  # the masked loss runs on a 2:1 feature map


def test_a_40_step_drag_on_a_portrait_moves_the_handle_a_third_of_the_way(portrait):
    s = DragSession(portrait, seed=0, config=DragConfig(precision="float32"), device="cpu")
    h = portrait.img_resolution
    k = h / 64  # across the narrow side, toward the edge
    handle, target = (10.5 * k, 20.5 * k), (20.5 * k, 20.5 * k)
    s.set_points([handle], [target])
    frames = [s.step(render=True) for _ in range(40)]
    start = float(np.hypot(target[0] - handle[0], target[1] - handle[1]))
    assert frames[-1].distances[0] <= start * 2 / 3
    assert frames[-1].points[0][0] > handle[0] + start / 3  # it went along x, the width
    assert all(f.image.shape == (h, h // 2, 3) for f in frames)
    assert s.image().shape == (h, h // 2, 3)


def test_a_masked_drag_on_a_portrait_warps_along_its_width_and_height(portrait):
    """The feature warp's field is the block's h x w, and its x moves along the width."""
    mask = np.zeros((64, 32), bool)
    mask[20:48, 4:28] = True
    s = DragSession(portrait, seed=3, config=DragConfig(lr=1e-6), device="cpu")
    before = s.image().astype(int)
    s.set_points([(12.5, 34.5)], [(18.5, 34.5)])
    s.set_mask(mask)
    result = s.run(60)
    field = s.feature_warp
    assert result.done and field.shape == (1, 2, 32, 16)
    dx, dy = field[0, 0].sum().item(), field[0, 1].sum().item()
    assert dx < -2 * abs(dy)  # content drawn from the left: a move to the right
    after = s.image()
    assert after.shape == (64, 32, 3)
    change = np.abs(after.astype(int) - before)
    assert change[mask].mean() > 4 * change[~mask].mean()
