"""Motion supervision and tracking as pure functions, on planted features with known answers."""

from __future__ import annotations

import pytest
import torch

from draggan_widget.drag.supervision import (
    disc_offsets,
    fixed_region_loss,
    held_region,
    motion_loss,
    path_distance,
    rebalance_scale,
    sample_features,
    shift_vectors,
)
from draggan_widget.drag.tracking import track_points


def test_sample_features_equals_bilinear_upsampling():
    feat = torch.randn(1, 5, 8, 8)
    up = torch.nn.functional.interpolate(feat, size=(32, 32), mode="bilinear", align_corners=False)
    xy = torch.tensor([[3.5, 7.5], [20.5, 11.5], [31.5, 0.5]])  # pixel centres of a 32-px image
    got = sample_features(feat, xy, 32)
    want = torch.stack([up[0, :, 7, 3], up[0, :, 11, 20], up[0, :, 0, 31]])
    torch.testing.assert_close(got, want)


def test_disc_offsets_strictly_inside_radius():
    off = disc_offsets(3.0)
    assert len(off) == 25 and off.norm(dim=1).max() < 3
    assert len(disc_offsets(1.5)) == 9


def test_shift_vectors_are_unit_steps_toward_the_target():
    h = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    t = torch.tensor([[10.0, 0.0], [0.0, -0.5]])
    torch.testing.assert_close(shift_vectors(h, t), torch.tensor([[1.0, 0.0], [0.0, -1.0]]))


def test_motion_loss_zero_when_handles_on_targets():
    feat = torch.randn(1, 4, 16, 16, requires_grad=True)
    h = torch.tensor([[5.0, 6.0]])
    loss = motion_loss(
        feat,
        h,
        shift_vectors(h, h.clone()),
        disc_offsets(3),
        img_size=16,
        active=torch.tensor([True]),
    )
    assert loss.item() == 0


def test_motion_loss_ignores_arrived_handles_and_detaches_source():
    feat = torch.randn(1, 4, 16, 16, requires_grad=True)
    h = torch.tensor([[5.0, 6.0], [10.0, 10.0]])
    t = torch.tensor([[9.0, 6.0], [10.0, 3.0]])
    args = dict(img_size=16)
    both = motion_loss(
        feat, h, shift_vectors(h, t), disc_offsets(2), active=torch.tensor([True, True]), **args
    )
    first = motion_loss(
        feat, h, shift_vectors(h, t), disc_offsets(2), active=torch.tensor([True, False]), **args
    )
    assert both > first > 0
    first.backward()
    assert feat.grad is not None and feat.grad.abs().sum() > 0


def test_rebalance_scale_is_handles_over_handles_still_moving():
    one = torch.tensor([True, False, False, False])
    assert rebalance_scale(one).item() == 4.0  # 4 handles, 1 still moving
    assert rebalance_scale(torch.ones(4, dtype=torch.bool)).item() == 1.0
    assert rebalance_scale(torch.zeros(4, dtype=torch.bool)).item() == 4.0  # never divides by 0


def test_anchored_motion_loss_pulls_toward_a_blend_with_the_starting_features():
    feat = torch.randn(1, 4, 16, 16)
    h, t = torch.tensor([[5.0, 6.0]]), torch.tensor([[9.0, 6.0]])
    d, off = shift_vectors(h, t), disc_offsets(2)
    here = sample_features(feat, h[:, None] + off, 16)  # [1, M, C]
    there = sample_features(feat, h[:, None] + off + d[:, None], 16)
    anchor = torch.randn_like(here)
    args, kw = (feat, h, d, off), dict(img_size=16, active=torch.tensor([True]))

    def loss(weight: float) -> torch.Tensor:
        return motion_loss(*args, **kw, anchor=anchor, anchor_weight=weight)

    torch.testing.assert_close(loss(0.0), motion_loss(*args, **kw))
    torch.testing.assert_close(loss(1.0), (there - anchor).abs().mean())
    torch.testing.assert_close(loss(0.5), (there - (here + anchor) / 2).abs().mean())


def test_anchored_motion_loss_is_not_zero_on_flat_features():
    """The paper's loss is satisfied by flattening the features; the anchored one is not."""
    flat = torch.ones(1, 4, 16, 16)
    h, t = torch.tensor([[5.0, 6.0]]), torch.tensor([[9.0, 6.0]])
    args = (flat, h, shift_vectors(h, t), disc_offsets(2))
    kw = dict(img_size=16, active=torch.tensor([True]))
    assert motion_loss(*args, **kw).item() == 0
    anchor = torch.zeros(1, len(disc_offsets(2)), 4)  # what was there: not the flat value
    assert motion_loss(*args, **kw, anchor=anchor, anchor_weight=0.5).item() == 0.5


def test_path_distance_measures_to_the_segment_on_non_square_images():
    starts, targets = torch.tensor([[8.0, 8.0]]), torch.tensor([[24.0, 8.0]])
    d = path_distance(starts, targets, (64, 32), (16, 8))  # cells of 4 x 4 px
    assert d[1, 3] == pytest.approx(2.0)  # cell centre (14, 6): 2 px above the segment
    assert d[1, 0] == pytest.approx((6.0**2 + 2.0**2) ** 0.5)  # (2, 6): beyond its start
    assert d[15, 3] == pytest.approx(62.0 - 8.0)  # (14, 62): straight below


def test_held_region_is_free_near_the_path_and_held_far():
    region = held_region(torch.tensor([[0.0, 5.0, 10.0, 15.0, 20.0]]), near=5.0, far=15.0)
    assert region.shape == (1, 1, 1, 5)
    assert region.flatten().tolist() == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])


def test_fixed_region_loss_only_counts_outside_editable():
    feat0 = torch.zeros(1, 2, 4, 4)
    feat = feat0.clone()
    feat[..., :2] = 1.0  # change the left half
    editable = torch.zeros(1, 1, 4, 4)
    editable[..., :2] = 1.0
    assert fixed_region_loss(feat, feat0, editable) == 0
    assert fixed_region_loss(feat, feat0, 1 - editable) > 0


def test_huber_fixed_region_loss_is_quadratic_below_beta_and_l1_above():
    feat0, outside = torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2)
    small = torch.tensor([[[[0.05, -0.05]]]], requires_grad=True)
    loss = fixed_region_loss(small, feat0, outside, beta=0.1)
    assert loss.item() == pytest.approx(0.05**2 / (2 * 0.1))
    loss.backward()  # the pull on a small change shrinks with it (L1: 0.5 per element)
    torch.testing.assert_close(small.grad, torch.tensor([[[[0.25, -0.25]]]]))
    large = torch.tensor([[[[2.0, -3.0]]]])
    huber = fixed_region_loss(large, feat0, outside, beta=0.1)
    assert huber.item() == pytest.approx(fixed_region_loss(large, feat0, outside).item() - 0.05)


def _planted(peak_xy: tuple[int, int], size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random map with one distinctive feature at ``peak_xy`` (pixel centre)."""
    g = torch.Generator().manual_seed(0)
    feat = 0.1 * torch.randn(1, 8, size, size, generator=g)
    template = torch.full((8,), 3.0)
    x, y = peak_xy
    feat[0, :, y, x] = template
    return feat, template[None]


def test_track_points_finds_planted_feature_within_r2():
    feat, template = _planted((12, 9))
    found, _ = track_points(feat, template, torch.tensor([[10.5, 10.5]]), radius=4, img_size=32)
    torch.testing.assert_close(found, torch.tensor([[12.5, 9.5]]))


def test_track_points_stays_within_r2():
    feat, template = _planted((25, 25))
    start = torch.tensor([[10.5, 10.5]])
    found, _ = track_points(feat, template, start, radius=3, img_size=32)
    assert (found - start).abs().max() <= 3


def test_track_points_max_move_refuses_far_lookalike():
    feat, template = _planted((14, 10))
    start = torch.tensor([[10.5, 10.5]])
    found, _ = track_points(feat, template, start, radius=4, img_size=32, max_move=1.5)
    assert (found - start).norm() <= 1.5 + 1e-6


def test_subpixel_tracking_recovers_fractional_position():
    size = 32
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    true = torch.tensor([12.8, 9.3])
    feat = torch.stack([xs - true[0], ys - true[1]])[None].float()  # linear: template = 0 at `true`
    template = torch.zeros(1, 2)
    nearest, _ = track_points(feat, template, torch.tensor([[11.5, 10.5]]), radius=3, img_size=size)
    sub, _ = track_points(
        feat, template, torch.tensor([[11.5, 10.5]]), radius=3, img_size=size, subpixel=True
    )
    assert (sub[0] - true).norm() < (nearest[0] - true).norm()
    assert (sub[0] - true).norm() < 0.35


def test_patch_tracking_keeps_a_handle_on_an_edge_where_it_was():
    """Along an edge every point has the same feature, so a single feature matches all of
    them equally and the handle slides (here to the first, topmost tie). Its 3 x 3 patch
    also sees that the edge ends just below it, and holds it there."""
    from draggan_widget.drag.tracking import patch_offsets

    size = 32
    feat = torch.zeros(1, 2, size, size)
    feat[0, 0, :, 16:] = 1.0  # the edge: channel 0 is on right of x = 16
    feat[0, 1, :20, :] = 1.0  # channel 1 is on above y = 20, so the edge ends there
    handle = torch.tensor([[16.5, 19.5]])  # on the edge, in its last cell
    patch = patch_offsets(3, 1.0)
    assert patch.shape == (9, 2) and patch[4].abs().max() == 0  # row-major, centre in the middle
    alone, _ = track_points(
        feat, sample_features(feat, handle, size), handle, radius=3, img_size=size
    )
    torch.testing.assert_close(alone, torch.tensor([[16.5, 16.5]]))  # slid 3 px up the edge
    templates = sample_features(feat, handle[:, None] + patch[None], size)  # [1, 9, C]
    held, _ = track_points(feat, templates, handle, radius=3, img_size=size, patch=patch)
    torch.testing.assert_close(held, handle)
