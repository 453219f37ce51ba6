"""`DragWidget`: the canvas and the control panel wired to a `DragSession`.

State lives in the session (latent, points, mask, config, history); the widget draws it
and turns clicks into session calls. Everything the widget does can therefore be scripted
on ``w.session``; call ``w.refresh()`` afterwards to show the result (the widget's own
operations call it themselves).

``w.config`` is linked both ways with the controls. It is a thin proxy (`LiveConfig`) on
``session.config``: reads come from the session's `DragConfig`, writes go through the
widget, which lets `DragConfig` validate the value, then moves the control. We chose the
proxy over a traitlets mirror of the config because the session's `DragConfig` stays the
only copy of each value (a mirror is a second copy that must be kept in sync both ways
and would duplicate `DragConfig`'s validation), and over polling because polling needs a
timer and lags. A direct edit of ``w.session.config`` also takes effect at the next step;
the control follows after ``w.refresh()``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import ipywidgets as widgets
import numpy as np
import torch
import traitlets
from PIL import Image
from torch import nn

from ..drag import DragConfig, DragSession, StepResult
from .canvas import DragCanvas, FrameFormat
from .controls import CONFIG_FIELDS, DragControls
from .runner import DragRunner, KernelLoop, LatestFrame

logger = logging.getLogger(__name__)

Point = tuple[float, float]
Source = Union[str, "os.PathLike[str]"]
RENEWS_IMAGE = ("seed", "truncation_psi")  # config fields that draw a new image
# Errors a user causes (a bad file, a point off the image, too high a learning rate): their
# message says what to do, so the Output shows it without a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, ArithmeticError)


def enable_colab_widgets() -> bool:
    """In Google Colab, turn on its manager for third-party widgets (ipycanvas needs it).

    Colab shows only its built-in widgets until this is called; elsewhere it does nothing.

    Returns:
        Whether Colab was detected.
    """
    if "google.colab" not in sys.modules:
        return False
    try:
        from google.colab import output  # type: ignore[import-not-found]

        output.enable_custom_widget_manager()
    except Exception:  # an old Colab: the canvas will not show, but say why
        logger.warning("could not enable Colab's custom widget manager", exc_info=True)
    return True


def model_names() -> list[str]:
    """Models the picker offers: ``"default"`` and the registry's names, if it has any."""
    names = ["default"]
    try:
        from ..gan.registry import list_models  # type: ignore[import-not-found]
    except ImportError:
        return names
    try:
        models = list_models()
    except Exception:  # the picker still takes a name or path by hand
        logger.warning("could not list the registry's models", exc_info=True)
        return names
    for m in models:
        name = m if isinstance(m, str) else getattr(m, "name", None)
        if name is None and isinstance(m, dict):
            name = m.get("name")
        if name and name not in names:
            names.append(str(name))
    return names


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


class LiveConfig:
    """``w.config``: the session's `DragConfig`, whose writes move the widget's controls.

    ``w.config.lr = 1e-3`` validates the value (a bad one raises `ValueError` and changes
    nothing), stores it in ``w.session.config`` (the next step uses it) and moves the slider.
    Reads and methods (``w.config.asdict()``) are the `DragConfig`'s own.
    """

    __slots__ = ("_widget",)

    def __init__(self, widget: DragWidget) -> None:
        object.__setattr__(self, "_widget", widget)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._widget.session.config, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._widget.set_config(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._widget.session.config)))

    def __repr__(self) -> str:
        return f"LiveConfig({self._widget.session.config!r})"


@dataclass
class _Frame:
    run_id: int
    result: StepResult
    data: Optional[bytes]  # the encoded image, or None when the step rendered none


@dataclass
class _Stroke:
    mask: np.ndarray  # the mask being painted (a copy; committed on release)
    last: Point
    erase: bool


def _reporting(what: str) -> Callable[[Callable[..., Any]], Callable[..., None]]:
    """Decorate a UI callback so that its errors reach the status line and the Output."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., None]:
        @functools.wraps(fn)
        def wrapper(self: DragWidget, *args: Any, **kwargs: Any) -> None:
            try:
                fn(self, *args, **kwargs)
            except Exception as exc:
                self.report(exc, what)

        return wrapper

    return decorate


class DragWidget(widgets.VBox):
    """DragGAN in a notebook: click handles and targets, paint a mask, press Start.

    Args:
        G: a generator, or where to load one from (a path, a registry name, ``"default"``).
        seed: the first image's seed (default ``config.seed``).
        config: hyperparameters (default `DragConfig()`); the widget edits this object.
        device: None picks CUDA, then MPS, then the CPU.
        session: drive this session instead of making one (``G`` and ``seed`` are ignored).
        display_size: canvas side on screen in pixels (default 512, whatever the image side).
        frame_format: ``"jpeg"`` (fast) or ``"png"`` (exact pixels) for the drag's frames.

    Raises:
        FileNotFoundError, ValueError: ``G`` names no loadable model.
    """

    running = traitlets.Bool(False, help="a drag is running in the worker thread")
    status = traitlets.Unicode("", help="the status line's text")
    handles = traitlets.List(help="handle points (x, y), image pixels, as last drawn")
    targets = traitlets.List(help="target points (x, y), image pixels, as last drawn")
    pending = traitlets.Any(None, allow_none=True, help="a handle waiting for its target")

    def __init__(
        self,
        G: Union[nn.Module, Source] = "default",
        *,
        seed: Optional[int] = None,
        config: Optional[DragConfig] = None,
        device: Union[str, torch.device, None] = None,
        session: Optional[DragSession] = None,
        display_size: Optional[int] = None,
        frame_format: FrameFormat = "jpeg",
        **kwargs: Any,
    ) -> None:
        enable_colab_widgets()
        self._loop = KernelLoop()  # the constructor runs on the kernel's thread
        if session is None:
            if isinstance(G, (str, os.PathLike)):
                from ..gan import load_generator

                G = load_generator(G)
            session = DragSession(G, seed=seed, config=config, device=device)
        self._session = session
        self._run_id = 0
        self._finished_id = 0
        self._run_error: Optional[BaseException] = None
        self._last_result: Optional[StepResult] = None
        self._finish_lock = threading.Lock()
        self._stroke: Optional[_Stroke] = None
        self._loading: Optional[threading.Thread] = None

        self.canvas = DragCanvas(
            session.resolution, display_size=display_size, frame_format=frame_format
        )
        self.controls = DragControls(
            num_ws=session.G.num_ws, resolution=session.resolution, models=model_names()
        )
        self.status_line = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.output = widgets.Output(
            layout=widgets.Layout(max_height="160px", overflow="auto", width="100%")
        )
        self._runner = DragRunner(on_frame=self._frame_from_worker, on_done=self._done_in_worker)
        self._frames: LatestFrame[_Frame] = LatestFrame(self._loop, self._show_frame)
        super().__init__(
            [widgets.HBox([self.canvas.widget, self.controls]), self.status_line, self.output],
            **kwargs,
        )
        self._wire()
        self.refresh()

    def _wire(self) -> None:
        c, k = self.canvas, self.controls
        c.on_press, c.on_move, c.on_release = self._on_press, self._on_move, self._on_release
        k.on_config(self._config_from_ui)
        k.tool.observe(self._on_tool, "value")
        k.show_mask.observe(lambda ch: c.show_mask(ch["new"]), "value")
        clicks: dict[widgets.Button, Callable[[], Any]] = {
            k.clear_points: self.clear_points,
            k.clear_mask: self.clear_mask,
            k.start: self.start,
            k.stop: self._request_stop,
            k.undo: self.undo,
            k.redo: self.redo,
            k.reset: self.reset,
            k.save: lambda: self.save_png(k.save_path.value),
            k.load: lambda: self.load_model(k.model.value.strip() or "default", background=True),
        }
        for button, action in clicks.items():
            button.on_click(self._click_handler(action, button.description or button.tooltip))

    def _click_handler(self, action: Callable[[], Any], what: str) -> Callable[[Any], None]:
        def on_click(_: Any) -> None:
            try:
                action()
            except Exception as exc:
                self.report(exc, what.lower())

        return on_click

    # ---------------------------------------------------------------- session

    @property
    def session(self) -> DragSession:
        """The `DragSession` the widget drives; script it, then call `refresh`."""
        return self._session

    @property
    def config(self) -> LiveConfig:
        """The session's config, linked both ways with the controls (see `LiveConfig`)."""
        return LiveConfig(self)

    @config.setter
    def config(self, config: DragConfig) -> None:
        if isinstance(config, LiveConfig):
            return
        if not isinstance(config, DragConfig):
            raise TypeError(f"config must be a DragConfig, got {type(config).__name__}")
        old = self.session.config
        renew = any(getattr(old, f) != getattr(config, f) for f in RENEWS_IMAGE)
        if renew:
            self.stop()
        self.session.config = config
        if renew:
            self._renew_image(new_seed=old.seed != config.seed)
        self.controls.show_config(config)

    def set_config(self, name: str, value: Any) -> None:
        """Set one config field; the control follows, and the next step uses the value.

        A new ``seed`` or ``truncation_psi`` draws a new image (a run stops first).

        Raises:
            AttributeError: no such field.
            ValueError: a value `DragConfig` refuses; nothing changes.
        """
        cfg = self.session.config
        if name not in {f.name for f in dataclasses.fields(cfg)}:
            raise AttributeError(f"DragConfig has no field {name!r}")
        if name in RENEWS_IMAGE and getattr(cfg, name) != value:
            self.stop()
            setattr(cfg, name, value)
            self._renew_image(new_seed=name == "seed")
        else:
            setattr(cfg, name, value)
        if name in CONFIG_FIELDS:
            self.controls.show(name, getattr(cfg, name))

    def _config_from_ui(self, name: str, value: Any) -> None:
        try:
            self.set_config(name, value)
        except Exception as exc:
            self.report(exc, name)
            self.controls.show(name, getattr(self.session.config, name))  # undo the edit

    def _renew_image(self, *, new_seed: bool = True) -> None:
        s = self.session
        if new_seed or s.seed is not None:  # a latent from elsewhere (a photo) has no seed
            s.set_seed(s.config.seed)
        self.pending = None
        self.refresh()

    def load_model(self, source: Union[nn.Module, Source], *, background: bool = False) -> None:
        """Switch to another generator: a `Generator`, a path, a registry name or "default".

        The new session keeps the config and device. On failure the current model stays.

        Args:
            source: what to load.
            background: load in a thread (the kernel keeps answering; errors are reported
                in the widget); otherwise load here and raise on failure.
        """
        if not isinstance(source, (str, os.PathLike)):
            self._swap_model(source)
            return
        from ..gan import load_generator

        if not background:
            self._swap_model(load_generator(source))
            return
        if self._loading is not None and self._loading.is_alive():
            raise RuntimeError("a model is already loading; wait for it")
        self._set_status(f"loading {source} ...")
        self.controls.load.disabled = True

        def load() -> None:
            try:
                G = load_generator(source)
            except Exception as exc:
                self._loop.call(self._loaded, None, exc, source)
            else:
                self._loop.call(self._loaded, G, None, source)

        self._loading = threading.Thread(target=load, name="drag-load-model", daemon=True)
        self._loading.start()

    def _loaded(self, G: Any, error: Optional[BaseException], source: Any) -> None:
        self.controls.load.disabled = self.running
        if error is not None:
            self.report(error, f"loading {source}")
            return
        try:
            self._swap_model(G)
        except Exception as exc:
            self.report(exc, f"loading {source}")

    def _swap_model(self, G: nn.Module) -> None:
        self.stop()
        old = self.session
        seed = old.seed if old.seed is not None else old.config.seed
        self._session = DragSession(G, seed=seed, config=old.config, device=old.device)
        self.canvas.set_resolution(self._session.resolution)
        self.controls.set_limits(num_ws=G.num_ws, resolution=self._session.resolution)
        self.pending = None
        self.refresh()

    # ---------------------------------------------------------------- drawing

    def refresh(self, *, image: bool = True) -> None:
        """Redraw image, mask, points, controls and status from the session.

        Call it after scripting ``w.session`` (points, mask, run, undo, seed, config).

        Args:
            image: also re-render the image (one generator forward).
        """
        s = self.session
        if self.canvas.resolution != s.resolution:
            self.canvas.set_resolution(s.resolution)
        if s.seed is not None and s.seed != s.config.seed:
            s.config.seed = s.seed  # e.g. after w.session.set_seed(): the seed box shows it
        self.handles, self.targets = s.handles, s.targets
        if image:
            self.canvas.draw_image(s.image())
        self.canvas.draw_mask(s.mask)
        self._draw_points()
        self.controls.show_config(s.config)
        self._update_enabled()
        self._set_status(self._describe_idle())

    def _draw_points(self) -> None:
        self.canvas.draw_points(self.handles, self.targets, self.pending)

    def _update_enabled(self) -> None:
        running = self.running
        self.controls.set_running(running)
        if running:  # the session's lock is busy with a step: do not wait for it
            self.controls.set_history(can_undo=False, can_redo=False, running=True)
        else:
            s = self.session
            self.controls.set_history(can_undo=s.can_undo, can_redo=s.can_redo, running=False)

    def _set_status(self, text: str, *, error: bool = False) -> None:
        self.status = text
        color = "#c62828" if error else "inherit"
        self.status_line.value = (
            f'<span style="font-family: monospace; color: {color}">{_html(text)}</span>'
        )

    def _describe_idle(self) -> str:
        s = self.session
        n = len(self.handles)
        parts = [f"{n} point pair{'s' if n != 1 else ''}"]
        if self.pending is not None:
            parts[0] += " + a handle waiting for its target"
        parts.append("mask painted" if s.mask is not None else "no mask")
        if s.seed is not None:
            parts.append(f"seed {s.seed}")
        parts.append(f"{s.resolution} px")
        parts.append(str(s.device))
        return " · ".join(parts)

    def _describe_step(self, r: StepResult) -> str:
        dist = ", ".join(f"{d:.1f}" for d in r.distances)
        return (
            f"step {r.step} · distance {dist} px · loss {r.loss:.3g} · "
            f"{r.ms:.0f} ms/step · {self.session.device}"
        )

    def report(self, exc: BaseException, what: str = "error") -> None:
        """Show an error in the status line and the Output area; the session stays usable."""
        text = f"{what}: {type(exc).__name__}: {exc}"
        oom = isinstance(exc, torch.cuda.OutOfMemoryError)
        if oom:
            text += " (out of GPU memory: try fewer points, a smaller model, or device='cpu')"
            torch.cuda.empty_cache()  # give the failed step's memory back for the next try
        self._set_status(text, error=True)
        if oom or isinstance(exc, USER_ERRORS):  # the message says it all
            self.output.append_stderr(text + "\n")
        else:  # unexpected: keep the traceback
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self.output.append_stderr(f"{what}:\n{tb}")
        logger.debug("%s", text, exc_info=exc)

    # ------------------------------------------------------------------ mouse

    @_reporting("click")
    def _on_press(self, x: float, y: float) -> None:
        self.stop()  # the UI stops the runner before it edits the session
        tool = self.controls.tool.value
        if tool == "points":
            self._click_point((x, y))
        else:
            self._begin_stroke((x, y), erase=tool == "eraser")

    @_reporting("brush")
    def _on_move(self, x: float, y: float) -> None:
        if self._stroke is not None:
            self._paint_to((x, y))

    @_reporting("brush")
    def _on_release(self, x: float, y: float) -> None:
        if self._stroke is not None and np.isfinite(x) and np.isfinite(y):
            self._paint_to((x, y))
        self._end_stroke()

    @_reporting("tool")
    def _on_tool(self, change: dict[str, Any]) -> None:
        self._end_stroke()

    def _click_point(self, p: Point) -> None:
        s = self.session
        _check_on_image(p, s.resolution)
        handles, targets = s.handles, s.targets
        near = self.canvas.pick_radius
        if self.pending is not None and _dist(self.pending, p) <= near:
            self.pending = None
        else:
            i = _nearest_pair(handles, targets, p, near)
            if i is not None:
                del handles[i], targets[i]
                s.set_points(handles, targets)
            elif self.pending is None:
                self.pending = p
            else:
                s.set_points([*handles, self.pending], [*targets, p])
                self.pending = None
        self.handles, self.targets = s.handles, s.targets
        self._draw_points()
        self._update_enabled()
        self._set_status(self._describe_idle())

    def _begin_stroke(self, p: Point, *, erase: bool) -> None:
        mask = self.session.mask
        if mask is None:
            if erase:
                self._set_status("nothing to erase: no mask is painted (everything may change)")
                return
            mask = np.zeros((self.session.resolution,) * 2, dtype=bool)
            self.canvas.draw_mask(mask)  # everything fixed (dimmed) until painted
        self._stroke = _Stroke(mask, p, erase)
        self._paint_to(p)

    def _paint_to(self, p: Point) -> None:
        st = self._stroke
        assert st is not None
        radius = float(self.controls.brush_radius.value)
        paint_segment(st.mask, st.last, p, radius, value=not st.erase)
        self.canvas.paint(st.last, p, radius, erase=st.erase)
        st.last = p

    def _end_stroke(self) -> None:
        st, self._stroke = self._stroke, None
        if st is None:
            return
        mask = st.mask if st.mask.any() else None  # nothing painted: no restriction
        try:
            self.session.set_mask(mask)
        finally:
            self.canvas.draw_mask(self.session.mask)
        self._set_status(self._describe_idle())

    # ------------------------------------------------------------ operations

    def clear_points(self) -> None:
        """Remove every handle and target."""
        self.stop()
        self.session.set_points([], [])
        self.pending = None
        self.refresh(image=False)

    def clear_mask(self) -> None:
        """Remove the mask: everything may change."""
        self.stop()
        self.session.set_mask(None)
        self.refresh(image=False)

    def undo(self) -> None:
        """Undo the last drag (latent and points)."""
        self.stop()
        self.session.undo()
        self.refresh()

    def redo(self) -> None:
        """Redo the drag that was undone."""
        self.stop()
        self.session.redo()
        self.refresh()

    def reset(self) -> None:
        """Back to the first image, with the points it had (undoable)."""
        self.stop()
        self.session.reset()
        self.refresh()

    def save_png(self, path: Source = "draggan.png") -> Path:
        """Save the current image (not the overlays) as PNG; returns the path."""
        path = Path(path).expanduser()
        if path.suffix.lower() != ".png":
            raise ValueError(f"the file name must end in .png, got {str(path)!r}")
        Image.fromarray(self.session.image()).save(path)
        self._set_status(f"saved {path}")
        return path

    # -------------------------------------------------------------------- run

    def start(self) -> None:
        """Start dragging in the worker thread (returns at once; see `wait`)."""
        self.running = True

    def stop(self, timeout: Optional[float] = 30.0) -> None:
        """Stop a run and wait for its current step to end (nothing if none runs).

        Raises:
            RuntimeError: the step did not end within ``timeout`` seconds.
        """
        if not self._runner.running and self._finished_id == self._run_id:
            return
        if not self._runner.stop(timeout):
            raise RuntimeError(f"the drag did not stop within {timeout} s")
        self._finish_run(self._run_id)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the run to end by itself; True if it did (frames show after the cell)."""
        done = self._runner.join(timeout)
        if done:
            self._finish_run(self._run_id)
        return done

    @traitlets.observe("running")
    def _on_running(self, change: dict[str, Any]) -> None:
        if change["new"] and not self._runner.running:
            try:
                self._launch()
            except Exception as exc:
                self.report(exc, "start")
                self.running = False
                return
        elif not change["new"] and self._finished_id != self._run_id:
            self.stop()
        self._update_enabled()

    def _launch(self) -> None:
        s = self.session
        if not s.handles:
            raise ValueError(
                "add a handle and its target first: click a handle, then where it should go"
            )
        self._end_stroke()
        self._run_id += 1
        self._run_error, self._last_result = None, None
        self._set_status(f"starting · {s.device}")
        self._runner.start(s)

    def _request_stop(self) -> None:
        if self._runner.running:
            self._runner.request_stop()
            self._set_status("stopping after this step ...")

    def _frame_from_worker(self, result: StepResult) -> None:
        """Worker thread: encode the frame here, hand it to the loop (newest wins)."""
        data = None if result.image is None else self.canvas.encode(result.image)
        self._last_result = result
        self._frames.put(_Frame(self._run_id, result, data))

    def _show_frame(self, frame: _Frame) -> None:
        """Kernel loop: draw the newest frame and its tracked points."""
        if frame.run_id != self._run_id:
            return
        r = frame.result
        if frame.data is not None:
            self.canvas.draw_frame(frame.data)
        self.handles, self.targets = list(r.points), list(r.targets)
        self._draw_points()
        self._set_status(self._describe_step(r))

    def _done_in_worker(self, error: Optional[BaseException]) -> None:
        self._run_error = error
        self._loop.call(self._finish_run, self._run_id)

    def _finish_run(self, run_id: int) -> None:
        """Kernel loop (or a stop): show the last frame, the outcome, re-enable controls."""
        with self._finish_lock:
            if run_id != self._run_id or self._finished_id == run_id:
                return
            self._finished_id = run_id
        self._frames.flush()
        self.running = False
        error, last = self._run_error, self._last_result
        if error is not None:
            self.report(error, "drag")
        elif last is not None:
            outcome = (
                "arrived"
                if last.done
                else "stopped"
                if self._runner.stop_requested
                else "max steps reached"
            )
            self._set_status(f"{outcome} · {self._describe_step(last)}")
        self.handles, self.targets = self.session.handles, self.session.targets
        self._draw_points()
        self._update_enabled()

    def close(self) -> None:
        """Stop a run and close the widget and its children."""
        self._runner.stop(timeout=30.0)
        self.canvas.close()
        for child in (self.controls, self.status_line, self.output):
            _close_tree(child)
        super().close()


def _close_tree(widget: widgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


def _check_on_image(p: Point, size: int) -> None:
    x, y = p
    if not (np.isfinite(x) and np.isfinite(y) and 0 <= x <= size and 0 <= y <= size):
        raise ValueError(f"point {p} is off the image; x and y must lie in [0, {size}]")


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


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
