"""The widget on a portrait model (StyleGAN-Human's 2:1): a portrait canvas, and clicks that
land where the pointer was, at both ends of both axes. Mouse events are sent as the custom
messages ipycanvas's frontend sends, in canvas pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import make_generator
from draggan_widget.drag import DragSession
from draggan_widget.widget import DragWidget
from draggan_widget.widget.canvas import DragCanvas

pytestmark = pytest.mark.usefixtures("one_thread")


def mouse(w: DragWidget, event: str, x: float, y: float) -> None:
    """A mouse event as the browser sends it: a custom message with canvas pixels."""
    content = {"event": event, "x": x, "y": y}
    msg = {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
    w.canvas.widget._handle_msg(msg)


def click(w: DragWidget, x: float, y: float) -> None:
    mouse(w, "mouse_down", x, y)
    mouse(w, "mouse_up", x, y)


@pytest.fixture
def w():
    G = make_generator(img_resolution=32, square=False)
    widget = DragWidget(session=DragSession(G, seed=0, device="cpu"))
    yield widget
    widget.close()


def test_a_portrait_model_gets_a_portrait_canvas(w):
    c = w.canvas
    assert c.shape == (32, 16) and c.scale == 16
    assert (c.widget.width, c.widget.height) == (256, 512)
    assert (c.widget.layout.width, c.widget.layout.height) == ("256px", "512px")
    assert "16x32 px" in w.status


def test_clicks_at_two_corners_land_where_the_pointer_was(w):
    click(w, 8, 8)  # near the top-left corner: canvas (8, 8) is image (0.5, 0.5)
    click(w, 248, 504)  # near the bottom-right corner of the 256 x 512 canvas
    assert w.session.handles == [(0.5, 0.5)] and w.session.targets == [(15.5, 31.5)]


def test_a_click_past_the_narrow_side_is_off_the_image(w):
    click(w, 300, 100)  # inside a square canvas, but right of this one
    assert w.session.handles == [] and "x must lie in [0, 16] and y in [0, 32]" in w.status


def test_the_brush_paints_a_portrait_mask(w):
    w.controls.tool.value = "brush"
    w.controls.brush_radius.value = 2
    mouse(w, "mouse_down", 248, 504)  # the bottom-right corner
    mouse(w, "mouse_up", 248, 504)
    mask = w.session.mask
    assert mask.shape == (32, 16) and mask[31, 15] and not mask[0, 0]


def test_switching_between_square_and_portrait_resizes_the_canvas():
    c = DragCanvas(64)
    assert (c.widget.width, c.widget.height) == (512, 512)
    c.set_resolution((1024, 512))
    assert (c.widget.width, c.widget.height) == (256, 512) and c.scale == 0.5
    assert c.to_image_xy(256, 512) == (512, 1024)
    c.set_resolution(64)
    assert (c.widget.width, c.widget.height) == (512, 512) and c.shape == (64, 64)


def test_the_frame_is_sent_at_the_models_aspect(w):
    data = w.canvas.encode(np.zeros((32, 16, 3), dtype=np.uint8))
    with Image.open(io.BytesIO(data)) as im:
        assert im.size[0] * 2 == im.size[1]
