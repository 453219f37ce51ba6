"""DragSession on tiny random generators: the drag converges, history is exact, input is checked."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import make_generator
from draggan_widget.drag import DragConfig, DragSession


@pytest.fixture(scope="module")
def G64():
    return make_generator(img_resolution=64, w_dim=32)


# A random generator has no local edit for the hold to find (it is a locality prior,
# measured on the trained model in bench/); these tests drag the latent's mechanics alone,
# with the paper's mask weight and without the feature warp (tests/drag/test_warp.py).
FREE = {"lr": 0.01, "hold": 0.0, "warp": 0.0, "lambda_mask": 20.0}


def session(G, **cfg) -> DragSession:
    """A one-handle drag, in exact float32 arithmetic unless ``cfg`` says otherwise."""
    cfg = {"precision": "float32", **cfg}
    s = DragSession(G, seed=1, config=DragConfig(**{**FREE, **cfg}), device="cpu")
    s.set_points([(20.5, 30.5)], [(30.5, 30.5)])
    return s


def test_drag_moves_handle_to_target(G64):
    s = session(G64)
    first = s.step(render=False)
    last = s.run(max_steps=80)
    assert last.done and last.distances[0] <= 1.0 < first.distances[0]
    assert last.step <= 80


def test_paper_preset_also_converges(G64):
    s = DragSession(G64, seed=1, config=DragConfig.paper(lr=0.01), device="cpu")
    s.set_points([(20.5, 30.5)], [(30.5, 30.5)])
    assert s.run(max_steps=80).done


def test_track_patch_templates_are_patches_and_changing_it_starts_a_new_drag(G64):
    assert DragConfig().track_patch == 3 and DragConfig.paper().track_patch == 1
    for bad in (0, 2, 1.0, True):
        with pytest.raises(ValueError, match="track_patch"):
            DragConfig(track_patch=bad)
    s = session(G64)
    s.step(render=False)
    assert s._drag.templates.shape[:2] == (1, 9)  # one handle, 3 x 3 cells
    s.config.track_patch = 1
    s.step(render=False)
    assert s._drag.templates.dim() == 2  # [K, C]: the drag was rebuilt with single features


@pytest.mark.parametrize("anchor", [0.0, 0.5])
def test_loss_decreases_along_a_drag(G64, anchor):
    """Each update lowers the loss it was computed on, re-evaluated at the new latent.

    The loss a step reports is at a new handle position each time, so its sequence is no
    progress measure (the anchored loss even grows as the content leaves its start).
    """
    from draggan_widget.drag.supervision import disc_offsets, motion_loss, shift_vectors

    s = session(G64, anchor=anchor)
    lower = 0
    for _ in range(6):
        r = s.step(render=False)
        handles, targets = torch.tensor(r.points), torch.tensor(r.targets)
        offsets = disc_offsets(s.config.radii_px(64)[0])
        with torch.no_grad():
            again = motion_loss(
                s._features(s.ws, 32).x,
                *(handles, shift_vectors(handles, targets), offsets),
                img_size=64,
                active=torch.tensor([True]),
                anchor=s._anchor(s._drag, offsets, s.config),
                anchor_weight=anchor,
            )
        lower += float(again) < r.loss
    assert lower >= 5


def test_done_step_leaves_latent_unchanged(G64):
    s = DragSession(G64, seed=1, config=DragConfig(**FREE), device="cpu")
    s.set_points([(20.5, 30.5)], [(20.8, 30.5)])  # already within 1 px
    before = s.ws
    r = s.step()
    assert r.done and r.loss == 0
    torch.testing.assert_close(s.ws, before, rtol=0, atol=0)


def test_stop_distance_defaults_to_paper_rule():
    cfg = DragConfig()
    assert cfg.stop_px(5) == 1.0 and cfg.stop_px(6) == 2.0
    assert dataclasses.replace(cfg, stop_distance=3.0).stop_px(1) == 3.0


def test_step_renders_the_image_the_points_were_tracked_in(G64):
    s = session(G64)
    before = s.image()
    r = s.step(render=True)
    assert np.abs(r.image.astype(int) - before.astype(int)).max() <= 1  # fused vs split conv
    assert r.image.dtype == np.uint8 and r.image.shape == (64, 64, 3)


def test_only_first_n_opt_ws_move(G64):
    s = session(G64, n_opt_ws=3)
    w0 = s.ws
    for _ in range(3):
        s.step(render=False)
    moved = (s.ws - w0).abs().amax(dim=2)[0]
    assert (moved[:3] > 0).all() and (moved[3:] == 0).all()


def test_w_mode_moves_one_shared_style(G64):
    s = session(G64, w_plus=False, n_opt_ws=4)
    for _ in range(3):
        s.step(render=False)
    ws = s.ws[0]
    torch.testing.assert_close(ws[:4], ws[:1].expand(4, -1))


def test_undo_redo_restore_exact_latent_and_points(G64):
    s = session(G64)
    w0, h0, t0 = s.ws, s.handles, s.targets
    s.run(max_steps=5)
    w1, h1 = s.ws, s.handles
    assert s.can_undo and not s.can_redo
    assert s.undo()
    assert torch.equal(s.ws, w0) and s.handles == h0 and s.targets == t0
    assert s.redo()
    assert torch.equal(s.ws, w1) and s.handles == h1
    assert not s.redo()


def test_reset_returns_to_start_and_is_undoable(G64):
    s = session(G64)
    w0 = s.ws
    s.run(max_steps=4)
    w1 = s.ws
    s.reset()
    assert torch.equal(s.ws, w0) and s.handles == [(20.5, 30.5)]
    s.undo()
    assert torch.equal(s.ws, w1)


def test_deterministic_on_cpu(G64):
    a, b = session(G64), session(G64)
    ra, rb = a.run(max_steps=6), b.run(max_steps=6)
    assert ra.points == rb.points and torch.equal(a.ws, b.ws)


def test_mask_keeps_fixed_region_closer_to_original(G64):
    mask = np.zeros((64, 64), bool)
    mask[18:44, 14:40] = True  # around the drag
    outside = ~mask
    change = {}
    for name, m in (("masked", mask), ("free", None)):
        s = session(G64, lambda_mask=50.0)
        img0 = s.image().astype(float)
        s.set_mask(m)
        s.run(max_steps=30)
        change[name] = np.abs(s.image().astype(float) - img0)[outside].mean()
    assert change["masked"] < change["free"]


def test_hold_keeps_what_lies_far_from_the_path_closer_to_original(G64):
    yy, xx = np.mgrid[:64, :64] + 0.5
    far = (np.abs(yy - 30.5) > 16) | (xx < 20.5 - 16) | (xx > 30.5 + 16)  # > 1/4 side off
    change = {}
    for hold in (0.0, 20.0):
        s = session(G64, hold=hold)
        img0 = s.image().astype(float)
        result = s.run(max_steps=30)
        change[hold] = np.abs(s.image().astype(float) - img0)[far].mean()
        assert result.distances[0] < 10.0  # the handle still moved
    assert change[20.0] < 0.7 * change[0.0]


def test_config_edits_apply_to_next_step(G64):
    s = session(G64)
    s.step(render=False)
    s.config.lr = 0.05
    s.step(render=False)
    assert s._drag.optimizer.param_groups[0]["lr"] == 0.05


@pytest.mark.parametrize(
    ("handles", "targets", "match"),
    [
        ([(10, 10)], [(10, 10), (20, 20)], "one target per handle"),
        ([(-1, 10)], [(10, 10)], "off the image"),
        ([(10, 70)], [(10, 10)], "off the image"),
        ([(10, float("nan"))], [(10, 10)], "off the image"),
        ([(1, 2, 3)], [(1, 2, 3)], r"\(x, y\) pairs"),
    ],
)
def test_bad_points_raise_and_keep_session(G64, handles, targets, match):
    s = session(G64)
    with pytest.raises(ValueError, match=match):
        s.set_points(handles, targets)
    assert s.handles == [(20.5, 30.5)]


def test_no_points_raises(G64):
    s = DragSession(G64, seed=0, device="cpu")
    with pytest.raises(ValueError, match="set_points"):
        s.step()


@pytest.mark.parametrize(
    ("mask", "match"),
    [(np.ones((32, 32), bool), "shape"), (np.zeros((64, 64), bool), "no pixel")],
)
def test_bad_mask_raises_and_keeps_session(G64, mask, match):
    s = session(G64)
    with pytest.raises(ValueError, match=match):
        s.set_mask(mask)
    assert s.mask is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr", 0),
        ("lr", -1),
        ("r1", 20.0),
        ("n_opt_ws", 0),
        ("truncation_psi", 2.0),
        ("feature_res", 48),
        ("tracking", "magic"),
        ("max_steps", 0),
        ("stop_distance", -1),
        ("precision", "float64"),
        ("mask_image", "yes"),
        ("rebalance", 1),
        ("settle", 0.0),
        ("settle", 1.5),
        ("anchor", -0.1),
        ("anchor", 1.5),
        ("mask_beta", -0.1),
    ],
)
def test_bad_config_values_raise_and_keep_old_value(field, value):
    cfg = DragConfig()
    old = getattr(cfg, field)
    with pytest.raises(ValueError, match=field):
        setattr(cfg, field, value)
    assert getattr(cfg, field) == old
    with pytest.raises(ValueError):
        DragConfig(**{field: value})


def test_bad_latent_shape_raises(G64):
    with pytest.raises(ValueError, match="latent must have shape"):
        DragSession(G64, w=torch.zeros(3, 7), device="cpu")


def test_failed_step_leaves_session_unchanged(G64, monkeypatch):
    import draggan_widget.drag.session as session_module

    s = session(G64)
    s.run(max_steps=2)
    w, h, n, undo = s.ws, s.handles, s.step_count, len(s._undo)
    adam = s._drag.optimizer.state_dict()["state"][0]["exp_avg"].clone()
    monkeypatch.setattr(
        session_module, "motion_loss", lambda feat, *a, **k: feat.sum() * float("nan")
    )
    with pytest.raises(FloatingPointError, match="lower lr"):
        s.step(render=False)
    assert torch.equal(s.ws, w) and s.handles == h and s.step_count == n
    assert len(s._undo) == undo
    torch.testing.assert_close(s._drag.optimizer.state_dict()["state"][0]["exp_avg"], adam)


def test_latent_shapes_accepted(G64):
    L, D = G64.num_ws, G64.w_dim
    for w in (torch.zeros(D), torch.zeros(1, D), torch.zeros(L, D), torch.zeros(1, L, D)):
        assert DragSession(G64, w=w, device="cpu").ws.shape == (1, L, D)


def test_anchor_is_the_disc_under_the_handle_when_the_drag_started(G64, monkeypatch):
    from draggan_widget.drag import session as session_module
    from draggan_widget.drag.supervision import disc_offsets, sample_features

    anchors = []
    real = session_module.motion_loss

    def spy(*args, **kwargs):
        anchors.append(kwargs["anchor"])
        return real(*args, **kwargs)

    monkeypatch.setattr(session_module, "motion_loss", spy)
    s = session(G64, anchor=0.5)
    start = torch.tensor(s.handles)
    for _ in range(4):
        s.step(render=False)
    assert s.handles[0] != tuple(start[0].tolist())  # the handle moved on, the anchor did not
    r1, _ = s.config.radii_px(64)
    want = sample_features(s._drag.feat0, start[:, None] + disc_offsets(r1), 64)
    assert len(anchors) == 4
    for anchor in anchors:
        torch.testing.assert_close(anchor, want)
    s.config.anchor = 0.0
    s.step(render=False)
    assert anchors[-1] is None  # the paper's loss


def test_max_move_tracking_and_anchor_are_switchable(G64):
    for cfg in (
        {"max_track_move": None},
        {"tracking": "nearest"},
        {"anchor": 0.0},
    ):
        s = session(G64, **cfg)
        assert s.run(max_steps=80).done


def test_bfloat16_features_stay_close_to_float32_and_the_drag_arrives(G64):
    exact, low = session(G64), session(G64, precision="bfloat16")
    f32 = exact._features(exact.ws, 32).x
    bf16 = low._features(low.ws, 32).x
    assert bf16.dtype == torch.float32
    assert (bf16 - f32).abs().max() < 0.05 * f32.abs().max()
    assert low.run(max_steps=80).done


def test_changing_precision_restarts_the_reference_features(G64):
    s = session(G64)
    s.step(render=False)
    feat0 = s._drag.feat0
    s.config.precision = "bfloat16"
    s.step(render=False)
    assert s._drag.key.precision == "bfloat16" and s._drag.feat0 is not feat0


def test_bfloat16_frames_are_close_and_image_stays_exact(G64):
    exact, low = session(G64), session(G64, precision="bfloat16")
    frame = low.step(render=True).image
    assert np.abs(frame.astype(int) - exact.image().astype(int)).mean() < 2.0
    assert np.array_equal(low.image(), DragSession(G64, w=low.ws, device="cpu").image())


def test_a_moving_handle_rests_within_the_settle_band_until_it_leaves_the_stop_distance(G64):
    s = session(G64, settle=0.5)
    before = torch.tensor([False, False, True, True])
    dist = torch.tensor([0.4, 0.7, 0.7, 1.2])  # stop is 1 px: in, not yet, still in, drifted
    assert s._arrived(before, dist, s.config).tolist() == [True, False, True, False]
    paper = s._arrived(before, dist, DragConfig.paper())  # no band: the stop distance only
    assert paper.tolist() == [True, True, True, False]


def test_a_finished_drag_has_every_handle_within_the_stop_distance(G64):
    s = DragSession(G64, seed=1, config=DragConfig(**FREE), device="cpu")
    s.set_points([(20.5, 30.5), (40.5, 30.5)], [(20.8, 30.5), (45.5, 30.5)])
    first = s.step(render=False)
    assert not first.done and s._drag.arrived.tolist() == [True, False]
    last = s.run(max_steps=150)
    assert last.done and s._drag.arrived.all()
    assert max(last.distances) <= s.config.stop_px(2)


def test_masked_drag_with_huber_mask_loss_arrives_where_l1_holds_back(G64):
    mask = np.zeros((64, 64), bool)
    mask[10:50, 8:46] = True  # around the drag, the paper's weight on the rest
    results = {}
    for beta in (0.1, 0.0):
        s = session(
            G64, mask_beta=beta, mask_image=False, anchor=0.0, track_patch=1
        )  # the feature term alone, the paper's tracker
        s.set_mask(mask)
        results[beta] = s.run(max_steps=60)
    assert results[0.1].done  # 0.48 px after 46 steps
    assert results[0.0].distances[0] > 5  # 9.5 px: the L1 term holds the latent back


def test_the_mask_term_also_holds_the_coarse_image_outside_the_mask(G64):
    mask = np.zeros((64, 64), bool)
    mask[10:50, 8:46] = True
    change = {}
    for held in (True, False):
        s = session(G64, mask_image=held)
        s.set_mask(mask)
        s.run(max_steps=30)
        drag = s._drag
        img = s._features(s.ws, drag.key.feature_side).img
        outside = torch.from_numpy(~mask[::2, ::2])  # the 32 x 32 feature block's cells
        change[held] = (img - drag.img0).abs()[..., outside].mean().item()
    assert change[True] < 0.7 * change[False]
    assert DragConfig.paper().mask_image is False


def test_rebalancing_scales_the_whole_loss_once_handles_arrive(G64):
    """With one of two handles at its target, the motion and the mask terms are both
    doubled, so the step keeps its size and the two keep their balance."""
    mask = np.zeros((64, 64), bool)
    mask[20:40, 10:50] = True
    losses = {}
    for rebalance in (True, False):
        s = DragSession(G64, seed=1, config=DragConfig(rebalance=rebalance), device="cpu")
        s.set_points([(20.5, 30.5), (40.5, 30.5)], [(30.5, 30.5), (40.5, 30.5)])
        s.set_mask(mask)
        losses[rebalance] = s.step(render=False).loss
    assert losses[False] > 0
    assert losses[True] == pytest.approx(2 * losses[False], rel=1e-5)
    assert DragConfig().rebalance and not DragConfig.paper().rebalance


def test_a_step_reads_the_device_once(G64):
    """Points, distances, arrivals, loss and the gradient's finiteness come back in one copy:
    on a GPU each read of a value is a sync that stalls the queue."""
    from traceback import extract_stack

    from torch.utils._python_dispatch import TorchDispatchMode

    class Reads(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default):
                # Adam reads its step count, a host tensor even when the latent is on a GPU
                Reads.count += not any("torch/optim/" in f.filename for f in extract_stack())
            return func(*args, **(kwargs or {}))

    s = session(G64)
    s.step(render=False)  # builds the drag
    with Reads():
        s.step(render=False)
    assert Reads.count == 0  # .tolist() of the packed results is the one copy, not counted


def test_a_nan_gradient_leaves_the_session_as_it_was(G64):
    s = session(G64)
    s.step(render=False)
    ws, handles = s.ws.clone(), s.handles
    s.config.lr = 1e-3
    s._drag.feat0 = s._drag.feat0 * float("nan")  # the anchor's reference poisons the loss
    with pytest.raises(FloatingPointError, match="not finite; lower lr"):
        s.step(render=False)
    assert torch.equal(s.ws, ws) and s.handles == handles and s.step_count == 1
