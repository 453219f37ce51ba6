"""The drawing surface: image, mask and point layers on one ipycanvas `MultiCanvas`.

This module only draws and converts between canvas and image coordinates; what a click
means is decided in `app`. Each layer is redrawn on its own, so a new frame of the drag
sends one encoded image and never redraws the mask or re-encodes the overlay.

The canvas has a fixed display size (512 px by default) and the image is scaled into it
by the canvas transform, so a 64-px model sends 64-px frames and the browser scales them.
Points stay in image pixels everywhere outside this module.

Every method that draws must run on the kernel's event loop (see `runner`), because
ipycanvas batches commands in one global, thread-unsafe cache. `encode_frame` is the
exception: it touches no widget, so the worker thread encodes while the loop only sends.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Callable, Literal, Optional

import numpy as np
from ipycanvas import MultiCanvas, hold_canvas
from ipycanvas import canvas as _ipycanvas
from ipywidgets import Layout
from PIL import Image

logger = logging.getLogger(__name__)

Point = tuple[float, float]
FrameFormat = Literal["jpeg", "png"]

HANDLE_COLOR = "#e53935"  # red
TARGET_COLOR = "#1e88e5"  # blue
ARROW_COLOR = "white"
OUTLINE_COLOR = "rgba(0, 0, 0, 0.6)"
FIXED_RGBA = (0, 0, 0, 128)  # the region that must not change is dimmed by half
FIXED_CSS = f"rgba(0, 0, 0, {FIXED_RGBA[3] / 255:.3f})"
POINT_RADIUS = 5.0  # canvas px
PICK_RADIUS = 10.0  # canvas px: a click this close to a point selects it
DEFAULT_DISPLAY = 512
JPEG_QUALITY = 85

_DRAW_LOCK = threading.RLock()  # drawing outside a kernel (scripts, tests) may use threads


@contextmanager
def batched() -> Iterator[None]:
    """``hold_canvas()`` under a lock, leaving ipycanvas usable if a draw call fails.

    ``hold_canvas`` leaves its global cache switched on when the body raises, and every
    later draw command (of any canvas) would then be cached and never sent.
    """
    with _DRAW_LOCK:
        try:
            with hold_canvas():
                yield
        except BaseException:
            manager = getattr(_ipycanvas, "_CANVAS_MANAGER", None)
            if manager is not None:
                manager._caching = False
                manager._commands_cache, manager._buffers_cache = [], []
            raise


def encode_frame(
    image: np.ndarray, *, fmt: FrameFormat = "jpeg", quality: int = JPEG_QUALITY
) -> bytes:
    """Encode an ``H x W x 3`` (or ``x 4``) uint8 image for ``putImageData``.

    JPEG is ~10x faster to encode and smaller than PNG at 512 px, and a drag frame needs no
    exact pixels. Small images (side <= 256) keep full chroma (4:4:4): the canvas scales
    them up, which would magnify the colour bleeding of 4:2:0 subsampling.

    Safe to call from any thread: it touches no widget.

    Raises:
        ValueError: not a uint8 ``H x W x 3`` or ``H x W x 4`` array.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(
            f"a frame must be a uint8 H x W x 3 or x 4 array, got {arr.dtype} {arr.shape}"
        )
    buf = io.BytesIO()
    if fmt == "jpeg":
        rgb = arr[..., :3]
        subsampling = 0 if max(arr.shape[:2]) <= 256 else 2
        Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    elif fmt == "png":
        Image.fromarray(arr).save(buf, "PNG", compress_level=1)
    else:
        raise ValueError(f"frame format must be 'jpeg' or 'png', got {fmt!r}")
    return buf.getvalue()


def mask_overlay(mask: np.ndarray) -> np.ndarray:
    """``H x W`` bool -> ``H x W x 4`` uint8: the fixed region dimmed, the editable one clear.

    Dimming what may not change reads on any image (a tint vanishes on images of its own
    colour), and the region being edited stays exactly as the generator drew it.
    """
    out = np.zeros((*mask.shape, 4), dtype=np.uint8)
    out[~mask] = FIXED_RGBA
    return out


def put_encoded(layer: _ipycanvas.Canvas, data: bytes, x: float = 0, y: float = 0) -> None:
    """``putImageData`` with bytes encoded beforehand.

    ``Canvas.put_image_data`` encodes inside the call (JPEG at a fixed quality 75, 4:2:0),
    i.e. on the kernel loop. Sending ready bytes moves the encoding to the worker thread
    and lets us choose quality and subsampling. The frontend decodes the buffer the same
    way either way (an ``<img>`` from a blob sniffs JPEG and PNG alike). It calls the
    canvas manager's ``send_draw_command``, which ipycanvas does not document (0.13-0.14);
    ``tests/widget/test_canvas.py`` checks the message it sends.
    """
    layer._canvas_manager.send_draw_command(
        layer, _ipycanvas.COMMANDS["putImageData"], [x, y], [data]
    )


class DragCanvas:
    """Three stacked layers: the image, the mask overlay, and the points (top).

    The top layer receives the mouse; its events are converted to image pixels and passed
    to `on_press`, `on_move` and `on_release` (set them to your handlers).

    Args:
        resolution: side of the images, in image pixels.
        display_size: side of the canvas on screen, in CSS pixels; None: 512 (a 1024-px
            image is then shown at half size: pass 1024 to see every pixel).
        frame_format: how frames are encoded (see `encode_frame`).
        quality: JPEG quality.
    """

    def __init__(
        self,
        resolution: int,
        *,
        display_size: Optional[int] = None,
        frame_format: FrameFormat = "jpeg",
        quality: int = JPEG_QUALITY,
    ) -> None:
        self.frame_format: FrameFormat = frame_format
        self.quality = quality
        self.display_size = display_size
        size = self._display_side(resolution)
        self.widget = MultiCanvas(
            3, width=size, height=size, layout=Layout(width=f"{size}px", height=f"{size}px")
        )
        self.image_layer, self.mask_layer, self.points_layer = (self.widget[i] for i in range(3))
        self.resolution = resolution
        self.scale = size / resolution
        self.mask_visible = True
        self.on_press: Callable[[float, float], None] = _ignore
        self.on_move: Callable[[float, float], None] = _ignore
        self.on_release: Callable[[float, float], None] = _ignore
        self._frame: Optional[bytes] = None
        self._mask: Optional[np.ndarray] = None
        self._mask_data: Optional[bytes] = None
        self._points: tuple[list[Point], list[Point], Optional[Point]] = ([], [], None)
        self.widget.on_mouse_down(self._on_mouse_down)
        self.widget.on_mouse_move(self._on_mouse_move)
        self.widget.on_mouse_up(self._on_mouse_up)
        self.widget.on_mouse_out(self._on_mouse_up)
        self.widget.on_touch_start(self._on_touch_start)
        self.widget.on_touch_move(self._on_touch_move)
        self.widget.on_touch_end(self._on_touch_end)
        self.widget.on_client_ready(self.redraw)

    def _display_side(self, resolution: int) -> int:
        return DEFAULT_DISPLAY if self.display_size is None else int(self.display_size)

    def set_resolution(self, resolution: int) -> None:
        """Show images of another side (another model); forgets what was drawn."""
        size = self._display_side(resolution)
        self.resolution = resolution
        self.scale = size / resolution
        if size != self.widget.width:
            self.widget.width = self.widget.height = size
            self.widget.layout.width = self.widget.layout.height = f"{size}px"
        self._frame, self._mask, self._mask_data = None, None, None
        self._points = ([], [], None)
        with batched():
            self.widget.clear()

    def close(self) -> None:
        """Close the canvas and its layers."""
        for i in range(3):
            self.widget[i].close()
        self.widget.close()

    # ------------------------------------------------------------- coordinates

    def to_image_xy(self, x: float, y: float) -> Point:
        """Canvas pixels (mouse events) -> image pixels; not clipped."""
        return (x / self.scale, y / self.scale)

    def to_canvas_xy(self, x: float, y: float) -> Point:
        """Image pixels -> canvas pixels."""
        return (x * self.scale, y * self.scale)

    @property
    def pick_radius(self) -> float:
        """How near (image px) a click must be to a point to select it."""
        return PICK_RADIUS / self.scale

    # ------------------------------------------------------------------ events

    def _on_mouse_down(self, x: float, y: float) -> None:
        self.on_press(*self.to_image_xy(x, y))

    def _on_mouse_move(self, x: float, y: float) -> None:
        self.on_move(*self.to_image_xy(x, y))

    def _on_mouse_up(self, x: float, y: float) -> None:
        self.on_release(*self.to_image_xy(x, y))

    def _on_touch_start(self, touches: Sequence[Point]) -> None:
        if touches:
            self._on_mouse_down(*touches[0])

    def _on_touch_move(self, touches: Sequence[Point]) -> None:
        if touches:
            self._on_mouse_move(*touches[0])

    def _on_touch_end(self, touches: Sequence[Point]) -> None:
        self.on_release(float("nan"), float("nan"))  # a lifted finger has no position

    # ----------------------------------------------------------------- drawing

    def encode(self, image: np.ndarray) -> bytes:
        """Encode a frame as this canvas sends it (any thread)."""
        return encode_frame(image, fmt=self.frame_format, quality=self.quality)

    def draw_frame(self, data: bytes) -> None:
        """Show an encoded image (from `encode`) on the image layer."""
        self._frame = data
        s = self.scale
        with batched():
            layer = self.image_layer
            layer.image_smoothing_enabled = s < 4  # beyond 4x, show pixels rather than blur
            layer.set_transform(s, 0, 0, s, 0, 0)
            put_encoded(layer, data)
            layer.reset_transform()

    def draw_image(self, image: np.ndarray) -> None:
        """Encode and show an ``H x W x 3`` uint8 image."""
        self.draw_frame(self.encode(image))

    def draw_points(
        self,
        handles: Sequence[Point],
        targets: Sequence[Point],
        pending: Optional[Point] = None,
    ) -> None:
        """Redraw the points layer: handles red, targets blue, an arrow from each handle
        to its target, and a ringed handle that still waits for its target.
        """
        self._points = (list(handles), list(targets), pending)
        s = self.scale
        h = np.asarray(handles, dtype=np.float64).reshape(-1, 2) * s
        t = np.asarray(targets, dtype=np.float64).reshape(-1, 2) * s
        n = min(len(h), len(t))
        segments, heads = _arrows(h[:n], t[:n])
        layer = self.points_layer
        size = self.widget.width
        with batched():
            layer.clear_rect(0, 0, size, size)
            layer.line_cap = "round"
            if len(segments):
                layer.stroke_style = OUTLINE_COLOR
                layer.line_width = 4
                layer.stroke_line_segments(segments)
                layer.stroke_style = ARROW_COLOR
                layer.line_width = 2
                layer.stroke_line_segments(segments)
                layer.fill_style = ARROW_COLOR
                layer.fill_polygons(heads)
            for pts, color in ((t, TARGET_COLOR), (h, HANDLE_COLOR)):
                if len(pts):
                    layer.fill_style = color
                    layer.fill_circles(pts[:, 0], pts[:, 1], POINT_RADIUS)
                    layer.stroke_style = "white"
                    layer.line_width = 1.5
                    layer.stroke_circles(pts[:, 0], pts[:, 1], POINT_RADIUS)
            if pending is not None:
                px, py = pending[0] * s, pending[1] * s
                layer.fill_style = HANDLE_COLOR
                layer.fill_circle(px, py, POINT_RADIUS)
                layer.stroke_style = "white"
                layer.line_width = 2
                layer.stroke_circle(px, py, POINT_RADIUS + 4)

    def draw_mask(self, mask: Optional[np.ndarray]) -> None:
        """Redraw the mask layer from an ``H x W`` bool array (None: no overlay)."""
        self._mask = None if mask is None else np.array(mask, dtype=bool)  # a copy
        self._mask_data = None
        if self._mask is not None and self.mask_visible:
            self._mask_data = encode_frame(mask_overlay(self._mask), fmt="png")
        self._draw_mask_layer()

    def _draw_mask_layer(self) -> None:
        layer = self.mask_layer
        size = self.widget.width
        s = self.scale
        with batched():
            layer.clear_rect(0, 0, size, size)
            if self._mask_data is not None and self.mask_visible:
                layer.image_smoothing_enabled = False  # crisp edges: mask pixels are exact
                layer.set_transform(s, 0, 0, s, 0, 0)
                put_encoded(layer, self._mask_data)
                layer.reset_transform()

    def show_mask(self, visible: bool) -> None:
        """Show or hide the mask overlay (the mask itself is unchanged)."""
        self.mask_visible = bool(visible)
        self.draw_mask(self._mask)

    def paint(self, p0: Point, p1: Point, radius: float, *, erase: bool = False) -> None:
        """Draw one brush segment on the mask layer without re-sending the whole mask.

        Painting cuts the dimming away under the segment; erasing cuts it away too, then
        dims the segment again, so overlapping strokes keep one uniform shade instead of
        stacking alpha. Before the first stroke on an image without a mask, draw the
        all-fixed mask (`draw_mask` of all False) so that there is dimming to cut.

        Args:
            p0, p1: ends of the stroke segment, image pixels (equal for a single dab).
            radius: brush radius, image pixels.
            erase: clear instead of paint.
        """
        if not self.mask_visible:
            return
        s = self.scale
        x0, y0, x1, y1 = p0[0] * s, p0[1] * s, p1[0] * s, p1[1] * s
        r = radius * s
        dot = (x0, y0) == (x1, y1)
        layer = self.mask_layer
        with batched():
            layer.line_cap = "round"
            layer.line_width = 2 * r
            passes = [("destination-out", "black")]
            if erase:
                passes.append(("source-over", FIXED_CSS))
            for op, color in passes:
                layer.global_composite_operation = op
                if dot:
                    layer.fill_style = color
                    layer.fill_circle(x0, y0, r)
                else:
                    layer.stroke_style = color
                    layer.stroke_line(x0, y0, x1, y1)
            layer.global_composite_operation = "source-over"

    def redraw(self) -> None:
        """Draw every layer again from what was last drawn (e.g. for a new browser view)."""
        if self._frame is not None:
            self.draw_frame(self._frame)
        self._draw_mask_layer()
        self.draw_points(*self._points)


def _arrows(h: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrow shafts ``[K, 2, 2]`` from each handle to the rim of its target, and heads
    ``[K, 3, 2]``, in canvas pixels; pairs closer than the point size get no arrow."""
    d = t - h
    length = np.linalg.norm(d, axis=1)
    keep = length > 2 * POINT_RADIUS + 2
    if not keep.any():
        return np.zeros((0, 2, 2)), np.zeros((0, 3, 2))
    h, t, d, length = h[keep], t[keep], d[keep], length[keep]
    u = d / length[:, None]  # unit direction
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)  # normal
    tip = t - u * (POINT_RADIUS + 1)
    head = np.minimum(8.0, length * 0.4)[:, None]
    base = tip - u * head
    shaft = np.stack([h + u * POINT_RADIUS, base], axis=1)
    heads = np.stack([tip, base + v * head * 0.5, base - v * head * 0.5], axis=1)
    return shaft, heads


def _ignore(x: float, y: float) -> None:
    """Default event handler: do nothing."""
