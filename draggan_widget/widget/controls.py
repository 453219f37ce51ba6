"""The control panel: tools, run buttons, one control per tunable `DragConfig` field, a
photo upload and the file exports.

The panel holds no state of its own. `DragWidget` tells it what to show (`show`,
`show_config`) and learns of user edits through the callback given to `on_config`;
`show` never calls that callback back, so code and controls cannot ping-pong.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, Callable, Optional

import ipywidgets as widgets

TOOLS = ("points", "brush", "fixed")
LABEL_WIDTH = "92px"
# Beside a 512-px canvas the panel takes the room left (a notebook at 1280 px with
# JupyterLab's file browser open leaves about 330 px), between these widths; every row inside
# stretches to it rather than adding up fixed widths, which made the tabs scroll sideways.
PANEL_WIDTH = "320px"
PANEL_MIN_WIDTH = "300px"
PANEL_MAX_WIDTH = "400px"

# DragConfig fields with a control here, in panel order.
CONFIG_FIELDS = (
    "lr",
    "lambda_mask",
    "warp",
    "hold",
    "r1",
    "r2",
    "max_steps",
    "w_plus",
    "n_opt_ws",
    "stop_distance",
    "precision",
    "seed",
    "truncation_psi",
)
# Controls that cannot change while a drag runs: they change the optimised variables or
# start a new image. The others are read by the session before every step.
FIXED_WHILE_RUNNING = ("w_plus", "n_opt_ws", "precision", "seed", "truncation_psi")
PHOTO_STEPS = 1000  # projection steps offered for a photo (NVIDIA's projector: 1000)

ConfigCallback = Callable[[str, Any], None]


def _style() -> dict[str, str]:
    return {"description_width": LABEL_WIDTH}


def _row_layout() -> widgets.Layout:
    """As wide as the box around it, margins included (the box stretches it; 100% would add
    the margins and stick out)."""
    return widgets.Layout(width="auto")


def _stretch() -> widgets.Layout:
    """A row's flexible part: takes the room its fixed-width neighbours leave."""
    return widgets.Layout(width="auto", flex="1 1 auto", min_width="0")


def _row(children: Sequence[widgets.Widget], **kw: Any) -> widgets.HBox:
    return widgets.HBox(list(children), layout=widgets.Layout(width="auto", **kw))


def _button(description: str, icon: str, tooltip: str, **kw: Any) -> widgets.Button:
    return widgets.Button(
        description=description, icon=icon, tooltip=tooltip, layout=_stretch(), **kw
    )


class DragControls(widgets.VBox):
    """Tools, run buttons and settings for a `DragWidget`.

    Args:
        num_ws: the generator's number of style vectors (the range of ``n_opt_ws``).
        resolution: the image side (the brush radius range scales with it).
        models: model names to offer besides a typed path (``"default"`` first).
    """

    def __init__(self, *, num_ws: int, resolution: int, models: Sequence[str] = ("default",)):
        self._showing = False
        self._on_config: Optional[ConfigCallback] = None

        self.tool = widgets.ToggleButtons(
            options=[("Points", "points"), ("Flexible", "brush"), ("Fixed", "fixed")],
            value="points",
            tooltips=[
                "Click a handle, then its target; click on a dot to remove its pair",
                "Paint the flexible area: the region that may change",
                "Paint the fixed area: the region that must not change",
            ],
            style={"button_width": "98px"},
        )
        self.brush_radius = widgets.IntSlider(
            value=1,
            min=1,
            max=2,
            description="brush",
            tooltip="brush radius, image pixels",
            style={"description_width": "44px"},
            layout=_row_layout(),
        )
        self.show_mask = widgets.Checkbox(
            value=True,
            description="show mask",
            indent=False,
            tooltip="dim the region that must not change",
            layout=widgets.Layout(width="100px", flex="0 0 100px"),
        )
        self.pixels = widgets.Checkbox(
            value=False,
            description="pixels",
            indent=False,
            tooltip="show the model's own pixels, enlarged without smoothing",
            layout=widgets.Layout(width="66px", flex="0 0 66px"),
        )
        self.clear_points = _button("Clear points", "times", "Remove every point")
        self.clear_mask = _button("Clear mask", "times", "Remove the mask: everything may change")

        self.start = _button("Start", "play", "Drag the handles to their targets")
        self.start.button_style = "success"
        self.stop = _button("Stop", "stop", "Stop after the current step", disabled=True)
        self.stop.button_style = "danger"
        self.undo = _button("Undo", "undo", "Undo the last drag", disabled=True)
        self.redo = _button("Redo", "repeat", "Redo the drag undone", disabled=True)
        self.reset = _button("Reset", "refresh", "Back to the image before any drag")

        self.fields: dict[str, widgets.ValueWidget] = {
            "lr": widgets.FloatLogSlider(  # the browser snaps to the step: a fine one keeps 1.5e-2
                value=1.5e-2, base=10, min=-4, max=-1, step=0.001, readout_format=".1e"
            ),
            "lambda_mask": widgets.FloatSlider(value=60.0, min=0, max=200, step=1),
            "warp": widgets.FloatSlider(value=0.2, min=0, max=2, step=0.05),
            "hold": widgets.FloatSlider(value=4.0, min=0, max=20, step=0.5),
            "r1": widgets.FloatSlider(value=3.0, min=0.5, max=32, step=0.5),
            "r2": widgets.FloatSlider(value=12.0, min=1, max=64, step=0.5),
            "max_steps": widgets.BoundedIntText(value=300, min=1, max=100_000),
            "w_plus": widgets.Dropdown(
                options=[("W+ (one style per layer)", True), ("W (one shared style)", False)],
                value=True,
            ),
            "n_opt_ws": widgets.IntSlider(value=6, min=1, max=max(num_ws, 1)),
            "stop_distance": widgets.BoundedFloatText(value=0.0, min=0.0, max=1e4, step=0.5),
            "precision": widgets.Dropdown(
                options=[
                    ("auto (fastest here)", "auto"),
                    ("float32 (exact)", "float32"),
                    ("bfloat16 (CPUs with BF16, Ampere+ GPUs)", "bfloat16"),
                    ("float16 (older GPUs)", "float16"),
                ],
                value="auto",
            ),
            "seed": widgets.IntText(value=0),
            "truncation_psi": widgets.FloatSlider(
                value=0.7, min=0.0, max=1.0, step=0.05, continuous_update=False
            ),
        }
        labels = {
            "lr": ("learning rate", "Adam step size on the latent (paper: 2e-3 faces)"),
            "lambda_mask": ("λ mask", "weight of keeping the unmasked region fixed"),
            "warp": (
                "warp",
                "px per step the content near the points (or in the mask) may be warped; 0 = off",
            ),
            "hold": (
                "hold far",
                "no mask painted: how firmly what lies far from the points stays; 0 = off",
            ),
            "r1": ("r1 (px@512)", "motion-supervision radius, pixels of a 512-px image"),
            "r2": ("r2 (px@512)", "tracking search radius, pixels of a 512-px image"),
            "max_steps": ("max steps", "steps per Start"),
            "w_plus": ("latent", "optimise W+ (per layer) or W (shared)"),
            "n_opt_ws": ("layers moved", "only the first this-many style vectors move"),
            "stop_distance": ("stop at px", "arrived within this distance; 0 = auto (1-2 px)"),
            "precision": ("arithmetic", "auto: bfloat16 or float16 where the device runs it fast"),
            "seed": ("seed", "a new seed draws a new image (clears points and history)"),
            "truncation_psi": ("truncation ψ", "lower: more typical images (a new image)"),
        }
        for name, w in self.fields.items():
            w.description, w.tooltip = labels[name]
            w.style = _style()
            w.layout = _row_layout()
            w.observe(self._make_observer(name), "value")
        self.fields["seed"].layout = _stretch()
        self.random_seed = _button("", "random", "A random seed")
        self.random_seed.layout = widgets.Layout(width="40px", flex="0 0 40px")
        self.random_seed.on_click(self._pick_random_seed)

        self.model = widgets.Combobox(
            options=list(models),
            value="",
            placeholder="default, a name or a path",
            description="model",
            ensure_option=False,
            style=_style(),
            layout=_stretch(),
        )
        self.load = _button("Load", "", "Load this model (a new image)")
        self.load.layout = widgets.Layout(width="62px", flex="0 0 62px")
        self.folder = widgets.Text(
            value="draggan-output",
            description="folder",
            tooltip="where files with a relative name go; created when first written",
            style=_style(),
            layout=_row_layout(),
        )
        self.save_path = widgets.Text(
            value="draggan.png", description="PNG", style=_style(), layout=_stretch()
        )
        self.save = _button("Save PNG", "", "Save the current image as PNG")
        self.save.layout = _file_button_layout()
        self.gif_path = widgets.Text(
            value="draggan.gif", description="GIF", style=_style(), layout=_stretch()
        )
        self.save_gif = _button("Save GIF", "", "Save the last drag as an animation, with points")
        self.save_gif.layout = _file_button_layout()
        self.mp4_path = widgets.Text(
            value="draggan.mp4", description="MP4", style=_style(), layout=_stretch()
        )
        self.save_mp4 = _button(
            "Save MP4", "", "Save the last drag as a video, with points (needs the [video] extra)"
        )
        self.save_mp4.layout = _file_button_layout()
        self.session_path = widgets.Text(
            value="draggan-session.json",
            description="session",
            tooltip="the JSON file; the latent (and a tuned generator) are saved beside it",
            style=_style(),
            layout=_row_layout(),
        )
        self.save_session = _button(
            "Save session", "download", "Save latent, points, mask and settings to continue later"
        )
        self.load_session = _button(
            "Load session", "upload", "Replace image, points, mask and settings by a saved session"
        )

        self.upload = widgets.FileUpload(
            accept="image/*",
            multiple=False,
            description="Choose photo",
            tooltip="an image file; it is cropped to a centred square and resized to the model",
            layout=widgets.Layout(width="auto"),
        )
        self.photo_steps = widgets.BoundedIntText(
            value=PHOTO_STEPS,
            min=1,
            max=100_000,
            description="steps",
            tooltip="projection steps: more fit the photo closer and take longer",
            style=_style(),
            layout=_stretch(),
        )
        self.tune = widgets.Checkbox(
            value=False,
            description="pivotal tuning",
            indent=False,
            tooltip="then fine-tune a copy of the generator so the image matches the photo",
            layout=widgets.Layout(width="120px", flex="0 0 120px"),
        )
        self.project = _button(
            "Project", "magic", "Find the photo in the generator's latent space, then drag it"
        )
        self.set_limits(num_ws=num_ws, resolution=resolution)

        f = self.fields
        drag_box = _tab(
            [f[n] for n in ("lr", "lambda_mask", "warp", "hold", "r1", "r2", "max_steps")]
            + [f["w_plus"], f["n_opt_ws"], f["stop_distance"], f["precision"]]
        )
        image_box = _tab(
            [
                _row([f["seed"], self.random_seed]),
                f["truncation_psi"],
                _row([self.model, self.load]),
            ]
        )
        photo_box = _tab(
            [
                self.upload,
                _row([self.photo_steps, self.tune], align_items="center"),
                _row([self.project]),
            ]
        )
        files_box = _tab(
            [
                self.folder,
                _row([self.save_path, self.save]),
                _row([self.gif_path, self.save_gif]),
                _row([self.mp4_path, self.save_mp4]),
                self.session_path,
                _row([self.save_session, self.load_session]),
            ]
        )
        self.tabs = widgets.Tab(
            children=[drag_box, image_box, photo_box, files_box],
            titles=("Drag", "Image", "Photo", "Files"),
            layout=_row_layout(),
        )
        super().__init__(
            [
                self.tool,
                self.brush_radius,
                _row([self.show_mask, self.pixels]),
                _row([self.clear_points, self.clear_mask]),
                _row([self.start, self.stop]),
                _row([self.undo, self.redo, self.reset]),
                self.tabs,
            ],
            layout=widgets.Layout(
                flex=f"1 1 {PANEL_WIDTH}",
                min_width=PANEL_MIN_WIDTH,
                max_width=PANEL_MAX_WIDTH,
                padding="0 0 0 8px",
            ),
        )

    # --------------------------------------------------------- config binding

    def on_config(self, callback: Optional[ConfigCallback]) -> None:
        """Call ``callback(field, value)`` when the user edits a config control."""
        self._on_config = callback

    def _make_observer(self, name: str) -> Callable[[dict[str, Any]], None]:
        def observer(change: dict[str, Any]) -> None:
            if self._showing or self._on_config is None:
                return
            self._on_config(name, self.value(name))

        return observer

    def value(self, name: str) -> Any:
        """The config value a control stands for (``stop_distance`` 0 means None)."""
        v = self.fields[name].value
        if name == "stop_distance":
            return None if v == 0 else float(v)
        return v

    def show(self, name: str, value: Any) -> None:
        """Show a config value on its control without reporting it as a user edit.

        A value outside a slider's range widens the range: a slider would otherwise clip
        it, and the clipped value would be written back into the config.
        """
        w = self.fields[name]
        if name == "stop_distance":
            value = 0.0 if value is None else float(value)
        self._showing = True
        try:
            _fit_range(w, value)
            w.value = value
        finally:
            self._showing = False

    def show_config(self, config: Any) -> None:
        """Show every field of a `DragConfig`."""
        for name in CONFIG_FIELDS:
            self.show(name, getattr(config, name))

    def _pick_random_seed(self, _: Any = None) -> None:
        self.fields["seed"].value = random.randrange(2**31)  # reported like a typed seed

    # ------------------------------------------------------------------ state

    def set_limits(self, *, num_ws: int, resolution: int) -> None:
        """Adapt ranges to a generator: ``n_opt_ws`` up to ``num_ws``, the brush to the side."""
        self._showing = True
        try:
            n = self.fields["n_opt_ws"]
            n.max = max(num_ws, n.value, 1)
            b = self.brush_radius
            b.max = max(2, resolution // 4)
            b.value = max(1, round(resolution / 16))
        finally:
            self._showing = False

    def set_running(self, running: bool, *, projecting: bool = False) -> None:
        """Disable what cannot change mid-run; enable Stop only while something runs.

        Args:
            running: a drag runs.
            projecting: a photo is being projected; its result will replace the image, so
                the point and mask tools are disabled too (their edits would be lost).
        """
        busy = running or projecting
        for name in FIXED_WHILE_RUNNING:
            self.fields[name].disabled = busy
        fixed = (self.random_seed, self.load, self.model, self.start, self.load_session)
        photo = (self.upload, self.photo_steps, self.tune, self.project)
        for w in (*fixed, *photo):
            w.disabled = busy
        for w in (self.clear_points, self.clear_mask):
            w.disabled = projecting
        self.stop.disabled = not busy

    def set_history(self, *, can_undo: bool, can_redo: bool, running: bool) -> None:
        """Enable Undo / Redo / Reset by what the session can do."""
        self.undo.disabled = running or not can_undo
        self.redo.disabled = running or not can_redo
        self.reset.disabled = running


def _tab(children: Sequence[widgets.Widget]) -> widgets.VBox:
    """A tab's page: as wide as the tab, never wider (no sideways scrolling)."""
    return widgets.VBox(list(children), layout=widgets.Layout(width="auto", overflow="hidden"))


def _file_button_layout() -> widgets.Layout:
    return widgets.Layout(width="90px", flex="0 0 90px")


def _fit_range(w: widgets.ValueWidget, value: Any) -> None:
    """Widen a slider's (or bounded box's) range to include ``value``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if not hasattr(w, "min") or not hasattr(w, "max"):
        return
    if isinstance(w, widgets.FloatLogSlider):
        if value <= 0:
            return
        exp = math.log(value, w.base)
        if exp < w.min:
            w.min = math.floor(exp)
        if exp > w.max:
            w.max = math.ceil(exp)
        return
    if value < w.min:
        w.min = value
    if value > w.max:
        w.max = value
