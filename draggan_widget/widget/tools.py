"""The canvas tools: the point tool (handles, then targets) and the mask brush.

Both edit a `DragSession` only through its own calls (`set_points`, `set_mask`), so that
the session checks what they set; a running drag is stopped first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ..drag import DragSession
from .canvas import DragCanvas
from .controls import DragControls
from .status import StatusBar, quiet, reporting

Point = tuple[float, float]


def paint_segment(
    mask: np.ndarray, p0: Point, p1: Point, radius: float, *, value: bool = True
) -> None:
    """Set every pixel whose centre lies within ``radius`` of the segment ``p0``-``p1``.

    This is the brush: one capsule per mouse move, so a fast stroke leaves no gaps.
    Only the bounding box of the capsule is computed.

    Args:
        mask: ``H x W`` bool, edited in place.
        p0, p1: segment ends ``(x, y)``, image pixels (pixel ``i`` spans ``[i, i+1)``).
        radius: brush radius, image pixels.
        value: True paints, False erases.
    """
    h, w = mask.shape
    (x0, y0), (x1, y1) = p0, p1
    c0 = max(int(np.floor(min(x0, x1) - radius)), 0)
    c1 = min(int(np.ceil(max(x0, x1) + radius)) + 1, w)
    r0 = max(int(np.floor(min(y0, y1) - radius)), 0)
    r1 = min(int(np.ceil(max(y0, y1) + radius)) + 1, h)
    if c0 >= c1 or r0 >= r1:
        return
    xs = np.arange(c0, c1) + 0.5
    ys = np.arange(r0, r1)[:, None] + 0.5
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else np.clip(((xs - x0) * dx + (ys - y0) * dy) / length2, 0, 1)
    dist2 = (xs - (x0 + t * dx)) ** 2 + (ys - (y0 + t * dy)) ** 2
    mask[r0:r1, c0:c1][dist2 <= radius * radius] = value


def click_point(
    session: DragSession, pending: Optional[Point], p: Point, *, pick_radius: float
) -> Optional[Point]:
    """A click of the point tool: a handle, then its target.

    Only a click on a dot itself (or on the waiting handle) removes its pair: a target
    placed just beside a point stays a target.

    Args:
        session: whose points change.
        pending: the handle waiting for its target, if any.
        p: the click ``(x, y)``, image pixels.
        pick_radius: how near a dot a click must be to take it, image pixels.

    Returns:
        The handle now waiting for its target, if any.

    Raises:
        ValueError: ``p`` is off the image; nothing changes.
    """
    _check_on_image(p, session.shape)
    handles, targets = session.handles, session.targets
    if pending is not None:
        if _dist(pending, p) > pick_radius:  # not the waiting handle again (that takes it back)
            with quiet():  # the status line says why a handle cannot move
                session.set_points([*handles, pending], [*targets, p])
        return None
    i = _nearest_pair(handles, targets, p, pick_radius)
    if i is None:
        return p
    del handles[i], targets[i]
    with quiet():
        session.set_points(handles, targets)
    return None


@dataclass
class _Stroke:
    """One brush stroke, from press to release."""

    mask: np.ndarray  # the mask being painted (a copy; committed on release)
    last: Point
    fixed: bool  # painting the fixed area (must not change) rather than the flexible one

    @property
    def region(self) -> Optional[np.ndarray]:
        """The editable region to commit: None when the stroke leaves no restriction."""
        return self.mask if self.mask.any() and not self.mask.all() else None


class CanvasTools:
    """Turns the canvas's mouse events into the chosen tool's edits; shows the panel's
    display options (mask shown, exact pixels) on the canvas.

    The point tool hands each click to ``on_click``. The brush paints a copy of the mask and
    the canvas as the mouse moves, and commits the mask to the session on release (or when
    the tool changes, or a drag starts), so that a drag never sees half a stroke.

    Args:
        canvas: whose mouse events are taken, and where strokes are drawn.
        controls: the panel's tool choice and brush radius (read at each event).
        status: where an event's error is reported.
        session: the session now shown.
        running: whether a drag runs (its next frame redraws the image anyway).
        may_edit: called before an edit: stops a run, or says why no edit may start (False).
        on_click: the point tool's click ``(x, y)``, image pixels.
        on_mask: called after a stroke's mask is committed (redraw points, status).
    """

    def __init__(
        self,
        canvas: DragCanvas,
        controls: DragControls,
        status: StatusBar,
        *,
        session: Callable[[], DragSession],
        running: Callable[[], bool],
        may_edit: Callable[[], bool],
        on_click: Callable[[Point], None],
        on_mask: Callable[[], None],
    ) -> None:
        self._canvas, self._controls = canvas, controls
        self._session, self._running, self._may_edit = session, running, may_edit
        self._on_click, self._on_mask = on_click, on_mask
        self.report = status.report  # what @reporting calls
        self._stroke: Optional[_Stroke] = None
        canvas.on_press = self._on_press
        canvas.on_move = self._on_move
        canvas.on_release = self._on_release
        controls.tool.observe(self._on_tool, "value")
        controls.show_mask.observe(lambda ch: canvas.show_mask(ch["new"]), "value")
        controls.pixels.observe(self._on_pixels, "value")

    @reporting("click")
    def _on_press(self, x: float, y: float) -> None:
        if not self._may_edit():
            return
        tool = self._controls.tool.value
        if tool == "points":
            self._on_click((x, y))
        else:
            self._begin_stroke((x, y), fixed=tool == "fixed")

    @reporting("brush")
    def _on_move(self, x: float, y: float) -> None:
        if self._stroke is not None:
            self._paint_to((x, y))

    @reporting("brush")
    def _on_release(self, x: float, y: float) -> None:
        if self._stroke is not None and np.isfinite(x) and np.isfinite(y):
            self._paint_to((x, y))
        self.end_stroke()

    @reporting("tool")
    def _on_tool(self, change: dict[str, Any]) -> None:
        self.end_stroke()

    @reporting("pixels")
    def _on_pixels(self, change: dict[str, Any]) -> None:
        """Smooth or exact pixels: redraw the image now, unless a drag's next frame will."""
        self._canvas.smooth = not change["new"]
        if not self._running():
            self._canvas.draw_image(self._session().image())

    def _begin_stroke(self, p: Point, *, fixed: bool) -> None:
        """Start painting the flexible area (may change) or the fixed one (must not).

        Without a mask everything may change, so the first flexible stroke starts from an
        all-fixed mask and the first fixed stroke from an all-flexible one.
        """
        s = self._session()
        mask = s.mask
        if mask is None:
            mask = np.full(s.shape, fixed, dtype=bool)
            self._canvas.draw_mask(mask)  # what is fixed is dimmed
        self._stroke = _Stroke(mask, p, fixed)
        self._paint_to(p)

    def _paint_to(self, p: Point) -> None:
        st = self._stroke
        assert st is not None
        radius = float(self._controls.brush_radius.value)
        paint_segment(st.mask, st.last, p, radius, value=not st.fixed)
        self._canvas.paint(st.last, p, radius, erase=st.fixed)
        st.last = p

    def end_stroke(self) -> None:
        """Commit the stroke under way, if any, to the session's mask."""
        st, self._stroke = self._stroke, None
        if st is None:
            return
        session = self._session()
        try:
            with quiet():
                session.set_mask(st.region)
        finally:
            self._canvas.draw_mask(session.mask)
        self._on_mask()


def _check_on_image(p: Point, shape: tuple[int, int]) -> None:
    """Raise unless ``p = (x, y)`` lies on an image of ``shape = (height, width)``."""
    x, y = p
    height, width = shape
    if not (np.isfinite(x) and np.isfinite(y) and 0 <= x <= width and 0 <= y <= height):
        raise ValueError(
            f"point {p} is off the image; x must lie in [0, {width}] and y in [0, {height}]"
        )


def _dist(a: Point, b: Point) -> float:
    return float(np.hypot(a[0] - b[0], a[1] - b[1]))


def _nearest_pair(
    handles: list[Point], targets: list[Point], p: Point, radius: float
) -> Optional[int]:
    """Index of the pair with a handle or target nearest to ``p`` within ``radius``."""
    best, best_d = None, radius
    for i, pair in enumerate(zip(handles, targets)):
        for q in pair:
            d = _dist(q, p)
            if d <= best_d:
                best, best_d = i, d
    return best
