"""The drawing surface: image, mask and point layers on one ipycanvas `MultiCanvas`.

This module only draws and converts between canvas and image coordinates; what a click
means is decided in `app`. Each layer is redrawn on its own, so a new frame of the drag
sends one encoded image and never redraws the mask or re-encodes the overlay.

The canvas has a fixed display size (512 px by default, its longer side; a portrait model
such as StyleGAN-Human's 2:1 gets a portrait canvas, one scale for both axes). By default a
frame is shown smoothly scaled (`smooth`), so a 64-px model reads as an image rather than
as 8 x 8 blocks of colour: the worker enlarges it with a Lanczos filter by a whole factor
to within 2x of the screen (64 -> 256 px, ~2 ms a frame on 2 cores; to the full 512 px
took 4-6 ms), and the browser's bilinear filter does the last step (alone, over 8x, it
leaves visible blocks and diamonds). With ``smooth = False`` (the "pixels" option) the
frame keeps the model's pixels and the browser draws each as a crisp square. Points,
arrows and the mask are drawn on their own layers at screen resolution, crisp either way.
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
from typing import Callable, Literal, Optional, Union

import numpy as np
from ipycanvas import MultiCanvas, hold_canvas
from ipycanvas import canvas as _ipycanvas
from ipywidgets import Layout
from PIL import Image

logger = logging.getLogger(__name__)

Point = tuple[float, float]
ImageSize = Union[int, tuple[int, int]]  # a square image's side, or (height, width)
FrameFormat = Literal["jpeg", "png"]

HANDLE_COLOR = "#e53935"  # red
TARGET_COLOR = "#1e88e5"  # blue
ARROW_COLOR = "white"
OUTLINE_COLOR = "rgba(0, 0, 0, 0.6)"
FIXED_RGBA = (0, 0, 0, 128)  # the region that must not change is dimmed by half
FIXED_CSS = f"rgba(0, 0, 0, {FIXED_RGBA[3] / 255:.3f})"
POINT_RADIUS = 7.0  # canvas px: large enough to hit on purpose
PICK_RADIUS = POINT_RADIUS  # canvas px: a click on a dot itself selects it, not one beside it
STUCK_WIDTH = 3.0  # canvas px: the ring of a handle that cannot move (hollow)
BROWSER_SCALE = 2  # the most a smooth frame is enlarged by the browser's bilinear filter
SMOOTH_FILTER = Image.LANCZOS
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


def presize(image: np.ndarray, scale: float) -> np.ndarray:
    """Enlarge an ``H x W x C`` uint8 image smoothly by the whole factor that leaves at most
    `BROWSER_SCALE` of ``scale`` to the browser (unchanged when that factor is 1).

    Safe to call from any thread: it touches no widget.
    """
    factor = int(scale // BROWSER_SCALE)
    if factor <= 1:
        return image
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((w * factor, h * factor), SMOOTH_FILTER))


def encoded_width(data: bytes) -> int:
    """The width in pixels of an encoded frame, read from its header (nothing is decoded)."""
    with Image.open(io.BytesIO(data)) as im:
        return im.width


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
        resolution: side of the images, or their ``(height, width)``, in image pixels.
        display_size: longer side of the canvas on screen, in CSS pixels; None: 512 (a
            1024-px image is then shown at half size: pass 1024 to see every pixel).
        frame_format: how frames are encoded (see `encode_frame`).
        quality: JPEG quality.
        smooth: show frames smoothly scaled; False shows the model's pixels as crisp
            squares (the widget's "pixels" option).
    """

    def __init__(
        self,
        resolution: ImageSize,
        *,
        display_size: Optional[int] = None,
        frame_format: FrameFormat = "jpeg",
        quality: int = JPEG_QUALITY,
        smooth: bool = True,
    ) -> None:
        self.frame_format: FrameFormat = frame_format
        self.quality = quality
        self.smooth = smooth
        self.display_size = display_size
        self._fit(resolution)
        width, height = self.canvas_size
        self.widget = MultiCanvas(
            3, width=width, height=height, layout=Layout(width=f"{width}px", height=f"{height}px")
        )
        self.image_layer, self.mask_layer, self.points_layer = (self.widget[i] for i in range(3))
        self.mask_visible = True
        self.on_press: Callable[[float, float], None] = _ignore
        self.on_move: Callable[[float, float], None] = _ignore
        self.on_release: Callable[[float, float], None] = _ignore
        self._frame: Optional[bytes] = None
        self._mask: Optional[np.ndarray] = None
        self._mask_data: Optional[bytes] = None
        self._points: tuple[list[Point], list[Point], Optional[Point]] = ([], [], None)
        self._stuck: tuple[int, ...] = ()
        self.widget.on_mouse_down(self._on_mouse_down)
        self.widget.on_mouse_move(self._on_mouse_move)
        self.widget.on_mouse_up(self._on_mouse_up)
        self.widget.on_mouse_out(self._on_mouse_up)
        self.widget.on_touch_start(self._on_touch_start)
        self.widget.on_touch_move(self._on_touch_move)
        self.widget.on_touch_end(self._on_touch_end)
        self.widget.on_client_ready(self.redraw)

    def _fit(self, resolution: ImageSize) -> None:
        """Set `shape`, `resolution` (the longer side) and `scale` for images of this size:
        the longer side fills the display size, the other keeps the image's aspect."""
        if isinstance(resolution, (tuple, list)):
            height, width = (int(v) for v in resolution)
        else:
            height = width = int(resolution)
        side = DEFAULT_DISPLAY if self.display_size is None else int(self.display_size)
        self.shape = (height, width)
        self.resolution = max(height, width)
        self.scale = side / self.resolution

    @property
    def canvas_size(self) -> tuple[int, int]:
        """``(width, height)`` of the canvas on screen, CSS pixels."""
        height, width = self.shape
        return round(width * self.scale), round(height * self.scale)

    def set_resolution(self, resolution: ImageSize) -> None:
        """Show images of another size (another model); forgets what was drawn."""
        self._fit(resolution)
        width, height = self.canvas_size
        if (width, height) != (self.widget.width, self.widget.height):
            self.widget.width, self.widget.height = width, height
            self.widget.layout.width, self.widget.layout.height = f"{width}px", f"{height}px"
        self._frame, self._mask, self._mask_data = None, None, None
        self._points, self._stuck = ([], [], None), ()
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
        """Encode a frame as this canvas sends it (any thread): `presize` d if `smooth`."""
        if self.smooth:
            image = presize(image, self.scale)
        return encode_frame(image, fmt=self.frame_format, quality=self.quality)

    def draw_frame(self, data: bytes) -> None:
        """Show an encoded image (from `encode`) on the image layer, scaled to fill it.

        The scale comes from the frame's own width, so a frame encoded before `smooth`
        changed is still drawn at the right size.
        """
        self._frame = data
        s = self.widget.width / encoded_width(data)
        with batched():
            layer = self.image_layer
            layer.image_smoothing_enabled = self.smooth  # pixels: each one a crisp square
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
        *,
        stuck: Sequence[int] = (),
    ) -> None:
        """Redraw the points layer: handles red, targets blue, an arrow from each handle
        to its target, and a ringed handle that still waits for its target.

        Args:
            handles, targets, pending: image pixels.
            stuck: indices of handles that cannot move (outside the editable region, say):
                drawn hollow, so that a drag that will go nowhere shows before it starts.
        """
        self._points = (list(handles), list(targets), pending)
        self._stuck = tuple(stuck)
        s = self.scale
        h = np.asarray(handles, dtype=np.float64).reshape(-1, 2) * s
        t = np.asarray(targets, dtype=np.float64).reshape(-1, 2) * s
        hollow = np.zeros(len(h), dtype=bool)
        hollow[[i for i in stuck if 0 <= i < len(h)]] = True
        n = min(len(h), len(t))
        segments, heads = _arrows(h[:n], t[:n])
        layer = self.points_layer
        with batched():
            layer.clear_rect(0, 0, self.widget.width, self.widget.height)
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
            for pts, color in ((t, TARGET_COLOR), (h[~hollow], HANDLE_COLOR)):
                if len(pts):
                    layer.fill_style = color
                    layer.fill_circles(pts[:, 0], pts[:, 1], POINT_RADIUS)
                    layer.stroke_style = "white"
                    layer.line_width = 1.5
                    layer.stroke_circles(pts[:, 0], pts[:, 1], POINT_RADIUS)
            if hollow.any():
                rings = h[hollow]
                for color, width in (("white", STUCK_WIDTH + 2), (HANDLE_COLOR, STUCK_WIDTH)):
                    layer.stroke_style = color
                    layer.line_width = width
                    layer.stroke_circles(rings[:, 0], rings[:, 1], POINT_RADIUS - 1)
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
        s = self.scale
        with batched():
            layer.clear_rect(0, 0, self.widget.width, self.widget.height)
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
        self.draw_points(*self._points, stuck=self._stuck)


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
