"""The feature warp of masked drags: the field's arithmetic, and what a session does with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_generator
from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.drag.warp import gaussian_blur, resample, smooth_field, warp_state
from draggan_widget.gan.stylegan2 import SynthesisState

MASK = np.zeros((64, 64), bool)
MASK[18:44, 12:42] = True  # around the drag of `session`


@pytest.fixture(scope="module")
def G64():
    return make_generator(img_resolution=64, w_dim=32)


def session(G, **cfg) -> DragSession:
    """A masked one-handle drag that only the warp can move: the latent's step is tiny."""
    cfg = {"precision": "float32", "lr": 1e-6, "hold": 0.0, "warp": 0.35, **cfg}
    s = DragSession(G, seed=1, config=DragConfig(**cfg), device="cpu")
    s.set_points([(22.5, 30.5)], [(30.5, 30.5)])
    s.set_mask(MASK)
    return s


def test_the_blur_keeps_a_constant_field_and_spreads_a_spike():
    field = torch.full((1, 2, 16, 16), 3.0)
    assert torch.allclose(gaussian_blur(field, 2.0), field)
    spike = torch.zeros(1, 1, 16, 16)
    spike[..., 8, 8] = 1.0
    blurred = gaussian_blur(spike, 1.5)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert blurred[..., 8, 8].item() < 0.1 and blurred[..., 8, 10].item() > 0.02
    assert torch.equal(smooth_field(torch.zeros(1, 2, 8, 8)), torch.zeros(1, 2, 8, 8))


def test_a_zero_field_changes_nothing_and_a_shift_of_one_cell_moves_by_one_cell():
    x = torch.randn(1, 3, 8, 8)
    assert torch.allclose(resample(x, torch.zeros(1, 2, 8, 8), (64, 64)), x, atol=1e-6)
    field = torch.zeros(1, 2, 8, 8)
    field[:, 0] = 8.0  # one cell of an 8-cell map over 64 px: show what lies one cell right
    moved = resample(x, field, (64, 64))
    assert torch.allclose(moved[..., :7], x[..., 1:], atol=1e-5)


def test_a_stylegan2_state_has_its_features_and_image_warped():
    x, img = torch.randn(1, 4, 8, 8), torch.randn(1, 3, 8, 8)
    field = torch.zeros(1, 2, 8, 8)
    field[:, 1] = -8.0  # one cell down
    state = warp_state(SynthesisState(x, img, 8), field, (64, 64))
    assert torch.allclose(state.x[..., 1:, :], x[..., :7, :], atol=1e-5)
    assert torch.allclose(state.img[..., 1:, :], img[..., :7, :], atol=1e-5)


def test_a_masked_drag_moves_the_handle_with_the_warp_and_leaves_the_rest(G64):
    s = session(G64)
    before = s.image().astype(int)
    result = s.run(max_steps=60)
    assert result.done and result.distances[0] <= 1.0
    field = s.feature_warp
    assert field is not None and field.shape == (1, 2, 32, 32)
    outside = torch.from_numpy(~MASK[::2, ::2])  # the 32 x 32 block's cells
    assert field[..., outside].abs().max().item() == 0.0
    assert field[..., ~outside].abs().max().item() > 2.0  # px: the content moved
    change = np.abs(s.image().astype(int) - before)
    margin = np.zeros_like(MASK)  # the later blocks' kernels reach a few px past the region
    margin[12:50, 6:48] = True
    assert change[~margin].max() <= 2 and change[MASK].mean() > 2


def test_an_unmasked_drag_warps_only_what_the_hold_leaves_free(G64):
    s = session(G64, hold=4.0)
    s.set_mask(None)
    s.run(max_steps=20)
    field = s.feature_warp
    assert field is not None and field.abs().max().item() > 0.5
    far = torch.zeros(32, 32, dtype=torch.bool)  # cells over a quarter side from the path
    far[:5], far[27:] = True, True
    assert field[..., far].abs().max().item() == 0.0


@pytest.mark.parametrize("changes", [{"warp": 0.0}, {"hold": 0.0, "mask": None}])
def test_no_warp_is_made_when_off_or_when_nothing_is_held(G64, changes):
    s = session(G64, **{k: v for k, v in changes.items() if k != "mask"})
    if "mask" in changes:
        s.set_mask(None)  # and hold 0: the drag may change everything, the paper's way
    s.run(max_steps=5)
    assert s.feature_warp is None
    assert DragConfig.paper().warp == 0.0


def test_each_frame_is_the_image_of_the_warp_it_was_tracked_in(G64):
    s = session(G64)
    s.step(render=False)
    before = s.image()
    r = s.step(render=True)
    assert np.abs(r.image.astype(int) - before.astype(int)).max() <= 1


def test_undo_redo_and_reset_restore_the_warp_and_its_image(G64):
    s = session(G64)
    start = s.image()
    s.run(max_steps=60)
    dragged, field = s.image(), s.feature_warp
    assert s.undo() and s.feature_warp is None and np.array_equal(s.image(), start)
    assert s.redo() and torch.equal(s.feature_warp, field) and np.array_equal(s.image(), dragged)
    s.reset()
    assert s.feature_warp is None and np.array_equal(s.image(), start)
    s.set_seed(2)
    assert s.feature_warp is None


def test_a_second_drag_adds_to_the_warp_the_first_left(G64):
    s = session(G64)
    s.run(max_steps=60)
    first = s.feature_warp
    s.set_points([(30.5, 30.5)], [(30.5, 36.5)])
    s.run(max_steps=60)
    second = s.feature_warp
    added = (second - first).abs().amax(dim=(0, 2, 3))  # per component, px
    assert added[1] > 1.0 and added[1] > added[0]  # the new move is mostly downward


def test_turning_the_warp_on_mid_drag_starts_a_new_drag(G64):
    s = session(G64, warp=0.0)
    s.run(max_steps=3)
    s.config.warp = 0.35
    s.step(render=False)
    assert s._drag.warp is not None and len(s._drag.trace) == 1


def test_a_feature_block_before_the_warp_is_refused_and_the_session_kept(G64):
    s = session(G64)
    s.run(max_steps=10)
    ws, field, steps = s.ws, s.feature_warp, s.step_count
    s.config.feature_res = 16
    with pytest.raises(ValueError, match="feature warp at the 32-px block"):
        s.step(render=False)
    assert torch.equal(s.ws, ws) and torch.equal(s.feature_warp, field) and s.step_count == steps
    s.config.feature_res = 64  # a later block sees the warp: drags go on
    s.set_points([(30.5, 30.5)], [(30.5, 34.5)])
    assert s.run(max_steps=40).distances[0] < 4.0


def test_a_session_starts_from_a_given_warp_and_checks_it(G64):
    s = session(G64)
    s.run(max_steps=40)
    again = DragSession(G64, w=s.ws, feature_warp=s.feature_warp, device="cpu")
    assert np.array_equal(again.image(), s.image())
    again.reset()  # the warp it started from is its starting point
    assert np.array_equal(again.image(), s.image())
    with pytest.raises(ValueError, match=r"must be \[1, 2, h, w\]"):
        DragSession(G64, w=s.ws, feature_warp=torch.zeros(2, 32, 32), device="cpu")
    with pytest.raises(ValueError, match="fits no feature block"):
        DragSession(G64, w=s.ws, feature_warp=torch.zeros(1, 2, 24, 24), device="cpu")
    with pytest.raises(ValueError, match="NaN"):
        DragSession(G64, w=s.ws, feature_warp=torch.full((1, 2, 32, 32), np.nan), device="cpu")
    with pytest.raises(ValueError, match="pass w as well"):
        DragSession(G64, feature_warp=s.feature_warp, device="cpu")
