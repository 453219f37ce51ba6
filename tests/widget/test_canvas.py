"""The canvas: coordinate conversion, frame encoding, what is sent for each layer."""

from __future__ import annotations

import io
import json
from unittest.mock import MagicMock

import numpy as np
import pytest
from ipycanvas import canvas as ipc
from PIL import Image

from draggan_widget.widget.canvas import (
    FIXED_CSS,
    FIXED_RGBA,
    DragCanvas,
    batched,
    encode_frame,
    mask_overlay,
)


class Sent:
    """Captures what the shared ipycanvas manager sends: (commands, buffers) per message."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.messages: list[tuple[list, list[bytes]]] = []
        monkeypatch.setattr(ipc._CANVAS_MANAGER, "send", self._send)

    def _send(self, content, buffers=None) -> None:
        buffers = [bytes(b) for b in buffers or []]
        self.messages.append((json.loads(buffers[0]), buffers[1:]))

    def names(self) -> list[str]:
        """Command names of every message, flattened."""
        inv = {v: k for k, v in ipc.COMMANDS.items()}
        out: list[str] = []
        for cmds, _ in self.messages:
            batch = cmds if cmds and isinstance(cmds[0], list) else [cmds]
            out += [inv[c[0]] for c in batch]
        return out

    def images(self) -> list[bytes]:
        return [b for _, bufs in self.messages for b in bufs if b[:2] in (b"\xff\xd8", b"\x89P")]


@pytest.fixture
def sent(monkeypatch):
    return Sent(monkeypatch)


def test_small_images_are_scaled_up_to_the_display_size():
    c = DragCanvas(64)
    assert c.widget.width == c.widget.height == 512 and c.scale == 8
    assert c.to_image_xy(80, 40) == (10, 5)
    assert c.to_canvas_xy(10, 5) == (80, 40)
    assert c.pick_radius == pytest.approx(7 / 8)  # the dot itself: 7 screen px
    assert DragCanvas(1024).scale == 0.5 and DragCanvas(1024, display_size=1024).scale == 1
    assert DragCanvas(256, display_size=384).scale == 1.5


def test_mouse_events_reach_the_handlers_in_image_pixels():
    c = DragCanvas(64)
    c.on_press, c.on_move, c.on_release = MagicMock(), MagicMock(), MagicMock()
    c._on_mouse_down(80, 40)
    c._on_mouse_move(88, 40)
    c._on_mouse_up(96, 48)
    c.on_press.assert_called_once_with(10, 5)
    c.on_move.assert_called_once_with(11, 5)
    c.on_release.assert_called_once_with(12, 6)


def test_frontend_mouse_message_reaches_the_handler():
    """The custom message ipycanvas's frontend sends to the MultiCanvas, end to end."""
    c = DragCanvas(32)
    c.on_press = MagicMock()
    msg = {
        "content": {
            "data": {"method": "custom", "content": {"event": "mouse_down", "x": 64, "y": 256}}
        },
        "buffers": [],
    }
    c.widget._handle_msg(msg)
    c.on_press.assert_called_once_with(4, 16)


def test_touch_events_act_as_the_mouse():
    c = DragCanvas(64)
    c.on_press, c.on_release = MagicMock(), MagicMock()
    c._on_touch_start([(80, 40), (0, 0)])
    c._on_touch_end([])
    c.on_press.assert_called_once_with(10, 5)
    assert c.on_release.call_count == 1


def test_encode_frame_jpeg_and_png_decode_to_the_image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    img = np.kron(img[::8, ::8], np.ones((8, 8, 1), np.uint8))  # smooth enough for JPEG
    jpeg = encode_frame(img)
    png = encode_frame(img, fmt="png")
    assert jpeg[:2] == b"\xff\xd8" and png[:4] == b"\x89PNG"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), img)
    back = np.asarray(Image.open(io.BytesIO(jpeg))).astype(int)
    assert np.abs(back - img).mean() < 8


@pytest.mark.parametrize(
    "bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 2))]
)
def test_encode_frame_rejects_what_is_not_an_image(bad):
    with pytest.raises(ValueError, match="uint8"):
        encode_frame(bad)


def test_draw_frame_sends_one_message_with_the_encoded_bytes(sent):
    c = DragCanvas(64)
    sent.messages.clear()
    data = c.encode(np.zeros((64, 64, 3), np.uint8))
    c.draw_frame(data)
    assert len(sent.messages) == 1  # batched: one comm message per frame
    assert sent.images() == [data]
    names = sent.names()
    assert names.index("setTransform") < names.index("putImageData")


def test_frames_are_scaled_smoothly_unless_pixels_are_asked_for(sent):
    """Issue 23: the 64-px face read as 8 x 8 blocks of colour."""
    smoothing = ipc.Canvas.ATTRS["image_smoothing_enabled"]

    def drawn() -> tuple[float, bool]:
        """The scale and the smoothing the last frame was drawn with."""
        cmds = sent.messages[-1][0]
        scale = next(cmd[1][0] for cmd in cmds if cmd[0] == ipc.COMMANDS["setTransform"])
        sets = [cmd[1] for cmd in cmds if cmd[0] == ipc.COMMANDS["set"]]
        return scale, next(value for attr, value in sets if attr == smoothing)

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    c = DragCanvas(64)
    smooth = c.encode(image)
    big = np.asarray(Image.open(io.BytesIO(smooth)).convert("RGB"), dtype=float)
    assert big.shape == (256, 256, 3)  # 4x here, the last 2x in the browser
    assert big[4:8, 4:8].std(axis=(0, 1)).mean() > 5  # not one flat block per model pixel
    c.draw_frame(smooth)
    assert drawn() == (2, True)
    for side, sent_side in ((128, 256), (256, 256), (1024, 1024)):  # 2x and less: the browser's
        frame = DragCanvas(side).encode(np.zeros((side, side, 3), np.uint8))
        assert Image.open(io.BytesIO(frame)).size == (sent_side, sent_side)

    c.smooth = False  # the "pixels" option: the model's pixels, each a crisp square
    exact = c.encode(image)
    assert Image.open(io.BytesIO(exact)).size == (64, 64)
    c.draw_frame(exact)
    assert drawn() == (8, False)
    c.draw_frame(smooth)  # a frame encoded before the switch is still drawn to fit
    assert drawn()[0] == 2


def test_a_handle_that_cannot_move_is_drawn_hollow():
    c = DragCanvas(64)
    layer = c.points_layer
    for name in ("fill_circles", "stroke_circles"):
        setattr(layer, name, MagicMock())
    c.draw_points([(10, 10), (40, 40)], [(30, 10), (50, 40)], stuck=[1])
    filled = [call.args[0].tolist() for call in layer.fill_circles.call_args_list]
    assert filled == [[240, 400], [80]]  # targets, then the handle that can move
    ring = layer.stroke_circles.call_args_list[-1].args
    assert ring[0].tolist() == [320] and ring[1].tolist() == [320]
    c.redraw()  # a new browser view draws it hollow too
    assert layer.fill_circles.call_args_list[-1].args[0].tolist() == [80]


def test_points_are_drawn_in_canvas_pixels():
    c = DragCanvas(64)
    layer = c.points_layer
    for name in ("fill_circles", "stroke_circles", "stroke_line_segments", "fill_polygons"):
        setattr(layer, name, MagicMock())
    c.draw_points([(10, 10)], [(30, 10)])
    handle_call, target_call = (
        layer.fill_circles.call_args_list[1],
        layer.fill_circles.call_args_list[0],
    )
    np.testing.assert_allclose(handle_call.args[0], [80])
    np.testing.assert_allclose(target_call.args[0], [240])
    shaft = layer.stroke_line_segments.call_args.args[0]
    assert shaft.shape == (1, 2, 2) and shaft[0, 0, 0] > 80 and shaft[0, 1, 0] < 240
    assert layer.fill_polygons.call_args.args[0].shape == (1, 3, 2)


def test_points_too_close_get_no_arrow_and_pending_gets_a_ring():
    c = DragCanvas(64)
    layer = c.points_layer
    for name in ("stroke_line_segments", "stroke_circle", "fill_circle"):
        setattr(layer, name, MagicMock())
    c.draw_points([(10, 10)], [(10.5, 10)], pending=(20, 20))
    layer.stroke_line_segments.assert_not_called()
    layer.fill_circle.assert_called_once()
    assert layer.stroke_circle.call_args.args[:2] == (160, 160)


def test_mask_overlay_is_tinted_only_where_editable(sent):
    mask = np.zeros((32, 32), bool)
    mask[4:8, 4:8] = True
    rgba = mask_overlay(mask)
    assert (rgba[~mask] == FIXED_RGBA).all() and (rgba[mask] == 0).all()
    c = DragCanvas(32)
    sent.messages.clear()
    c.draw_mask(mask)
    png = sent.images()
    assert len(png) == 1 and png[0][:4] == b"\x89PNG"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png[0]))), rgba)


def test_hidden_mask_sends_no_overlay(sent):
    c = DragCanvas(32)
    c.show_mask(False)
    sent.messages.clear()
    c.draw_mask(np.ones((32, 32), bool))
    c.paint((1, 1), (5, 5), 2)
    assert sent.images() == [] and "strokeLine" not in sent.names()
    c.show_mask(True)
    assert len(sent.images()) == 1


def test_paint_cuts_the_dimming_and_erase_dims_again():
    c = DragCanvas(32)
    layer = c.mask_layer
    ops: list = []
    record = lambda *a: ops.append((layer.global_composite_operation, layer.stroke_style))  # noqa: E731
    layer.stroke_line = MagicMock(side_effect=record)
    c.paint((1, 1), (5, 5), 2)
    assert ops == [("destination-out", "black")]
    ops.clear()
    c.paint((1, 1), (5, 5), 2, erase=True)
    assert ops == [("destination-out", "black"), ("source-over", FIXED_CSS)]
    assert layer.global_composite_operation == "source-over"


def test_paint_a_dab_draws_a_disc():
    c = DragCanvas(32)
    layer = c.mask_layer
    layer.fill_circle = MagicMock()
    c.paint((2, 3), (2, 3), 1.5)
    assert layer.fill_circle.call_args.args == (32, 48, 24)


def test_redraw_replays_the_last_frame_mask_and_points(sent):
    c = DragCanvas(32)
    c.draw_frame(c.encode(np.zeros((32, 32, 3), np.uint8)))
    c.draw_mask(np.ones((32, 32), bool))
    c.draw_points([(1, 1)], [(9, 9)])
    sent.messages.clear()
    c.redraw()
    assert len(sent.images()) == 2 and "fillCircles" in sent.names()


def test_a_new_frontend_view_gets_everything_redrawn(sent):
    c = DragCanvas(32)
    c.draw_frame(c.encode(np.zeros((32, 32, 3), np.uint8)))
    sent.messages.clear()
    c.points_layer._handle_frontend_event(None, {"event": "client_ready"}, [])
    assert len(sent.images()) == 1


def test_batched_leaves_ipycanvas_usable_after_an_error(sent):
    c = DragCanvas(32)
    with pytest.raises(ZeroDivisionError), batched():
        c.points_layer.fill_rect(0, 0, 1, 1)
        raise ZeroDivisionError
    assert ipc._CANVAS_MANAGER._caching is False
    sent.messages.clear()
    c.points_layer.fill_rect(0, 0, 1, 1)
    assert sent.messages  # sent at once, not stuck in the cache


def test_set_resolution_changes_the_scale_and_clears():
    c = DragCanvas(32)
    c.draw_points([(1, 1)], [(9, 9)])
    c.set_resolution(128)
    assert c.scale == 4 and c.widget.width == 512 and c._points == ([], [], None)
