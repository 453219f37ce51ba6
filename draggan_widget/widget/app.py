"""`DragWidget`: the canvas and the control panel wired to a `DragSession`.

State lives in the session (latent, points, mask, config, history); the widget draws it
and turns clicks into session calls. Everything the widget does can therefore be scripted
on ``w.session``; call ``w.refresh()`` afterwards to show the result (the widget's own
operations call it themselves).

The widget holds the traits and composes units that each own one part and know nothing of
the widget (they get what they need as arguments and callbacks): `tools` (the point tool and
the brush), `config` (``w.config``, linked both ways with the controls), `dragging` (runs in
the worker thread and their frames), `photo` (a photo's projection, in a worker thread too),
`files` (the Files tab), `models` (the model picker) and `status` (the status line, errors in
words). A public method that a unit implements is forwarded to it, with its docstring.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

import ipywidgets as widgets
import torch
import traitlets
from torch import nn

from ..drag import DragConfig, DragSession, StepResult
from ..drag.session import OUTSIDE_REGION
from .canvas import DragCanvas, FrameFormat
from .colab import enable_colab_widgets
from .config import ConfigLink, LiveConfig
from .controls import DragControls
from .dragging import DragDriver
from .files import OUT_DIR, SessionFiles, Source
from .models import ModelLoader, model_names, session_on
from .photo import PhotoProjection
from .runner import BackgroundJob, DragRunner, KernelLoop, warm_optimizer
from .status import StatusBar, describe_idle, describe_step, on_click, quiet
from .tools import CanvasTools, Point, click_point, paint_segment

__all__ = ["DragWidget", "LiveConfig", "enable_colab_widgets", "paint_segment"]

T = TypeVar("T")


def _forward(unit: str, method: Callable[..., T]) -> Callable[..., T]:
    """A `DragWidget` method that calls ``method`` of the unit in attribute ``unit``.

    The unit that does the work documents it; the widget's method takes its name, signature
    and docstring, so that ``help(w.save_gif)`` shows the whole story, written once.
    """

    @functools.wraps(method)
    def call(self: DragWidget, *args: Any, **kwargs: Any) -> T:
        return getattr(getattr(self, unit), method.__name__)(*args, **kwargs)

    call.__module__, call.__qualname__ = __name__, f"DragWidget.{method.__name__}"
    return call


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
        self._stuck: tuple[int, ...] = ()  # handles outside the editable region (drawn hollow)

        self.canvas = DragCanvas(
            session.shape, display_size=display_size, frame_format=frame_format
        )
        self.controls = DragControls(
            num_ws=session.G.num_ws, resolution=session.resolution, models=model_names()
        )
        self.controls.folder.value = os.fspath(out_dir)
        self._status_bar = StatusBar(on_text=self._keep_status)
        self.status_line, self.output = self._status_bar.line, self._status_bar.output
        self._make_units()
        # The image keeps its size; where the panel finds no room beside it, it goes below.
        self.canvas.widget.layout.flex = "0 0 auto"
        top = widgets.HBox(
            [self.canvas.widget, self.controls], layout=widgets.Layout(flex_flow="row wrap")
        )
        super().__init__([top, self.status_line, self.output], **kwargs)
        self._wire()
        self.refresh()
        warm_optimizer()  # last: its import would slow the constructor's own work (the GIL)

    def _make_units(self) -> None:
        k, bar = self.controls, self._status_bar
        self._config = ConfigLink(
            lambda: self.session, k, bar, stop=self.stop, on_new_image=self._new_image
        )
        self._tools = CanvasTools(
            self.canvas,
            k,
            bar,
            session=lambda: self.session,
            running=lambda: self.running,
            may_edit=self._may_edit,
            on_click=self._click_point,
            on_mask=self._mask_painted,
        )
        self._drag = DragDriver(
            self._loop, self.canvas, on_frame=self._show_step, on_end=self._drag_ended
        )
        self._projection = PhotoProjection(
            lambda: self.session,
            self._loop,
            bar,
            k,
            stop=self.stop,
            on_busy=self._set_projecting,
            on_photo=self._show_photo,
        )
        self._files = SessionFiles(
            k.folder,
            bar,
            session=lambda: self.session,
            model_source=lambda: self._model_source,
            stop_drag=self._drag.stop,
            on_load=self._session_loaded,
        )
        self._models = ModelLoader(
            self._loop, bar, k.load, running=lambda: self.running, on_model=self._swap_model
        )

    def _wire(self) -> None:
        k = self.controls
        k.on_config(self._config.from_ui)
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
            k.project: self._projection.project_upload,
            k.load: lambda: self.load_model(k.model.value.strip() or "default", background=True),
        }
        for button, action in clicks.items():
            button.on_click(on_click(action, button.description or button.tooltip, self.report))

    # The worker threads, for tests and debugging to wait on or inspect.
    @property
    def _runner(self) -> DragRunner:
        return self._drag.runner

    @property
    def _photo(self) -> BackgroundJob[Any]:
        return self._projection.job

    @property
    def _loading(self) -> Optional[threading.Thread]:
        return self._models.thread

    # ---------------------------------------------------------------- session

    @property
    def session(self) -> DragSession:
        """The `DragSession` the widget drives; script it, then call `refresh`."""
        return self._session

    @property
    def config(self) -> LiveConfig:
        """The session's config, linked both ways with the controls (see `LiveConfig`)."""
        return LiveConfig(self._config)

    @config.setter
    def config(self, config: DragConfig) -> None:
        self._config.replace(config)

    def set_config(self, name: str, value: Any) -> None:
        """Set one config field; the control follows, and the next step uses the value.

        A new ``seed`` or ``truncation_psi`` draws a new image (a run stops first).

        Raises:
            AttributeError: no such field.
            ValueError: a value `DragConfig` refuses; nothing changes.
        """
        self._config.set(name, value)

    def _new_image(self) -> None:
        self.pending = None
        self.refresh()

    load_model = _forward("_models", ModelLoader.load_model)

    def _swap_model(self, G: nn.Module, source: Optional[str] = None) -> None:
        self.stop()
        self._install(session_on(self.session, G), source=source)

    def _install(self, session: DragSession, *, source: Optional[str]) -> None:
        """Show another session (the caller has stopped any run)."""
        self._session = session
        self._model_source = source
        self.canvas.set_resolution(session.shape)
        self.controls.set_limits(num_ws=session.G.num_ws, resolution=session.resolution)
        self._new_image()

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
        self._status_bar.show(text, error=error)

    def _keep_status(self, text: str) -> None:
        self.status = text

    def _describe_idle(self) -> str:
        return describe_idle(self.session, self.handles, self.pending)

    def report(self, exc: BaseException, what: str = "error") -> None:
        """Show an error in words in the status line and the Output area; the session stays
        usable. The Output holds the latest error only, until an action succeeds."""
        self._status_bar.report(exc, what)

    # ------------------------------------------------------------------ mouse

    def _may_edit(self) -> bool:
        if self.projecting:  # a stray click must not throw the projection away
            self._set_status("a photo is being projected and will replace this image; Stop cancels")
            return False
        self.stop()  # the UI stops the runner before it edits the session
        return True

    def _click_point(self, p: Point) -> None:
        s = self.session
        self.pending = click_point(s, self.pending, p, pick_radius=self.canvas.pick_radius)
        self.handles, self.targets = s.handles, s.targets
        self._draw_points(update=True)
        self._update_enabled()
        self._set_status(self._describe_idle())

    def _mask_painted(self) -> None:
        self._draw_points(update=True)
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
        with quiet():
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

    save_png = _forward("_files", SessionFiles.save_png)
    save_gif = _forward("_files", SessionFiles.save_gif)
    save_mp4 = _forward("_files", SessionFiles.save_mp4)
    save_session = _forward("_files", SessionFiles.save_session)

    @property
    def out_dir(self) -> Path:
        """Where files given by a relative name go (the Files tab's folder), absolute."""
        return self._files.out_dir

    load_session = _forward("_files", SessionFiles.load_session)

    def _session_loaded(self, session: DragSession, path: Path) -> None:
        self.stop()
        self._install(session, source=None)
        self._set_status(f"loaded {path} · {self._describe_idle()}")

    # ----------------------------------------------------------------- photos

    edit_photo = _forward("_projection", PhotoProjection.edit_photo)

    def _set_projecting(self, busy: bool) -> None:
        self.projecting = busy
        self._update_enabled()

    def _show_photo(self, G: nn.Module, ws: torch.Tensor) -> None:
        """Kernel loop: show a projected photo; a tuned generator has no name to save."""
        same_model = G is self.session.G  # not tuned: the model is still the loaded one
        source = self._model_source if same_model else None
        self._install(session_on(self.session, G, ws), source=source)

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
            self._projection.stop(timeout)
        self._drag.stop(timeout)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for a drag or a photo projection to end by itself; True if it did.

        In a notebook cell the frames and the progress show after the cell.
        """
        if not self._projection.join(timeout):
            return False
        return self._drag.join(timeout)

    @traitlets.observe("running")
    def _on_running(self, change: dict[str, Any]) -> None:
        if change["new"] and not self._drag.running:
            try:
                self._launch()
            except Exception as exc:
                self.report(exc, "start")
                self.running = False
                return
        elif not change["new"] and self._drag.unfinished:
            self._drag.stop()
        self._update_enabled()

    def _launch(self) -> None:
        s = self.session
        if self.projecting:
            raise RuntimeError("a photo is being projected: wait for it, or stop it first")
        if not s.handles:
            raise ValueError(
                "add a handle and its target first: click a handle, then where it should go"
            )
        self._tools.end_stroke()
        self._set_status(f"starting · {s.device}")
        self._drag.start(s)

    def _request_stop(self) -> None:
        if self.projecting:
            self._projection.request_stop()
        if self._drag.request_stop():
            self._set_status("stopping after this step ...")

    def _show_step(self, r: StepResult) -> None:
        """Kernel loop, after a frame is drawn: its tracked points and the step's status."""
        self.handles, self.targets = list(r.points), list(r.targets)
        self._draw_points()
        self._set_status(describe_step(self.session, r))

    def _drag_ended(
        self, error: Optional[BaseException], last: Optional[StepResult], stopped: bool
    ) -> None:
        """Kernel loop (or a stop): show the outcome and the points, re-enable controls."""
        self.running = False
        if error is not None:
            self.report(error, "drag")
        elif last is not None:
            outcome = "arrived" if last.done else "stopped" if stopped else "max steps reached"
            self._set_status(f"{outcome} · {describe_step(self.session, last)}")
        self.handles, self.targets = self.session.handles, self.session.targets
        self._draw_points(update=True)
        self._update_enabled()

    def close(self) -> None:
        """Stop a run or a projection and close the widget and its children."""
        self._projection.close()
        self._drag.close()
        self.canvas.close()
        for child in (self.controls, self.status_line, self.output):
            _close_tree(child)
        super().close()


def _close_tree(widget: widgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
