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

Photos and files. `edit_photo` (the Photo tab's Project button) projects a photo into the
generator in a worker thread, like a drag: the worker never touches a widget, its progress
goes through the same one-slot buffer as the drag's frames and its result is handed to the
kernel's loop, which swaps in the projected latent (and the pivotally tuned generator).
`save_png`, `save_gif`, `save_mp4`, `save_session` and `load_session` (the Files tab)
wrap `draggan_widget.export`. Every one of them either succeeds or leaves the widget as it was
and reports why in the status line and the Output area.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import ipywidgets as widgets
import numpy as np
import torch
import traitlets
from torch import nn

from .. import export, invert
from ..drag import DragConfig, DragSession, StepResult
from ..drag.session import OUTSIDE_REGION
from .canvas import DragCanvas, FrameFormat
from .controls import CONFIG_FIELDS, PHOTO_STEPS, DragControls
from .runner import BackgroundJob, DragRunner, KernelLoop, LatestFrame, warm_optimizer

logger = logging.getLogger(__name__)

Point = tuple[float, float]
Source = Union[str, "os.PathLike[str]"]
RENEWS_IMAGE = ("seed", "truncation_psi")  # config fields that draw a new image
TUNE_STEPS = 350  # pivotal-tuning steps of a photo (PTI's own choice)
# Errors a user causes (a bad file, a folder that cannot be written, a point off the image,
# too high a learning rate, an optional extra not installed): their message says what to do,
# so the Output shows it without a traceback.
USER_ERRORS = (ValueError, OSError, ArithmeticError, export.MissingExtraError)
PHOTO_STAGES = {"w": "projecting into W", "w+": "refining in W+", "pti": "pivotal tuning"}
# Long lines wrap instead of being cut at the widget's edge.
STATUS_STYLE = "font-family: monospace; white-space: normal; overflow-wrap: anywhere"
OUT_DIR = "draggan-output"  # files with relative names go here, beside the notebook


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
class _PhotoStep:
    job: int
    progress: invert.Progress
    steps: int  # projection steps asked for (W and W+ together)


@dataclass
class _PhotoOutcome:
    job: int
    result: Optional[tuple[nn.Module, torch.Tensor, invert.ProjectionReport]]
    error: Optional[BaseException]
    notes: list[str]  # what was done to the photo to fit the model (crop, resize, ...)


@dataclass
class _Stroke:
    mask: np.ndarray  # the mask being painted (a copy; committed on release)
    last: Point
    fixed: bool  # painting the fixed area (must not change) rather than the flexible one


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
        out_dir: where the Files tab and the ``save_*`` methods put files given by a relative
            name (default ``draggan-output`` in the working directory, i.e. beside the
            notebook); created when first written.

    Raises:
        FileNotFoundError, ValueError: ``G`` names no loadable model.
    """

    running = traitlets.Bool(False, help="a drag is running in the worker thread")
    status = traitlets.Unicode("", help="the status line's text")
    handles = traitlets.List(help="handle points (x, y), image pixels, as last drawn")
    targets = traitlets.List(help="target points (x, y), image pixels, as last drawn")
    pending = traitlets.Any(None, allow_none=True, help="a handle waiting for its target")
    projecting = traitlets.Bool(False, help="a photo is being projected in a worker thread")

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
        out_dir: Source = OUT_DIR,
        **kwargs: Any,
    ) -> None:
        enable_colab_widgets()
        self._loop = KernelLoop()  # the constructor runs on the kernel's thread
        # Where the generator came from (a load_generator source), for saved sessions to
        # name; None when unknown (a module, a tuned copy): sessions then embed it.
        self._model_source: Optional[str] = None
        if session is None:
            if isinstance(G, (str, os.PathLike)):
                from ..gan import load_generator

                self._model_source = os.fspath(G)
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
        self._photo: BackgroundJob[Any] = BackgroundJob("drag-photo")
        self._photo_id = 0
        self._photo_finished = 0
        self._photo_outcome: Optional[_PhotoOutcome] = None
        self._stuck: tuple[int, ...] = ()  # handles outside the editable region (drawn hollow)

        self.canvas = DragCanvas(
            session.shape, display_size=display_size, frame_format=frame_format
        )
        self.controls = DragControls(
            num_ws=session.G.num_ws, resolution=session.resolution, models=model_names()
        )
        self.controls.folder.value = os.fspath(out_dir)
        self.status_line = widgets.HTML(layout=widgets.Layout(width="auto"))
        self.output = widgets.Output(
            layout=widgets.Layout(max_height="160px", overflow="auto", width="auto")
        )
        self._runner = DragRunner(on_frame=self._frame_from_worker, on_done=self._done_in_worker)
        self._frames: LatestFrame[_Frame] = LatestFrame(self._loop, self._show_frame)
        self._photo_steps: LatestFrame[_PhotoStep] = LatestFrame(self._loop, self._show_photo_step)
        # The image keeps its size; where the panel finds no room beside it, it goes below.
        self.canvas.widget.layout.flex = "0 0 auto"
        top = widgets.HBox(
            [self.canvas.widget, self.controls], layout=widgets.Layout(flex_flow="row wrap")
        )
        super().__init__([top, self.status_line, self.output], **kwargs)
        self._wire()
        self.refresh()
        warm_optimizer()  # last: its import would slow the constructor's own work (the GIL)

    def _wire(self) -> None:
        c, k = self.canvas, self.controls
        c.on_press, c.on_move, c.on_release = self._on_press, self._on_move, self._on_release
        k.on_config(self._config_from_ui)
        k.tool.observe(self._on_tool, "value")
        k.show_mask.observe(lambda ch: c.show_mask(ch["new"]), "value")
        k.pixels.observe(self._on_pixels, "value")
        k.upload.observe(self._on_upload, "value")
        clicks: dict[widgets.Button, Callable[[], Any]] = {
            k.clear_points: self.clear_points,
            k.clear_mask: self.clear_mask,
            k.start: self.start,
            k.stop: self._request_stop,
            k.undo: self.undo,
            k.redo: self.redo,
            k.reset: self.reset,
            k.save: lambda: self.save_png(k.save_path.value),
            k.save_gif: lambda: self.save_gif(k.gif_path.value),
            k.save_mp4: lambda: self.save_mp4(k.mp4_path.value),
            k.save_session: lambda: self.save_session(k.session_path.value),
            k.load_session: lambda: self.load_session(k.session_path.value),
            k.project: self._project_upload,
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
            self._swap_model(load_generator(source), source=os.fspath(source))
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
            self._swap_model(G, source=os.fspath(source))
        except Exception as exc:
            self.report(exc, f"loading {source}")

    def _swap_model(self, G: nn.Module, *, source: Optional[str] = None) -> None:
        self.stop()
        self._install(self._session_on(G), source=source)

    def _session_on(self, G: nn.Module, w: Optional[torch.Tensor] = None) -> DragSession:
        """A session on another generator, with this one's config, device and seed (or ``w``)."""
        old = self.session
        seed = old.seed if old.seed is not None else old.config.seed
        return DragSession(G, seed=seed, w=w, config=old.config, device=old.device)

    def _install(self, session: DragSession, *, source: Optional[str]) -> None:
        """Show another session (the caller has stopped any run)."""
        self._session = session
        self._model_source = source
        self.canvas.set_resolution(session.shape)
        self.controls.set_limits(num_ws=session.G.num_ws, resolution=session.resolution)
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
        if self.canvas.shape != s.shape:
            self.canvas.set_resolution(s.shape)
        if s.seed is not None and s.seed != s.config.seed:
            s.config.seed = s.seed  # e.g. after w.session.set_seed(): the seed box shows it
        self.handles, self.targets = s.handles, s.targets
        if image:
            self.canvas.draw_image(s.image())
        self.canvas.draw_mask(s.mask)
        self._draw_points(update=True)
        self.controls.show_config(s.config)
        self._update_enabled()
        self._set_status(self._describe_idle())

    def _draw_points(self, *, update: bool = False) -> None:
        """Draw the points; ``update`` asks the session again which handles cannot move (not
        while a drag runs: the question would wait for its step to end)."""
        if update:
            stuck = self.session.stuck_points()
            self._stuck = tuple(i for i, why in stuck if why == OUTSIDE_REGION)
        self.canvas.draw_points(self.handles, self.targets, self.pending, stuck=self._stuck)

    def _update_enabled(self) -> None:
        running = self.running
        self.controls.set_running(running, projecting=self.projecting)
        if running or self.projecting:  # a step holds the session's lock; a photo replaces it
            self.controls.set_history(can_undo=False, can_redo=False, running=True)
        else:
            s = self.session
            self.controls.set_history(can_undo=s.can_undo, can_redo=s.can_redo, running=False)

    def _set_status(self, text: str, *, error: bool = False) -> None:
        """Show ``text`` in the status line; any other than an error clears the last error."""
        self.status = text
        color = "#c62828" if error else "inherit"
        style = f"{STATUS_STYLE}; color: {color}"
        self.status_line.value = f'<span style="{style}">{_html(text)}</span>'
        if not error and self.output.outputs:
            self.output.outputs = ()

    def _describe_idle(self) -> str:
        s = self.session
        n = len(self.handles)
        parts = [f"{n} point pair{'s' if n != 1 else ''}"]
        if self.pending is not None:
            parts[0] += " + a handle waiting for its target"
        parts += [f"handle {i + 1} {why}" for i, why in s.stuck_points()]
        parts.append("mask painted" if s.mask is not None else "no mask")
        if s.seed is not None:
            parts.append(f"seed {s.seed}")
        height, width = s.shape
        parts.append(f"{width} px" if width == height else f"{width}x{height} px")
        parts.append(str(s.device))
        return " · ".join(parts)

    def _describe_step(self, r: StepResult) -> str:
        dist = ", ".join(f"{d:.1f}" for d in r.distances)
        return (
            f"step {r.step} · distance {dist} px · loss {r.loss:.3g} · "
            f"{r.ms:.0f} ms/step · {self.session.device} · {self._describe_arithmetic()}"
        )

    def _describe_arithmetic(self) -> str:
        """'auto (bfloat16)' when the config leaves the choice to the device, else the choice."""
        chosen, runs = self.session.config.precision, self.session.arithmetic
        return f"arithmetic: {chosen} ({runs})" if chosen == "auto" else f"arithmetic: {runs}"

    def report(self, exc: BaseException, what: str = "error") -> None:
        """Show an error in words in the status line and the Output area; the session stays
        usable. The Output holds the latest error only, until an action succeeds."""
        oom = isinstance(exc, torch.cuda.OutOfMemoryError)
        if oom:
            text = f"{what}: out of GPU memory; try fewer points, a smaller model, or device='cpu'"
            torch.cuda.empty_cache()  # give the failed step's memory back for the next try
        else:
            text = f"{what}: {_in_words(exc)}"
        self._set_status(text, error=True)
        self.output.outputs = ()
        if oom or isinstance(exc, USER_ERRORS):  # the message says it all
            self.output.append_stderr(text + "\n")
        else:  # unexpected: keep the traceback for a bug report
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self.output.append_stderr(f"{text}\n\n{tb}")
        logger.debug("%s", text, exc_info=exc)

    # ------------------------------------------------------------------ mouse

    @_reporting("click")
    def _on_press(self, x: float, y: float) -> None:
        if self.projecting:  # a stray click must not throw the projection away
            self._set_status("a photo is being projected and will replace this image; Stop cancels")
            return
        self.stop()  # the UI stops the runner before it edits the session
        tool = self.controls.tool.value
        if tool == "points":
            self._click_point((x, y))
        else:
            self._begin_stroke((x, y), fixed=tool == "fixed")

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
        """A handle, then its target. Only a click on a dot itself (or on the waiting handle)
        removes its pair: a target placed just beside a point stays a target."""
        s = self.session
        _check_on_image(p, s.shape)
        handles, targets = s.handles, s.targets
        on_dot = self.canvas.pick_radius
        if self.pending is not None:
            if _dist(self.pending, p) <= on_dot:  # the waiting handle again: take it back
                self.pending = None
            else:
                with _quiet():  # the status line says why a handle cannot move
                    s.set_points([*handles, self.pending], [*targets, p])
                self.pending = None
        else:
            i = _nearest_pair(handles, targets, p, on_dot)
            if i is None:
                self.pending = p
            else:
                del handles[i], targets[i]
                with _quiet():
                    s.set_points(handles, targets)
        self.handles, self.targets = s.handles, s.targets
        self._draw_points(update=True)
        self._update_enabled()
        self._set_status(self._describe_idle())

    def _begin_stroke(self, p: Point, *, fixed: bool) -> None:
        """Start painting the flexible area (may change) or the fixed one (must not).

        Without a mask everything may change, so the first flexible stroke starts from an
        all-fixed mask and the first fixed stroke from an all-flexible one.
        """
        mask = self.session.mask
        if mask is None:
            mask = np.full(self.session.shape, fixed, dtype=bool)
            self.canvas.draw_mask(mask)  # what is fixed is dimmed
        self._stroke = _Stroke(mask, p, fixed)
        self._paint_to(p)

    def _paint_to(self, p: Point) -> None:
        st = self._stroke
        assert st is not None
        radius = float(self.controls.brush_radius.value)
        paint_segment(st.mask, st.last, p, radius, value=not st.fixed)
        self.canvas.paint(st.last, p, radius, erase=st.fixed)
        st.last = p

    def _end_stroke(self) -> None:
        st, self._stroke = self._stroke, None
        if st is None:
            return
        mask = st.mask if st.mask.any() and not st.mask.all() else None  # None: no restriction
        try:
            with _quiet():
                self.session.set_mask(mask)
        finally:
            self.canvas.draw_mask(self.session.mask)
        self._draw_points(update=True)
        self._set_status(self._describe_idle())

    @_reporting("pixels")
    def _on_pixels(self, change: dict[str, Any]) -> None:
        """Smooth or exact pixels: redraw the image now, unless a drag's next frame will."""
        self.canvas.smooth = not change["new"]
        if not self.running:
            self.canvas.draw_image(self.session.image())

    @_reporting("photo")
    def _on_upload(self, change: dict[str, Any]) -> None:
        if not change["new"]:
            return
        photo = change["new"][0]
        size = photo.get("size") or len(photo.get("content", b""))
        self._set_status(
            f"photo {photo.get('name', '')} ({size / 1024:.0f} KB) chosen · Project finds it in "
            f"the model in {self.controls.photo_steps.value} steps"
        )

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
        with _quiet():
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
        """Back to the first image and step 0, keeping the current point pairs, each handle
        where it was placed (undoable)."""
        self.stop()
        self.session.reset()
        self.refresh()

    # ----------------------------------------------------------------- files

    def save_png(self, path: Source = "draggan.png") -> Path:
        """Save the current image (not the overlays) as PNG; returns the path."""
        return self._save(path, ".png", lambda p: export.save_png(self.session.image(), p))

    def save_gif(self, path: Source = "draggan.gif") -> Path:
        """Save the current (or last) drag as an animated GIF, with its points drawn.

        One frame per step, as the canvas showed it, then the final image; a small model's
        frames are enlarged so that the animation can be seen. A running drag is saved as
        far as it got.

        Args:
            path: the file to write, ending in ``.gif``.

        Returns:
            The path written.

        Raises:
            ValueError: another suffix, or no drag to save (none ran since the last edit).
            OSError: the file cannot be written; nothing is left behind.
        """
        return self._save(path, ".gif", lambda p: export.save_gif(self.session, p, overlay=True))

    def save_mp4(self, path: Source = "draggan.mp4") -> Path:
        """Save the current (or last) drag as an H.264 MP4 video, with its points drawn.

        The same frames as `save_gif`, in a file that is smaller and keeps every colour
        (a GIF has 256). It needs the ``[video]`` extra (imageio and imageio-ffmpeg), which
        is checked before anything is written.

        Args:
            path: the file to write, ending in ``.mp4``.

        Returns:
            The path written.

        Raises:
            ValueError: another suffix, or no drag to save (none ran since the last edit).
            export.MissingExtraError: the ``[video]`` extra is not installed; the message
                says what to install, and the session and its drag stay as they were.
            OSError: the file cannot be written; nothing is left behind.
        """
        return self._save(path, ".mp4", lambda p: export.save_mp4(self.session, p, overlay=True))

    @property
    def out_dir(self) -> Path:
        """Where files given by a relative name go (the Files tab's folder), absolute."""
        return Path(self.controls.folder.value.strip() or OUT_DIR).expanduser().absolute()

    def _output_path(self, path: Source, *, create: bool = True) -> Path:
        """``path`` itself when absolute, else inside `out_dir` (created when ``create``)."""
        path = Path(path).expanduser()
        if path.is_absolute():
            return path
        if create:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / path

    def _save(self, path: Source, suffix: str, write: Callable[[Path], object]) -> Path:
        """Check the file name's suffix, write the file, and say where in the status line."""
        path = self._output_path(_file_path(path, suffix))
        write(path)
        self._set_status(f"saved {path}")
        return path

    def save_session(self, path: Source = "draggan-session.json") -> Path:
        """Save latent, points, mask, config and seed, to go on later with `load_session`.

        A running drag is stopped first, so the latent and the points saved belong together.
        The session names the model it was made with when the widget knows where that came
        from (``"default"``, a registry name, a path); otherwise (a generator passed in, a
        pivotally tuned one, one from a loaded session) the generator is saved beside it
        (``*.generator.safetensors``), because nothing else could bring it back.

        Args:
            path: ``edit.json`` or ``edit``; the latent goes to ``edit.latents.pt`` beside it.

        Returns:
            The path of the JSON file.

        Raises:
            OSError: the files cannot be written.
        """
        self._stop_drag()
        source = self._model_source or _known_source(self.session.G)
        generator: export.GeneratorMode = "reference" if source is not None else "embed"
        out = export.save_session(
            self.session, self._output_path(path), model=source, generator=generator
        )
        self._set_status(f"saved {out}" + (" and its generator" if source is None else ""))
        return out

    def load_session(self, path: Source = "draggan-session.json") -> None:
        """Replace latent, points, mask and config by a session saved with `save_session`.

        The file is read and checked completely before anything changes: a missing, corrupt
        or foreign file is reported and the widget stays as it was. The generator is the one
        saved with the session, else the model it names. The loaded session's history starts
        at its latent.

        Args:
            path: ``edit.json`` or ``edit``.

        Raises:
            FileNotFoundError: no such session, or a file it names is missing.
            ValueError: a corrupt, truncated or inconsistent session.
        """
        path = self._output_path(path, create=False)
        with _quiet():
            session = export.load_session(path, device=self.session.device)
        self.stop()
        self._install(session, source=None)
        self._set_status(f"loaded {path} · {self._describe_idle()}")

    # ----------------------------------------------------------------- photos

    def edit_photo(
        self,
        image: invert.ImageInput,
        *,
        steps: int = PHOTO_STEPS,
        tune: bool = False,
        tune_steps: int = TUNE_STEPS,
    ) -> None:
        """Find a photo in the generator's latent space, in the background, then drag it.

        Projection takes hundreds of steps, so it runs in a worker thread (see
        `invert.edit_photo`) while the kernel keeps answering; the status line shows its
        progress. When it ends, the widget shows the projected latent, on the tuned
        generator if ``tune``, with no points and no history: click handles and targets to
        drag the photo. Stop (or `stop`) cancels it between two steps and leaves the image
        as it was; `wait` waits for it.

        Args:
            image: the photo: an image file's bytes (an upload), a path, a PIL image or an
                ``H x W x 3`` uint8 array. It is cropped at its centre to the model's aspect
                and resized to the model's size (the status line says so).
            steps: projection steps (W, then W+).
            tune: then pivotally tune a copy of the generator so that the latent shows the
                photo itself rather than the model's closest image (slower; the tuned copy
                is saved with the session).
            tune_steps: steps of the tuning.

        Raises:
            ValueError, FileNotFoundError, TypeError: not an image, or bad step counts;
                checked before anything starts, so nothing changes.
            RuntimeError: a running drag or projection did not stop.
        """
        _check_count("steps", steps)
        _check_count("tune_steps", tune_steps)
        G = self.session.G
        prepared = invert.prepare_image(image, self.session.shape)  # fails here, not in the worker
        self.stop()
        if not self._photo.join(30.0):  # a finished job's thread may still be on its way out
            raise RuntimeError("the last photo projection has not ended yet; try again")
        self._photo_id += 1
        job = self._photo_id
        self.projecting = True
        self._update_enabled()
        self._set_status(f"projecting the photo in {steps} steps · Stop cancels it")
        pti_steps = tune_steps if tune else 0

        def work(stopped: Callable[[], bool]) -> Any:
            def progress(step: invert.Progress) -> bool:
                self._photo_steps.put(_PhotoStep(job, step, steps))
                return not stopped()

            return invert.edit_photo(
                G, prepared.image, steps=steps, pti_steps=pti_steps, progress=progress
            )

        def on_done(result: Any, error: Optional[BaseException]) -> None:
            self._photo_outcome = _PhotoOutcome(job, result, error, prepared.notes)
            self._loop.call(self._finish_photo, job)

        self._photo.start(work, on_done)

    def _project_upload(self) -> None:
        k = self.controls
        if not k.upload.value:
            raise ValueError("choose a photo first (Choose photo), then press Project")
        content = k.upload.value[0]["content"]
        self.edit_photo(bytes(content), steps=k.photo_steps.value, tune=k.tune.value)

    def _show_photo_step(self, item: _PhotoStep) -> None:
        """Kernel loop: the projection's progress in the status line."""
        if item.job != self._photo_id or self._photo_finished == item.job:
            return
        p = item.progress
        stage = PHOTO_STAGES.get(p.stage, p.stage)
        done, total = p.step, p.total
        if p.stage != "pti":  # W, then W+: one count over the steps asked for
            total = item.steps
            done = p.step if p.stage == "w" else total - p.total + p.step
        self._set_status(f"{stage} · step {done}/{total} · PSNR {p.psnr:.1f} dB · Stop cancels it")

    @_reporting("photo")
    def _finish_photo(self, job: int) -> None:
        """Kernel loop (or a stop, or `wait`): show the photo, or why not; re-enable controls."""
        with self._finish_lock:
            if job != self._photo_id or self._photo_finished == job:
                return
            self._photo_finished = job
        outcome = self._photo_outcome
        assert outcome is not None and outcome.job == job, "the worker reports before it ends"
        try:
            if outcome.error is not None:
                self.report(outcome.error, "photo")
            elif self._photo.stop_requested or outcome.result is None:
                self._set_status("photo projection cancelled; the image is as it was")
            else:
                G, ws, report = outcome.result
                same_model = G is self.session.G  # not tuned: the model is still the loaded one
                source = self._model_source if same_model else None
                self._install(self._session_on(G, ws), source=source)
                summary = "; ".join([report.summary(), *outcome.notes])
                self._set_status(f"photo: {summary} · click a handle, then its target")
        finally:
            self.projecting = False
            self._update_enabled()

    # -------------------------------------------------------------------- run

    def start(self) -> None:
        """Start dragging in the worker thread (returns at once; see `wait`)."""
        self.running = True

    def stop(self, timeout: Optional[float] = 30.0) -> None:
        """Stop a drag or a photo projection and wait for its current step to end.

        Nothing happens if neither runs. A stopped projection is cancelled: the image stays.

        Raises:
            RuntimeError: the step did not end within ``timeout`` seconds.
        """
        if self.projecting:
            if not self._photo.stop(timeout):
                raise RuntimeError(f"the photo projection did not stop within {timeout} s")
            self._finish_photo(self._photo_id)
        self._stop_drag(timeout)

    def _stop_drag(self, timeout: Optional[float] = 30.0) -> None:
        if not self._runner.running and self._finished_id == self._run_id:
            return
        if not self._runner.stop(timeout):
            raise RuntimeError(f"the drag did not stop within {timeout} s")
        self._finish_run(self._run_id)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for a drag or a photo projection to end by itself; True if it did.

        In a notebook cell the frames and the progress show after the cell.
        """
        if not self._photo.join(timeout):
            return False
        self._finish_photo(self._photo_id)
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
            self._stop_drag()
        self._update_enabled()

    def _launch(self) -> None:
        s = self.session
        if self.projecting:
            raise RuntimeError("a photo is being projected: wait for it, or stop it first")
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
        if self.projecting:
            self._photo.request_stop()
            self._set_status("cancelling the photo after this step ...")
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
        self._draw_points(update=True)
        self._update_enabled()

    def close(self) -> None:
        """Stop a run or a projection and close the widget and its children."""
        self._photo.stop(timeout=30.0)
        self._runner.stop(timeout=30.0)
        self.canvas.close()
        for child in (self.controls, self.status_line, self.output):
            _close_tree(child)
        super().close()


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the session's warnings about handles that cannot move: the widget shows the
    same in its status line and draws those handles hollow."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@functools.lru_cache(maxsize=1)
def _bundled_digest() -> tuple[str, str]:
    """The bundled model's architecture (as JSON) and weights digest, computed once."""
    from ..gan import load_generator

    G = load_generator("default")
    return json.dumps(G.init_kwargs, sort_keys=True), export.generator_sha256(G)


def _known_source(G: nn.Module) -> Optional[str]:
    """``"default"`` when ``G`` holds the bundled model's weights, else None.

    A generator handed to the widget as a module has no name; a saved session can still
    name the bundled model instead of embedding a copy of it, once the weights match.
    """
    try:
        kwargs, digest = _bundled_digest()
    except Exception:  # no bundled model to compare with: the session embeds the generator
        logger.warning("could not read the bundled model to compare with", exc_info=True)
        return None
    same_shape = json.dumps(getattr(G, "init_kwargs", None), sort_keys=True) == kwargs
    return "default" if same_shape and export.generator_sha256(G) == digest else None


def _close_tree(widget: widgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


def _file_path(path: Source, suffix: str) -> Path:
    path = Path(path).expanduser()
    if path.suffix.lower() != suffix:
        raise ValueError(f"the file name must end in {suffix}, got {str(path)!r}")
    return path


def _check_count(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


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


def _in_words(exc: BaseException) -> str:
    """What went wrong, as a sentence for the status line, without Python's class names.

    Errors a user causes carry a message that says what to do; a system error says what the
    system refused and where; anything else is a fault of ours, and the traceback is shown.
    """
    message = str(exc).strip()
    if isinstance(exc, FileNotFoundError) and exc.filename:
        folder = Path(exc.filename).parent
        if not folder.is_dir():
            return f"the folder {folder} does not exist; create it or choose another"
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror.lower()}{where}; choose another file or folder"
    if isinstance(exc, USER_ERRORS) and message:
        return message
    detail = f" ({message})" if message else ""
    return f"something went wrong inside draggan-widget{detail}; the details are below"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
