"""Save what a drag made: the image as PNG, the drag as GIF or MP4, and whole sessions.

Frames of a drag come from ``session.trace``, the `StepResult` of every step of the current
drag. A result holds its image only if the step rendered one (``render=True``); an image
that was not rendered cannot be made afterwards, because the latents of past steps are not
kept. So run the drag with ``session.run(render=True)`` (the widget always renders), or let
`record_drag` run it. A long drag keeps only every k-th frame, evenly spread, to stay within
`DragSession.frame_budget`; its GIF shows those.

A saved session is two or three files next to each other::

    edit.json                    what a person can read and diff: model (id and a sha256 of
                                 its weights), config, points, mask (run-length), seed
    edit.latents.pt              the latent, ``torch.save`` of plain tensors, read back with
                                 ``torch.load(weights_only=True)``: loading runs no code
    edit.generator.safetensors   only with ``generator="embed"``: the generator itself, for
                                 a pivotally tuned copy that exists nowhere else

The JSON holds the sha256 of each file beside it, so a latent from another save is refused
instead of being silently paired with the wrong points. A save writes every file to a
temporary name first and renames them into place only when all are written, the JSON last,
so a failed save leaves the previous one loadable.

A session file may come from someone else, so `load_session` trusts nothing in it: sizes are
bounded before anything is allocated, the model it names is never downloaded unless the
caller allows it, and every fault is a `SessionFileError` that names the file.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import math
import os
import pickle
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Optional, Union

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from . import __version__
from .drag import DragConfig, DragSession, StepResult
from .drag.config import REMOVED_FIELDS
from .gan.formats import WeightsFileError, load_generator, save_generator
from .gan.formats.safe_pickle import torch_load_weights_only
from .gan.registry import DownloadError
from .gan.stylegan2 import Generator, image_shape

logger = logging.getLogger(__name__)

__all__ = [
    "MissingExtraError",
    "SessionFileError",
    "drag_frames",
    "generator_sha256",
    "load_latent",
    "load_session",
    "record_drag",
    "save_gif",
    "save_mp4",
    "save_png",
    "save_session",
]

PathLike = Union[str, "os.PathLike[str]"]
ImageLike = Union[np.ndarray, Image.Image]
FrameSource = Union[DragSession, Sequence[StepResult], Sequence[np.ndarray]]
GeneratorMode = Literal["reference", "embed"]
OnMismatch = Literal["error", "warn"]

SESSION_FORMAT = "draggan-widget-session"
SESSION_VERSION = 1
LATENT_KEYS = ("ws", "w", "latent")  # ours, NVIDIA's projected_w.npz, DragGAN's inversion
HANDLE_RGB, TARGET_RGB, ARROW_RGB = (230, 40, 40), (40, 90, 230), (255, 255, 255)
VIDEO_HINT = "pip install 'draggan-widget[video]' (imageio and imageio-ffmpeg)"


class SessionFileError(ValueError):
    """A session file (or a file it names) is corrupt, truncated, foreign, inconsistent or
    asks for too much; the message names the file. Nothing was loaded."""


class MissingExtraError(RuntimeError):
    """An optional dependency is not installed; the message names the extra to install.

    A `RuntimeError`, as `save_mp4` documents; its own class lets the widget show the
    message as the user's to act on, without a traceback.
    """


# ------------------------------------------------------------------------------- frames


def _as_rgb(image: ImageLike) -> np.ndarray:
    """uint8 ``H x W x 3`` from an array (``H x W`` or ``H x W x 3``) or a PIL image."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"an image array must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"an image array must be H x W or H x W x 3, got {arr.shape}")
    return arr


def _draw_points(
    image: np.ndarray, handles: Sequence[Sequence[float]], targets: Sequence[Sequence[float]]
) -> np.ndarray:
    """Arrows from handles (red) to targets (blue), sized to the frame, on a copy."""
    img = Image.fromarray(image)
    side = min(img.size)
    radius, width = max(3.0, side / 80), max(1, round(side / 200))
    draw = ImageDraw.Draw(img)
    for (hx, hy), (tx, ty) in zip(handles, targets):
        dx, dy = tx - hx, ty - hy
        length = math.hypot(dx, dy)
        if length > 2 * radius:  # an arrowhead only where there is room for one
            ux, uy = dx / length, dy / length
            bx, by = tx - ux * radius * 2.5, ty - uy * radius * 2.5
            draw.line([(hx, hy), (bx, by)], fill=ARROW_RGB, width=width)
            wing = radius * 1.2
            tip = (tx - ux * radius, ty - uy * radius)  # stops at the target's disc
            draw.polygon(
                [tip, (bx - uy * wing, by + ux * wing), (bx + uy * wing, by - ux * wing)],
                fill=ARROW_RGB,
            )
        for (x, y), rgb in (((tx, ty), TARGET_RGB), ((hx, hy), HANDLE_RGB)):
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=rgb)
    return np.asarray(img)


def _upscale(image: np.ndarray, min_side: int) -> tuple[np.ndarray, int]:
    """Enlarge by the smallest integer factor that reaches ``min_side`` (nearest: exact pixels)."""
    k = max(1, math.ceil(min_side / min(image.shape[:2])))
    if k == 1:
        return image, 1
    return np.repeat(np.repeat(image, k, axis=0), k, axis=1), k


def _rendered(results: Sequence[StepResult]) -> list[StepResult]:
    """The steps that hold a frame: every step, or every k-th from the first where a long
    drag thinned its frames to fit `DragSession.frame_budget`.

    Raises:
        ValueError: frames are missing otherwise (steps run without rendering).
    """
    kept = [i for i, r in enumerate(results) if r.image is not None]
    stride = kept[1] - kept[0] if len(kept) > 1 else 1
    if kept != list(range(0, len(results), stride)):
        missing = [r.step for r in results if r.image is None]
        raise ValueError(
            f"step {missing[0]} of the drag has no image ({len(missing)} of {len(results)} "
            "steps lack one): images cannot be made afterwards; run the drag with "
            "session.run(render=True) or record_drag(session)"
        )
    return [results[i] for i in kept]


def _step_frames(
    results: Sequence[StepResult], final: Optional[np.ndarray], overlay: bool, min_side: int
) -> list[np.ndarray]:
    """One frame per rendered step (the image it tracked in, with its points), then ``final``."""
    shown = [(r.image, r.points, r.targets) for r in _rendered(results)]
    if final is not None:  # the last step moved the latent after its image was taken
        shown.append((final, results[-1].points, results[-1].targets))
    frames = []
    for image, points, targets in shown:
        big, k = _upscale(_as_rgb(image), min_side)
        if overlay:
            big = _draw_points(
                big, [(x * k, y * k) for x, y in points], [(x * k, y * k) for x, y in targets]
            )
        frames.append(big)
    return frames


def drag_frames(
    source: FrameSource, *, overlay: Optional[bool] = None, min_side: int = 256
) -> list[np.ndarray]:
    """The frames of a drag, optionally with its points drawn, enlarged for viewing.

    Args:
        source: a `DragSession` (its current drag, plus the image after the last step), its
            ``trace`` (a list of `StepResult`), or plain ``H x W x 3`` uint8 frames.
        overlay: draw handles (red), targets (blue) and arrows. None: when the points are
            known (a session or step results); True with plain frames is an error.
        min_side: frames smaller than this are enlarged by an integer factor, nearest
            neighbour, so a 64-px model's drag is visible and its pixels stay exact.

    Returns:
        uint8 ``H x W x 3`` frames.

    Raises:
        ValueError: no frames; a step that was run without ``render=True``; overlay asked
            for plain frames.
    """
    draw = overlay is not False
    if isinstance(source, DragSession):
        results = source.trace
        if not results:
            raise ValueError(
                "the session has no drag to export: set points and run it with "
                "session.run(render=True), or use record_drag(session)"
            )
        last_shown = results[-1].image is not None
        final = None if results[-1].done and last_shown else source.image()
        return _step_frames(results, final, draw, min_side)
    items = list(source)
    if not items:
        raise ValueError("no frames to export")
    if isinstance(items[0], StepResult):
        return _step_frames(items, None, draw, min_side)
    if overlay:
        raise ValueError("overlay needs the points: pass a session or its step results")
    return [_upscale(_as_rgb(f), min_side)[0] for f in items]


def record_drag(
    session: DragSession,
    max_steps: Optional[int] = None,
    *,
    overlay: bool = False,
    min_side: int = 256,
) -> list[np.ndarray]:
    """Run the drag with rendering and return the frames of the steps it ran.

    Afterwards `save_gif` and `save_mp4` can also take the session itself, as long as every
    step of its current drag was rendered.

    Args:
        session: a session with points set.
        max_steps: stop after this many steps (default ``config.max_steps``), or sooner when
            every handle has arrived.
        overlay: draw the points into the frames.
        min_side: see `drag_frames`.

    Returns:
        One frame per step, then the image after the last step.
    """
    limit = session.config.max_steps if max_steps is None else max_steps
    if limit < 1:
        raise ValueError(f"max_steps must be >= 1, got {limit}")
    results = []
    for _ in range(limit):
        results.append(session.step(render=True))
        if results[-1].done:
            break
    final = None if results[-1].done else session.image()
    return _step_frames(results, final, overlay, min_side)


# ------------------------------------------------------------------------------- images


def _write_via_temp(path: PathLike, write: Callable[[Path], None], *, suffix: str = ".tmp") -> Path:
    """Have ``write`` fill a temporary file beside ``path``, then move it into place.

    So no half-written file ever sits at ``path``, an older file there survives a failed
    write, and whatever a failed write left in the temporary file is removed.

    Args:
        path: the file to write.
        write: writes the whole file to the path it is given.
        suffix: appended to ``path``'s name for the temporary file.

    Returns:
        ``path``, as a `Path`.
    """
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _check_timing(fps: float, hold: float) -> None:
    """An animation needs a positive frame rate and a hold time of zero or more."""
    if fps <= 0 or hold < 0:
        raise ValueError(f"need fps > 0 and hold >= 0, got fps={fps}, hold={hold}")


def save_png(source: Union[DragSession, ImageLike], path: PathLike) -> Path:
    """Save the session's current image (or an image) as PNG, pixel for pixel.

    Args:
        source: a `DragSession`, an ``H x W x 3`` (or ``H x W``) uint8 array, or a PIL image.
        path: the file to write.

    Returns:
        The path written.
    """
    image = Image.fromarray(source.image() if isinstance(source, DragSession) else _as_rgb(source))
    return _write_via_temp(path, lambda tmp: image.save(tmp, format="PNG"))


def save_gif(
    source: FrameSource,
    path: PathLike,
    *,
    overlay: Optional[bool] = None,
    fps: float = 10.0,
    hold: float = 1.0,
    min_side: int = 256,
) -> Path:
    """Save a drag as an animated GIF (Pillow only; loops forever).

    Args:
        source: a session, its ``trace``, or frames (see `drag_frames`).
        path: the file to write.
        overlay: draw the points (None: when known).
        fps: frames per second (GIF stores 10-ms units).
        hold: seconds the last frame stays before the loop restarts.
        min_side: see `drag_frames`.

    Returns:
        The path written.
    """
    _check_timing(fps, hold)
    frames = [Image.fromarray(f) for f in drag_frames(source, overlay=overlay, min_side=min_side)]
    step_ms = max(20, round(1000 / fps))  # browsers slow anything shorter to 100 ms
    durations = [step_ms] * (len(frames) - 1) + [max(step_ms, round(1000 * hold))]

    def write(tmp: Path) -> None:
        frames[0].save(
            tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0
        )

    return _write_via_temp(path, write)


def _imageio() -> Any:
    """``imageio.v2``, with its ffmpeg backend, or a clear error naming the extra."""
    try:
        iio = importlib.import_module("imageio.v2")
        importlib.import_module("imageio_ffmpeg")
    except ImportError as exc:
        raise MissingExtraError(f"MP4 export needs the video extra: {VIDEO_HINT}") from exc
    return iio


def save_mp4(
    source: FrameSource,
    path: PathLike,
    *,
    overlay: Optional[bool] = None,
    fps: float = 10.0,
    hold: float = 1.0,
    min_side: int = 256,
) -> Path:
    """Save a drag as H.264 MP4 (needs the ``[video]`` extra: imageio + imageio-ffmpeg).

    Args:
        source: a session, its ``trace``, or frames (see `drag_frames`).
        path: the file to write.
        overlay: draw the points (None: when known).
        fps: frames per second.
        hold: seconds the last frame is shown.
        min_side: see `drag_frames`.

    Returns:
        The path written.

    Raises:
        MissingExtraError: (a `RuntimeError`) imageio or imageio-ffmpeg is not installed;
            nothing is written.
    """
    _check_timing(fps, hold)
    iio = _imageio()
    frames = drag_frames(source, overlay=overlay, min_side=min_side)
    frames += [frames[-1]] * round(hold * fps)

    def write(tmp: Path) -> None:
        writer = iio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=8)
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:  # imageio's `with` skips close() on an error, leaving ffmpeg writing
            writer.close()

    return _write_via_temp(path, write, suffix=".tmp.mp4")  # ffmpeg picks the container by suffix


# ----------------------------------------------------------------------------- latents


def _latent_shape(w: Any, what: str, G: Optional[Generator]) -> Tensor:
    """A W latent ``[1, w_dim]`` or a W+ latent ``[1, L, w_dim]`` (``[1, num_ws, w_dim]`` if G)."""
    if isinstance(w, np.ndarray):
        if not np.issubdtype(w.dtype, np.floating):
            raise ValueError(f"{what}: a latent must hold floats, got {w.dtype}")
        w = torch.from_numpy(w.copy())
    if not isinstance(w, Tensor) or not w.is_floating_point():
        raise ValueError(f"{what}: expected a float array or tensor, got {type(w).__name__}")
    w = w.detach().float().cpu()
    shape = list(w.shape)
    if w.ndim == 1 or (w.ndim == 3 and shape[0] == 1 and shape[1] == 1):
        w = w.reshape(1, -1)  # W: one style
    elif w.ndim == 2 and shape[0] > 1:
        w = w[None]  # W+ without the batch axis
    elif not (w.ndim == 2 or (w.ndim == 3 and shape[0] == 1)):
        raise ValueError(
            f"{what}: a latent must be [w_dim], [1, w_dim], [num_ws, w_dim] or "
            f"[1, num_ws, w_dim], got {shape}"
        )
    if not torch.isfinite(w).all():
        raise ValueError(f"{what}: the latent contains NaN or infinity")
    if G is None:
        return w
    if w.shape[-1] != G.w_dim or (w.ndim == 3 and w.shape[1] != G.num_ws):
        raise ValueError(
            f"{what}: a latent of shape {shape} does not fit this generator "
            f"(num_ws={G.num_ws}, w_dim={G.w_dim})"
        )
    return w.reshape(1, 1, -1).repeat(1, G.num_ws, 1) if w.ndim == 2 else w


def _pick(obj: Any, what: str) -> Any:
    """The latent in a loaded dict (``ws``, ``w`` or ``latent``), or the object itself."""
    if not isinstance(obj, dict):
        return obj
    for key in LATENT_KEYS:
        if key in obj:
            return obj[key]
    raise ValueError(f"{what} holds no latent: expected one of the keys {LATENT_KEYS}")


def _read_latent_file(path: Path) -> Any:
    """The array or tensor in a ``.npy``, ``.npz`` or ``torch.save`` file, by its content."""
    with path.open("rb") as f:
        head = f.read(6)
    try:
        if head == b"\x93NUMPY":
            return np.load(path, allow_pickle=False)
        if head[:2] == b"PK":
            with zipfile.ZipFile(path) as z:
                is_npz = all(n.endswith(".npy") for n in z.namelist())
            if is_npz:
                with np.load(path, allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
                return arrays if len(arrays) != 1 else next(iter(arrays.values()))
        return torch_load_weights_only(path)  # its refusals never advise weights_only=False
    except (ValueError, OSError, EOFError, RuntimeError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"{path} is not a latent file this package reads (a .npy, .npz or torch.save "
            f"file of plain tensors), or it is truncated: {exc}"
        ) from exc
    except pickle.UnpicklingError as exc:  # an object refused, or not a pickle
        raise ValueError(
            f"{path}: not loaded: it is not a torch.save file of plain tensors ({exc}); "
            "nothing in it was run"
        ) from exc


def load_latent(path: PathLike, G: Optional[Generator] = None) -> Tensor:
    """Read a latent saved by this package, NVIDIA's projector or the DragGAN GUI.

    Reads ``.npy`` (``allow_pickle=False``), ``.npz`` (key ``w``: NVIDIA's
    ``projected_w.npz``) and ``torch.save`` files (a tensor, or a dict with ``ws``, ``w`` or
    ``latent``; read with ``weights_only=True``), told apart by content, not name. Shapes
    ``[1, num_ws, w_dim]``, ``[num_ws, w_dim]``, ``[1, w_dim]`` and ``[w_dim]`` are accepted.

    Args:
        path: the file.
        G: if given, check the latent fits it and return ``[1, num_ws, w_dim]``.

    Returns:
        ``[1, w_dim]`` (W) or ``[1, num_ws, w_dim]`` (W+), float32 on the CPU; always
        ``[1, G.num_ws, G.w_dim]`` when ``G`` is given. `DragSession` takes either.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a latent file, truncated, pickled objects, a wrong shape, NaN.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no latent file at {path}")
    return _latent_shape(_pick(_read_latent_file(path), str(path)), str(path), G)


# ----------------------------------------------------------------------------- sessions


def generator_sha256(G: Generator) -> str:
    """A sha256 of the generator's architecture and weights, independent of the file format.

    The same weights give the same digest whether they came from a pickle, a ``.pt`` or our
    safetensors, on any device; a pivotally tuned copy gets a digest of its own.
    """
    h = hashlib.sha256(json.dumps(G.init_kwargs, sort_keys=True).encode())
    for name, t in sorted(G.state_dict().items()):
        t = t.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{list(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _rle_encode(mask: np.ndarray) -> list[int]:
    """Run lengths of a bool mask, row-major, starting with a run of False (maybe 0 long)."""
    flat = mask.ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return [0, *runs] if flat[0] else runs


def _rle_decode(runs: Any, height: Any, width: Any, max_side: int) -> np.ndarray:
    """The ``height x width`` bool mask of `_rle_encode`'s runs.

    The size is checked against ``max_side`` (the generator's longer side) before anything
    is allocated: a session file could otherwise ask for a mask of any size.
    """
    ok = isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0
    if not ok or not isinstance(runs, list) or not all(isinstance(r, int) and r >= 0 for r in runs):
        raise ValueError("the mask must have positive height and width and runs of ints >= 0")
    if height > max_side or width > max_side:
        raise ValueError(
            f"the mask is {height}x{width}, larger than the generator's images "
            f"({max_side} px on the longer side)"
        )
    if sum(runs) != height * width:
        raise ValueError(f"the mask's runs cover {sum(runs)} pixels, not {height}x{width}")
    values = np.arange(len(runs)) % 2 == 1  # False, True, False, ...
    return np.repeat(values, runs).reshape(height, width)


def _session_paths(path: PathLike) -> tuple[Path, Path, Path]:
    """The files of session ``edit``: ``edit.json``, ``edit.latents.pt``, ``edit.generator...``."""
    path = Path(path).expanduser()
    base = path.with_suffix("") if path.suffix == ".json" else path
    return (
        base.with_name(base.name + ".json"),
        base.with_name(base.name + ".latents.pt"),
        base.with_name(base.name + ".generator.safetensors"),
    )


def _temporary(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _session_doc(
    session: DragSession, model: Optional[str], files: dict[str, Any]
) -> dict[str, Any]:
    """What the JSON of a saved session holds (see the module docstring)."""
    G, mask = session.G, session.mask
    return {
        "format": SESSION_FORMAT,
        "version": SESSION_VERSION,
        "saved_by": f"draggan-widget {__version__}",
        "model": {
            "id": model,
            "weights_sha256": generator_sha256(G),
            "img_resolution": G.img_resolution,
            "img_height": image_shape(G)[0],
            "img_width": image_shape(G)[1],
            "num_ws": G.num_ws,
            "w_dim": G.w_dim,
        },
        "files": files,
        "seed": session.seed,
        "step_count": session.step_count,
        "config": session.config.asdict(),
        "handles": [list(p) for p in session.handles],
        "targets": [list(p) for p in session.targets],
        "mask": None
        if mask is None
        else {"height": mask.shape[0], "width": mask.shape[1], "rle": _rle_encode(mask)},
    }


def save_session(
    session: DragSession,
    path: PathLike,
    *,
    model: Optional[str] = None,
    generator: GeneratorMode = "reference",
) -> Path:
    """Save a session so the drag can be continued or redone elsewhere (`load_session`).

    Stop any running drag first (the widget does): the session is read field by field.
    All files are written to temporary names first and moved into place together, the JSON
    last, so a save that fails (a full disk, a value JSON cannot hold) leaves an earlier save
    at ``path`` as it was.

    Args:
        session: the session.
        path: ``edit.json`` or ``edit``; the latent goes to ``edit.latents.pt`` beside it.
        model: how to get the generator back: a `load_generator` source (``"default"``, a
            registry name, a path or URL). The weights' sha256 is saved too, so the wrong
            model is caught at load time.
        generator: ``"reference"`` saves only ``model`` and the sha256; ``"embed"`` also
            writes the generator (``edit.generator.safetensors``), needed after pivotal
            tuning, whose tuned copy exists nowhere else.

    Returns:
        The path of the JSON file.
    """
    if generator not in ("reference", "embed"):
        raise ValueError(f"generator must be 'reference' or 'embed', got {generator!r}")
    json_path, latents_path, gen_path = _session_paths(path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    targets = [latents_path] + ([gen_path] if generator == "embed" else []) + [json_path]
    temps = {target: _temporary(target) for target in targets}
    try:
        torch.save({"ws": session.ws.detach().cpu()}, temps[latents_path])
        files: dict[str, Any] = {
            "latents": {"name": latents_path.name, "sha256": _file_sha256(temps[latents_path])}
        }
        if generator == "embed":
            save_generator(session.G, temps[gen_path])
            files["generator"] = {"name": gen_path.name, "sha256": _file_sha256(temps[gen_path])}
        doc = _session_doc(session, model, files)
        lines = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items())
        temps[json_path].write_text("{\n" + lines + "\n}\n", encoding="utf-8")  # diffable
        for target in targets:  # the JSON last: it is what makes the new files the session
            temps[target].replace(target)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    logger.info("saved session to %s", json_path)
    return json_path


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"no session file at {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SessionFileError(
            f"{path} is not a session file (not JSON, or truncated): {exc!r}"
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != SESSION_FORMAT:
        raise SessionFileError(f"{path} is JSON but not a draggan-widget session file")
    if doc.get("version") != SESSION_VERSION:
        raise SessionFileError(
            f"{path} is a session of format version {doc.get('version')!r}; this draggan-widget "
            f"({__version__}) reads version {SESSION_VERSION}"
        )
    return doc


def _checked_file(json_path: Path, entry: Any, what: str) -> Path:
    """A file named in the session, present and with the sha256 the session recorded."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise SessionFileError(
            f"{json_path}: the entry for the {what} file is missing or malformed"
        )
    path = json_path.with_name(Path(entry["name"]).name)  # never outside the session's folder
    if not path.is_file():
        raise FileNotFoundError(f"{json_path}: its {what} file {path} is missing")
    if _file_sha256(path) != entry.get("sha256"):
        raise SessionFileError(
            f"{path} is not the {what} file saved with {json_path.name} (its sha256 differs): "
            "it was changed, truncated, or comes from another save"
        )
    return path


def _config(json_path: Path, fields: Any) -> DragConfig:
    if not isinstance(fields, dict):
        raise SessionFileError(f"{json_path}: 'config' must be an object")
    for name, neutral in REMOVED_FIELDS.items():
        if name in fields and fields[name] != neutral:
            raise SessionFileError(
                f"{json_path}: config.{name} = {fields[name]!r}, but this version has no "
                f"{name} (it measured no better than off and was removed); set it to "
                f"{neutral!r} in the file to load the session without it"
            )
    fields = {k: v for k, v in fields.items() if k not in REMOVED_FIELDS}
    known = {k: v for k, v in fields.items() if k in DragConfig.__dataclass_fields__}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        logger.warning(
            "%s: ignoring config fields this version does not know: %s", json_path, unknown
        )
    if isinstance(known.get("feature_res"), float):
        raise SessionFileError(f"{json_path}: config.feature_res must be an integer or null")
    try:
        return DragConfig(**known)
    except (TypeError, ValueError) as exc:
        raise SessionFileError(f"{json_path}: invalid config: {exc}") from exc


def _generator_for(
    json_path: Path,
    model: Any,
    entry: Any,
    G: Optional[Generator],
    on_mismatch: OnMismatch,
    allow_download: bool,
) -> Generator:
    """The generator given, else the embedded one, else ``model.id``; checked against the save."""
    if not isinstance(model, dict):
        raise SessionFileError(f"{json_path}: 'model' is missing or malformed")
    if G is None:
        if entry is not None:
            G = load_generator(_checked_file(json_path, entry, "generator"))
        elif isinstance(model.get("id"), str):
            try:
                G = load_generator(model["id"], download=allow_download)
            except DownloadError as exc:
                raise DownloadError(
                    f"{json_path} names the model {model['id']!r}: {exc}; to let a session "
                    "file fetch it, pass load_session(..., allow_download=True)"
                ) from exc
        else:
            raise SessionFileError(
                f"{json_path} names no model and embeds none: pass the generator, "
                "load_session(path, G=...)"
            )
    height, width = image_shape(G)
    arch = {k: getattr(G, k) for k in ("img_resolution", "num_ws", "w_dim")}
    arch.update(img_height=height, img_width=width)
    shape_keys = ("img_height", "img_width")  # absent from files saved before portraits
    saved = {k: model.get(k, arch[k] if k in shape_keys else None) for k in arch}
    if arch != saved:
        raise SessionFileError(
            f"{json_path} was saved with a generator of {saved}; this one has {arch}"
        )
    if generator_sha256(G) != model.get("weights_sha256"):
        message = (
            f"{json_path} was saved with other weights (sha256 {model.get('weights_sha256')}, "
            f"model {model.get('id')!r}); the drag will not look the same"
        )
        if on_mismatch == "error":
            raise SessionFileError(message + "; pass on_mismatch='warn' to load it anyway")
        logger.warning(message)
    return G


def _points(json_path: Path, doc: dict[str, Any], key: str) -> list[list[float]]:
    value = doc.get(key)
    ok = isinstance(value, list) and all(
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
        for p in value
    )
    if not ok:
        raise SessionFileError(f"{json_path}: '{key}' must be a list of [x, y] pairs")
    return value


def _mask(json_path: Path, mask_doc: Any, G: Generator) -> Optional[np.ndarray]:
    if mask_doc is None:
        return None
    if not isinstance(mask_doc, dict):
        raise SessionFileError(f"{json_path}: 'mask' must be an object or null")
    try:
        return _rle_decode(
            mask_doc.get("rle"), mask_doc.get("height"), mask_doc.get("width"), G.img_resolution
        )
    except ValueError as exc:
        raise SessionFileError(f"{json_path}: {exc}") from exc


# What reading a hostile or damaged session can raise from inside json, numpy or torch; each
# becomes a SessionFileError naming the file.
SESSION_CONTENT_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    ZeroDivisionError,
    RecursionError,
    MemoryError,
)


def load_session(
    path: PathLike,
    G: Optional[Generator] = None,
    *,
    device: Union[str, torch.device, None] = None,
    on_mismatch: OnMismatch = "error",
    allow_download: bool = False,
) -> DragSession:
    """Load a session saved by `save_session`: latent, points, mask, config and seed.

    Everything is read and checked before the session is built, so a bad file raises and
    nothing is half loaded. The loaded session starts a fresh history: its current latent
    is its starting point (undo and reset go no further back).

    Args:
        path: ``edit.json`` (or ``edit``).
        G: the generator; None loads the embedded one, else the saved model id.
        device: see `DragSession` (None: CUDA, then MPS, then CPU).
        on_mismatch: when G's weights differ from the saved sha256: ``"error"`` or
            ``"warn"`` (e.g. to try a drag on a retrained model).
        allow_download: let the saved model id (a URL or registry name) be downloaded when it
            is not in the cache. Off by default: a session file from elsewhere must not make
            this machine fetch things.

    Returns:
        A new `DragSession`.

    Raises:
        FileNotFoundError: the JSON or a file it names is missing.
        SessionFileError: (a ValueError naming the file) a corrupt, truncated, foreign,
            oversized or inconsistent file; another generator.
        WeightsFileError: the embedded generator or the model the session names is unusable.
        DownloadError: the model named is not cached and ``allow_download`` is False, or its
            download failed.
    """
    if on_mismatch not in ("error", "warn"):
        raise ValueError(f"on_mismatch must be 'error' or 'warn', got {on_mismatch!r}")
    json_path = _session_paths(path)[0]
    try:
        return _load_session(json_path, G, device, on_mismatch, allow_download)
    except (SessionFileError, WeightsFileError, DownloadError, FileNotFoundError):
        raise
    except SESSION_CONTENT_ERRORS as exc:
        raise SessionFileError(
            f"{json_path}: the session cannot be loaded ({type(exc).__name__}: {exc})"
        ) from exc


def _load_session(
    json_path: Path,
    G: Optional[Generator],
    device: Union[str, torch.device, None],
    on_mismatch: OnMismatch,
    allow_download: bool,
) -> DragSession:
    doc = _read_json(json_path)
    config = _config(json_path, doc.get("config"))
    handles, targets = _points(json_path, doc, "handles"), _points(json_path, doc, "targets")
    seed, step_count = doc.get("seed"), doc.get("step_count", 0)
    if not (seed is None or (isinstance(seed, int) and not isinstance(seed, bool))):
        raise SessionFileError(f"{json_path}: 'seed' must be an integer or null, got {seed!r}")
    if not isinstance(step_count, int) or step_count < 0:
        raise SessionFileError(f"{json_path}: 'step_count' must be an integer >= 0")
    files = doc.get("files")
    if not isinstance(files, dict):
        raise SessionFileError(f"{json_path}: 'files' is missing or malformed")
    latents_path = _checked_file(json_path, files.get("latents"), "latents")
    G = _generator_for(
        json_path, doc.get("model"), files.get("generator"), G, on_mismatch, allow_download
    )
    mask = _mask(json_path, doc.get("mask"), G)
    try:
        ws = _latent_shape(
            _pick(_read_latent_file(latents_path), str(latents_path)), str(latents_path), G
        )
    except ValueError as exc:
        raise SessionFileError(str(exc)) from exc
    try:
        session = DragSession(G, w=ws, config=config, device=device)
        session.set_points(handles, targets)
        session.set_mask(mask)
    except ValueError as exc:
        raise SessionFileError(f"{json_path}: {exc}") from exc
    session.seed = seed
    session.step_count = step_count
    logger.info("loaded session from %s", json_path)
    return session
