"""Save what a drag made: the image as PNG and the drag as GIF or MP4.

Frames of a drag come from ``session.trace``, the `StepResult` of every step of the current
drag. A result holds its image only if the step rendered one (``render=True``); an image
that was not rendered cannot be made afterwards, because the latents of past steps are not
kept. So run the drag with ``session.run(render=True)`` (the widget always renders), or let
`record_drag` run it. A long drag keeps only every k-th frame, evenly spread, to stay within
`DragSession.frame_budget`; its GIF shows those.

Whole sessions (points, mask, latent, model) are `session_files`; their functions are
re-exported here, where they have always been imported from.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from PIL import Image, ImageDraw

from .atomic_write import write_via_temp
from .drag import DragSession, StepResult
from .session_files import (
    SessionFileError,
    generator_sha256,
    load_latent,
    load_session,
    save_session,
)

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

HANDLE_RGB, TARGET_RGB, ARROW_RGB = (230, 40, 40), (40, 90, 230), (255, 255, 255)
VIDEO_HINT = "pip install 'draggan-widget[video]' (imageio and imageio-ffmpeg)"


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
    return write_via_temp(path, lambda tmp: image.save(tmp, format="PNG"))


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

    return write_via_temp(path, write)


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

    return write_via_temp(path, write, suffix=".tmp.mp4")  # ffmpeg picks the container by suffix
