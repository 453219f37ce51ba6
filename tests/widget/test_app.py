"""DragWidget headless: clicks, brush, config binding, start/stop, history and errors.

Events are fed the way the browser's arrive (``canvas._on_mouse_down`` with canvas pixels,
``button.click()``), mostly against a fake session whose steps the test releases one by one.
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
import types
import warnings
from unittest.mock import MagicMock

import numpy as np
import pytest
import torch
from PIL import Image
from widget_fakes import TIMEOUT, FakeSession

from conftest import make_generator
from draggan_widget import export
from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.widget import DragWidget
from draggan_widget.widget.app import paint_segment

SCALE = 16  # a 32-px session on the 512-px canvas


def click(w: DragWidget, x: float, y: float) -> None:
    """A click at image pixel (x, y), sent as the browser sends it (canvas pixels)."""
    w.canvas._on_mouse_down(x * SCALE, y * SCALE)
    w.canvas._on_mouse_up(x * SCALE, y * SCALE)


def stroke(w: DragWidget, *points: tuple[float, float]) -> None:
    (x, y), *rest = points
    w.canvas._on_mouse_down(x * SCALE, y * SCALE)
    for x, y in rest:
        w.canvas._on_mouse_move(x * SCALE, y * SCALE)
    w.canvas._on_mouse_up(x * SCALE, y * SCALE)


@pytest.fixture
def fake() -> FakeSession:
    return FakeSession()


@pytest.fixture
def w(fake) -> DragWidget:
    widget = DragWidget(session=fake)
    yield widget
    widget.close()


# ------------------------------------------------------------------ points


def test_first_click_is_a_handle_second_its_target(w, fake):
    click(w, 4, 5)
    assert w.pending == (4, 5) and fake.handles == []
    assert "waiting for its target" in w.status
    click(w, 20, 5)
    assert fake.handles == [(4, 5)] and fake.targets == [(20, 5)]
    assert w.pending is None and w.handles == [(4, 5)] and w.targets == [(20, 5)]


def test_a_click_on_a_dot_removes_its_pair(w, fake):
    click(w, 4, 5)
    click(w, 20, 5)
    click(w, 10, 10)
    click(w, 25, 25)
    click(w, 20.2, 5.2)  # on the first target's dot (4.5 screen px from its centre)
    assert fake.handles == [(10, 10)] and fake.targets == [(25, 25)]
    click(w, 6, 6)
    click(w, 6.2, 6)  # on the pending handle's dot: takes it back
    assert w.pending is None and fake.handles == [(10, 10)]


def test_a_target_just_beside_a_point_is_placed_not_a_removal(w, fake):
    """The old pick radius (10 screen px) turned a short drag's target into a removal."""
    click(w, 4, 5)
    click(w, 20, 5)
    click(w, 10, 10)  # a handle waits for its target ...
    click(w, 20.6, 5)  # ... 9.6 screen px from the first target: still its target
    assert fake.handles == [(4, 5), (10, 10)] and fake.targets == [(20, 5), (20.6, 5)]
    click(w, 4, 5.6)  # no handle waits: 9.6 screen px from a dot is a new handle
    assert w.pending == (4, 5.6) and len(fake.handles) == 2


def test_points_are_drawn_with_the_pending_handle(w):
    w.canvas.draw_points = MagicMock()
    click(w, 4, 5)
    w.canvas.draw_points.assert_called_with([], [], (4, 5), stuck=())


def test_a_point_off_the_image_is_reported_and_changes_nothing(w, fake):
    click(w, 4, 5)
    w.canvas._on_mouse_down(-16, 40)  # the browser can report a border pixel just outside
    assert "off the image" in w.status and w.pending == (4, 5)
    assert fake.handles == []
    assert any("off the image" in o["text"] for o in w.output.outputs)
    click(w, 8, 8)  # still usable
    assert fake.handles == [(4, 5)]


def test_clear_points_button(w, fake):
    click(w, 4, 5)
    click(w, 20, 5)
    click(w, 6, 6)
    w.controls.clear_points.click()
    assert fake.handles == [] and w.pending is None and w.handles == []


# -------------------------------------------------------------------- mask


def test_paint_segment_marks_a_capsule():
    m = np.zeros((16, 16), bool)
    paint_segment(m, (2.0, 8.0), (12.0, 8.0), 1.0)
    assert m[8, 2:12].all() and m[7, 2:12].all()  # centres y=7.5 and 8.5 are within 1
    assert not m[5].any() and not m[:, 0].any()
    paint_segment(m, (0.0, 0.0), (0.0, 0.0), 30.0)  # off the edge: clipped by the array
    assert m.all()
    paint_segment(m, (8.5, 8.5), (8.5, 8.5), 0.5, value=False)
    assert not m[8, 8] and m[8, 9]


def test_brush_paints_the_editable_region_into_the_session(w, fake):
    w.controls.tool.value = "brush"
    w.controls.brush_radius.value = 2
    stroke(w, (5, 5), (10, 5), (15, 5))
    mask = fake.mask
    assert mask is not None and mask[5, 5:15].all() and not mask[20:].any()
    assert "mask painted" in w.status


def test_brush_stroke_draws_incrementally_then_once_whole(w):
    w.canvas.paint = MagicMock()
    drawn: list = []
    w.canvas.draw_mask = lambda m: drawn.append(None if m is None else m.sum())
    w.controls.tool.value = "brush"
    stroke(w, (5, 5), (10, 5), (15, 5))
    assert w.canvas.paint.call_count == 4  # the dab, two moves, the release
    assert drawn[0] == 0 and drawn[1] > 0  # all dimmed at the start, exact at the end


def test_fixed_brush_removes_paint_and_an_empty_mask_means_no_restriction(w, fake):
    w.controls.tool.value = "brush"
    w.controls.brush_radius.value = 2
    stroke(w, (5, 5), (15, 5))
    w.controls.tool.value = "fixed"
    w.controls.brush_radius.value = 3
    stroke(w, (5, 5), (10, 5))
    assert fake.mask is not None and not fake.mask[5, 5:8].any() and fake.mask[5, 14]
    w.controls.brush_radius.value = 8
    stroke(w, (0, 5), (20, 5))
    assert fake.mask is None


def test_fixed_brush_without_a_mask_paints_what_must_not_change(w, fake):
    """The official GUI's fixed-area mode: everything may change except what is painted."""
    w.canvas.paint = MagicMock()
    w.controls.tool.value = "fixed"
    w.controls.brush_radius.value = 2
    stroke(w, (5, 5), (10, 5))
    mask = fake.mask
    assert mask is not None and not mask[5, 5:10].any() and mask[20:].all()
    assert w.canvas.paint.call_args.kwargs == {"erase": True}  # dims what it paints
    assert "mask painted" in w.status


def test_a_handle_outside_the_painted_region_is_hollow_and_the_status_says_why(w, fake):
    w.controls.tool.value = "brush"
    w.controls.brush_radius.value = 4
    stroke(w, (20, 20), (25, 20))
    w.controls.tool.value = "points"
    w.canvas.draw_points = MagicMock()
    click(w, 4, 5)  # outside the painted region
    click(w, 20, 5)
    assert w.canvas.draw_points.call_args.kwargs == {"stuck": (0,)}
    assert "handle 1 is outside the painted region" in w.status
    assert "cannot move unless the region includes it" in w.status
    click(w, 22, 21)  # a second pair, inside: drawn filled
    click(w, 26, 21)
    assert w.canvas.draw_points.call_args.kwargs == {"stuck": (0,)}
    w.controls.clear_mask.click()
    assert w.canvas.draw_points.call_args.kwargs == {"stuck": ()}
    assert "outside" not in w.status


def test_a_real_session_warns_once_and_the_widget_shows_it_instead():
    w = DragWidget(make_generator(img_resolution=32), device="cpu")
    mask = np.zeros((32, 32), bool)
    mask[16:, :] = True  # the lower half may change
    with pytest.warns(UserWarning, match="handle 1 is outside the painted region") as seen:
        w.session.set_points([(5.0, 5.0)], [(5.0, 10.0)])
        w.session.set_mask(mask)
    assert len(seen) == 1  # set_points had no mask to check against yet
    with pytest.warns(UserWarning, match="already on its target"):
        w.session.set_points([(5.0, 20.0)], [(5.0, 20.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pinned handle beside a moving one is a usual move
        w.session.set_points([(5.0, 20.0), (9.0, 20.0)], [(5.0, 20.0), (9.0, 26.0)])
    w.session.set_points([], [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the widget's own clicks warn in the status line only
        click(w, 5, 5)
        click(w, 5, 10)
    assert "handle 1 is outside the painted region" in w.status
    assert w.canvas._stuck == (0,)
    w.close()


def test_pixels_shows_the_models_own_pixels_and_redraws_at_once(w, fake):
    w.canvas.draw_frame = MagicMock()
    assert w.canvas.smooth
    w.controls.pixels.value = True
    frame = w.canvas.draw_frame.call_args.args[0]
    assert not w.canvas.smooth and Image.open(io.BytesIO(frame)).size == (32, 32)
    w.controls.pixels.value = False
    frame = w.canvas.draw_frame.call_args.args[0]
    assert w.canvas.smooth and Image.open(io.BytesIO(frame)).size == (256, 256)


def test_clear_mask_and_show_mask(w, fake):
    w.controls.tool.value = "brush"
    stroke(w, (5, 5))
    w.canvas.show_mask = MagicMock()
    w.controls.show_mask.value = False
    w.canvas.show_mask.assert_called_once_with(False)
    w.controls.clear_mask.click()
    assert fake.mask is None


def test_mask_reaches_the_drag_loss_on_a_real_session():
    G = make_generator(img_resolution=32)
    w = DragWidget(G, seed=0, device="cpu")
    w.controls.tool.value = "brush"
    stroke(w, (8, 8), (20, 8))
    assert w.session.mask is not None and w.session.mask[8, 8:20].all()
    w.close()


# ------------------------------------------------------------------ config


def test_config_set_in_code_moves_the_control_and_reaches_the_session(w, fake):
    w.config.lr = 1e-3
    assert w.controls.fields["lr"].value == 1e-3 and fake.config.lr == 1e-3
    w.config.stop_distance = 2.5
    assert w.controls.fields["stop_distance"].value == 2.5
    w.config.stop_distance = None
    assert w.controls.fields["stop_distance"].value == 0
    w.config.w_plus = False
    assert w.controls.fields["w_plus"].value is False
    w.config.precision = "bfloat16"
    assert w.controls.fields["precision"].value == "bfloat16"


def _descendants(widget) -> list:
    children = list(getattr(widget, "children", ()))
    return children + [d for c in children for d in _descendants(c)]


def test_every_config_control_is_on_the_panel(w):
    shown = {id(d) for d in _descendants(w.controls)}
    missing = [name for name, field in w.controls.fields.items() if id(field) not in shown]
    assert not missing, f"controls made but not placed: {missing}"


def test_control_edit_reaches_the_session_config(w, fake):
    w.controls.fields["lambda_mask"].value = 5.0
    w.controls.fields["n_opt_ws"].value = 4
    w.controls.fields["stop_distance"].value = 0
    w.controls.fields["precision"].value = "bfloat16"
    assert fake.config.precision == "bfloat16"
    assert fake.config.lambda_mask == 5.0 and fake.config.n_opt_ws == 4
    assert fake.config.stop_distance is None
    assert w.config.lambda_mask == 5.0


def test_invalid_value_in_code_raises_and_changes_nothing(w, fake):
    with pytest.raises(ValueError, match="r1"):
        w.config.r1 = 50.0  # > r2
    assert fake.config.r1 == 3.0 and w.controls.fields["r1"].value == 3.0
    with pytest.raises(AttributeError):
        w.config.no_such_field = 1


def test_invalid_value_from_a_control_is_reported_and_reverted(w, fake):
    w.controls.fields["r1"].value = 20.0  # > r2 = 12
    assert fake.config.r1 == 3.0 and w.controls.fields["r1"].value == 3.0
    assert "r1" in w.status and w.output.outputs


def test_value_beyond_a_slider_is_not_clipped(w, fake):
    w.config.lr = 0.5  # the slider stops at 1e-1
    assert fake.config.lr == 0.5 and w.controls.fields["lr"].value == 0.5
    w.config.lambda_mask = 500.0
    assert w.controls.fields["lambda_mask"].value == 500.0


def test_assigning_a_whole_config(w, fake):
    w.config = DragConfig(lr=1e-3, r2=20.0, seed=fake.seed)
    assert fake.config.lr == 1e-3 and w.controls.fields["r2"].value == 20.0
    assert fake.seeds_drawn == []  # same seed: the image stays


def test_a_new_seed_draws_a_new_image(w, fake):
    click(w, 4, 5)
    click(w, 20, 5)
    w.controls.fields["seed"].value = 7
    assert fake.seeds_drawn == [7] and fake.config.seed == 7
    assert fake.handles == [] and w.handles == []
    w.config.truncation_psi = 0.5
    assert fake.seeds_drawn == [7, 7]


def test_a_scripted_seed_shows_in_the_seed_box_after_refresh(w, fake):
    fake.set_seed(11)
    w.refresh()
    assert w.controls.fields["seed"].value == 11 and w.config.seed == 11


def test_scripted_session_edits_show_after_refresh(w, fake):
    w.canvas.draw_points = MagicMock()
    fake.set_points([(1, 1)], [(9, 9)])
    fake.config.lr = 5e-3
    w.refresh()
    w.canvas.draw_points.assert_called_with([(1, 1)], [(9, 9)], None, stuck=())
    assert w.controls.fields["lr"].value == 5e-3


# ---------------------------------------------------------------- running


def test_start_without_points_reports(w):
    w.controls.start.click()
    assert not w.running and "add a handle" in w.status


def test_start_runs_until_arrival_and_draws_frames(w, fake):
    click(w, 4, 5)
    click(w, 9, 5)
    w.canvas.draw_frame = MagicMock()
    w.controls.start.click()
    assert w.wait(TIMEOUT)
    assert not w.running and "arrived" in w.status
    assert w.canvas.draw_frame.call_count >= 1
    assert w.handles[0][0] == pytest.approx(8.0)
    assert w.controls.undo.disabled is False


def test_stop_button_stops_within_one_step_and_controls_follow(w, fake):
    click(w, 2, 2)
    click(w, 30, 2)
    fake.gate = threading.Event()
    w.controls.start.click()
    assert fake.started.wait(TIMEOUT)
    assert w.running
    c = w.controls
    assert c.start.disabled and not c.stop.disabled
    assert c.fields["seed"].disabled and c.fields["w_plus"].disabled and c.undo.disabled
    assert c.fields["precision"].disabled
    assert not c.fields["lr"].disabled  # read before every step
    c.stop.click()
    assert "stopping" in w.status
    fake.gate.set()
    assert w.wait(TIMEOUT)
    assert fake.steps_run == 1 and not w.running and "stopped" in w.status
    assert not c.start.disabled and c.stop.disabled and not c.fields["seed"].disabled


def test_config_set_while_running_is_used_by_the_next_step(w, fake):
    click(w, 2, 2)
    click(w, 30, 2)
    fake.gate = threading.Event()
    fake.config.max_steps = 2
    w.start()
    assert fake.started.wait(TIMEOUT)
    w.config.lr = 1e-3  # a notebook cell, while step 1 runs
    fake.started.clear()
    fake.gate.set()
    assert fake.started.wait(TIMEOUT)
    fake.gate.set()
    assert w.wait(TIMEOUT)
    assert fake.lr_seen == [DragConfig().lr, 1e-3] and w.controls.fields["lr"].value == 1e-3


def test_click_while_running_stops_the_run_first(w, fake):
    click(w, 2, 2)
    click(w, 30, 2)
    fake.gate = threading.Event()
    w.start()
    assert fake.started.wait(TIMEOUT)
    # end the step only once the click has asked the run to stop (stop() then waits for it)
    release = threading.Thread(target=lambda: w._runner._stop.wait(TIMEOUT) and fake.gate.set())
    release.start()
    click(w, 10, 20)
    release.join(TIMEOUT)
    assert not w.running and fake.steps_run == 1 and w.pending == (10, 20)


def test_status_line_shows_step_distances_speed_and_device(w, fake):
    click(w, 2, 2)
    click(w, 30, 2)
    click(w, 2, 20)
    click(w, 26, 20)
    fake.config.max_steps = 3
    w.start()
    assert w.wait(TIMEOUT)
    assert "max steps reached" in w.status
    assert "step 3" in w.status and "25.0, 21.0 px" in w.status
    assert "ms/step" in w.status and "fake" in w.status
    assert "arithmetic: auto (float32)" in w.status  # which arithmetic 'auto' chose


def test_error_in_a_step_is_shown_and_the_session_stays_usable(w, fake):
    fake.fail_at = 2
    click(w, 2, 2)
    click(w, 30, 2)
    w.start()
    assert w.wait(TIMEOUT)
    assert "out of memory" in w.status and not w.running
    assert any("RuntimeError" in o["text"] for o in w.output.outputs)
    fake.config.max_steps = 2
    w.start()
    assert w.wait(TIMEOUT) and "max steps reached" in w.status


@pytest.mark.parametrize(
    "exc, shown",
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory"), "out of GPU memory"),
        (FloatingPointError("the drag loss is nan; lower lr"), "lower lr"),
    ],
)
def test_expected_step_errors_are_explained_without_a_traceback(w, fake, exc, shown):
    fake.fail_at, fake.fail_exc = 1, exc
    click(w, 2, 2)
    click(w, 30, 2)
    w.start()
    assert w.wait(TIMEOUT)
    assert shown in w.status
    text = "".join(o["text"] for o in w.output.outputs)
    assert shown in text and "Traceback" not in text


def test_only_the_latest_error_is_shown_and_a_success_clears_it(w, fake):
    """Issue 28: errors stacked under the widget and stayed after later successes."""
    w.canvas._on_mouse_down(-16, 40)
    w.canvas._on_mouse_down(-32, 40)
    w.controls.start.click()  # no points yet
    shown = [o["text"] for o in w.output.outputs]
    assert len(shown) == 1 and "add a handle" in shown[0]
    click(w, 4, 5)
    assert w.output.outputs == () and "waiting for its target" in w.status


@pytest.mark.parametrize(
    "exc, words",
    [
        (ValueError("the file name must end in .png"), "must end in .png"),
        (export.MissingExtraError("pip install 'draggan-widget[video]'"), "pip install"),
        (PermissionError(13, "Permission denied", "/root/x.png"), "permission denied (/root/x"),
        (KeyError("w_avg"), "something went wrong inside draggan-widget ('w_avg')"),
        (RuntimeError(), "something went wrong inside draggan-widget; the details are below"),
    ],
)
def test_errors_are_said_in_words_without_class_names(w, exc, words):
    w.report(exc, "save")
    assert words in w.status and type(exc).__name__ not in w.status
    assert "Error" not in w.status


def test_undo_redo_reset_buttons(w, fake):
    click(w, 2, 2)
    click(w, 6, 2)
    w.start()
    assert w.wait(TIMEOUT)
    moved = fake.handles
    w.controls.undo.click()
    assert fake.handles == [(2, 2)] and not w.controls.redo.disabled
    w.controls.redo.click()
    assert fake.handles == moved
    w.controls.reset.click()
    assert fake.step_count == 0


def test_reset_keeps_the_current_pairs_and_restarts_the_step_count():
    """Issue 28: Reset brought cleared points back, dropped new ones, and kept counting."""
    w = DragWidget(make_generator(img_resolution=32), device="cpu")
    s = w.session
    click(w, 8, 8)
    click(w, 12, 8)
    s.run(max_steps=3)
    assert s.handles != [(8.0, 8.0)] and s.step_count == 3
    w.clear_points()
    click(w, 20, 20)  # a pair added after the drag
    click(w, 20, 26)
    s.run(max_steps=2)
    dragged = s.handles[0]
    click(w, 4, 4)  # and one added after the second drag
    click(w, 4, 9)
    w.controls.reset.click()
    assert s.targets == [(20.0, 26.0), (4.0, 9.0)]  # the cleared pair stays cleared
    assert s.handles == [(20.0, 20.0), (4.0, 4.0)]  # each handle where it was placed
    assert dragged != (20.0, 20.0) and s.step_count == 0
    assert torch.equal(s.ws, s._ws_initial)
    assert s.step().step == 1
    w.close()


def test_frames_are_drawn_on_the_loop_thread():
    """In a kernel the worker never draws: frames arrive through the event loop."""

    async def main() -> tuple[set, int]:
        fake = FakeSession()
        w = DragWidget(session=fake)
        threads: set = set()
        w.canvas.draw_frame = lambda data: threads.add(threading.get_ident())
        w.canvas.draw_points = lambda *a, **k: threads.add(threading.get_ident())
        finished = asyncio.Event()
        w.observe(lambda ch: None if ch["new"] else finished.set(), "running")
        fake.set_points([(2, 2)], [(12, 2)])
        w.start()
        await asyncio.wait_for(finished.wait(), TIMEOUT)
        assert "arrived" in w.status
        w.close()
        return threads, threading.get_ident()

    threads, loop_thread = asyncio.run(main())
    assert threads == {loop_thread}


# ------------------------------------------------------------ files, models


def test_save_png_writes_the_current_image(w, fake, tmp_path):
    fake.step_count = 7
    w.controls.save_path.value = str(tmp_path / "out.png")
    w.controls.save.click()
    img = np.asarray(Image.open(tmp_path / "out.png"))
    assert img.shape == (32, 32, 3) and (img == 7).all() and "saved" in w.status
    w.controls.save_path.value = str(tmp_path / "out.jpg")
    w.controls.save.click()
    assert "must end in .png" in w.status


def test_load_model_switches_generator_and_canvas_scale():
    w = DragWidget(make_generator(img_resolution=32), device="cpu")
    w.load_model(make_generator(img_resolution=64))
    assert w.session.resolution == 64 and w.canvas.scale == 8
    assert w.controls.fields["n_opt_ws"].max == w.session.G.num_ws
    w.close()


def test_a_bad_model_file_is_reported_and_the_old_model_stays(tmp_path, w, fake):
    bad = tmp_path / "model.pkl"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError):
        w.load_model(str(bad))
    w.controls.model.value = str(tmp_path / "missing.pkl")
    w.controls.load.click()
    w._loading.join(TIMEOUT)  # loads in the background; the report comes on the loop
    assert "missing.pkl" in w.status and w.session is fake
    assert not w.controls.load.disabled


def test_real_session_drag_from_the_widget():
    G = make_generator(img_resolution=32)
    w = DragWidget(G, seed=0, config=DragConfig(max_steps=3), device="cpu")
    assert isinstance(w.session, DragSession)
    frames: list = []
    w.canvas.draw_frame = frames.append
    click(w, 10, 16)
    click(w, 20, 16)
    w.controls.start.click()
    assert w.wait(TIMEOUT)
    assert w.session.step_count == 3 and frames and frames[-1][:2] == b"\xff\xd8"
    assert "step 3" in w.status and "cpu" in w.status
    w.controls.undo.click()
    assert w.session.handles == [(10, 16)]
    w.close()


def test_colab_widget_manager_is_enabled(monkeypatch, fake):
    output = types.SimpleNamespace(enable_custom_widget_manager=MagicMock())
    colab = types.ModuleType("google.colab")
    colab.output = output
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    DragWidget(session=fake).close()
    output.enable_custom_widget_manager.assert_called_once()
