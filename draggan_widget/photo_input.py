"""A user's photo in the generator's frame, read apart from fitting so it fails early and alone.

`prepare_image` accepts a path, an upload's bytes, a PIL image or an array, and refuses
anything else, or data that is not an image, with an error that says why. What it changes
to fit the model (frame, EXIF rotation, mode, centre crop, resize) it records as notes, and
logs, so a cropped photo never looks silently different; `invert` carries them into its report.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

__all__ = ["ImageInput", "PreparedImage", "prepare_image"]

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Image.Image]


@dataclass
class PreparedImage:
    """A photo made ready for a generator: the model's aspect and size, RGB."""

    image: np.ndarray  # uint8 H x W x 3, the model's image shape
    notes: list[str]  # what was done to the input, in words


def _open(source: ImageInput) -> Image.Image:
    """A PIL image from a path, bytes, an array or an image; fully decoded, or a clear error."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, what = bytes(source), "the data"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no image file at {path}")
        data, what = path.read_bytes(), str(path)
    else:
        raise TypeError(
            "image must be a path, bytes, a numpy array or a PIL image, "
            f"got {type(source).__name__}"
        )
    if not data:
        raise ValueError(f"{what} is empty; expected an image file (PNG, JPEG, ...)")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(
            f"{what} is not an image Pillow can read (it starts with {data[:8]!r}): {exc}"
        ) from exc
    return img


def _from_array(arr: np.ndarray) -> Image.Image:
    """``H x W``, ``H x W x 1|3|4``; uint8, or floats in [0, 1]."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(
            f"an image array must be H x W, H x W x 1, H x W x 3 or H x W x 4, got {arr.shape}"
        )
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"an image array must be uint8 or float in [0, 1], got {arr.dtype}")
        if not (np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1):
            raise ValueError("a float image array must hold finite values in [0, 1]")
        arr = np.round(arr * 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr))


def _to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    """RGB, with transparency composited onto white and 16-bit greys scaled to 8 bits."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.round(np.clip(arr / top, 0, 1) * 255).astype(np.uint8))
        notes.append(f"converted {top:.0f}-level greyscale to 8-bit")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgba = Image.alpha_composite(white, rgba)
            notes.append("composited transparent pixels onto white")
        return rgba.convert("RGB")
    if img.mode in ("L", "1"):
        notes.append("greyscale image: copied to three channels")
    elif img.mode != "RGB":
        notes.append(f"converted colour mode {img.mode} to RGB")
    return img.convert("RGB")


def prepare_image(image: ImageInput, resolution: Union[int, tuple[int, int]]) -> PreparedImage:
    """Make any image the generator's input: upright, RGB, cropped at its centre to the
    model's aspect, and resized to the model's size.

    A portrait model (StyleGAN-Human's 2:1) gets the centre of the photo at 2:1, never a
    square padded or squeezed into it.

    Args:
        image: a path, the bytes of an image file, a PIL image, or an array (``H x W``,
            ``H x W x 1|3|4``; uint8 or floats in [0, 1]).
        resolution: the generator's side (``G.img_resolution``) or its image's
            ``(height, width)`` (`image_shape`).

    Returns:
        The image and notes on what was done (EXIF rotation, alpha, crop, resize); the notes
        are also logged, so a photo that was cropped never looks silently different.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: data that is not an image, or an array of the wrong shape or range.
        TypeError: an input of another type.
    """
    img = _open(image)
    notes: list[str] = []
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
        notes.append(f"used the first of {img.n_frames} frames")
    orientation = img.getexif().get(0x0112, 1)  # EXIF Orientation
    if orientation not in (0, 1):
        img = ImageOps.exif_transpose(img)
        notes.append(f"rotated upright (EXIF orientation {orientation})")
    img = _to_rgb(img, notes)
    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    img = _crop_to_aspect(img, width, height, notes)
    w, h = img.size
    if (w, h) != (width, height):
        img = img.resize((width, height), Image.Resampling.LANCZOS)
        verb = "downscaled" if w > width else "upscaled (expect blur)"
        notes.append(f"{verb} {w}x{h} to the model's {width}x{height}")
    for note in notes:
        logger.info("input image: %s", note)
    return PreparedImage(np.asarray(img, dtype=np.uint8).copy(), notes)


def _crop_to_aspect(img: Image.Image, width: int, height: int, notes: list[str]) -> Image.Image:
    """The largest centred crop of ``img`` with the aspect ``width : height`` (sizes are
    written width x height, as PIL does)."""
    w, h = img.size
    if w * height == h * width:
        return img
    if w * height > h * width:  # too wide: keep the full height
        cw, ch = max(1, round(h * width / height)), h
    else:  # too tall: keep the full width
        cw, ch = w, max(1, round(w * height / width))
    left, top = (w - cw) // 2, (h - ch) // 2
    kind = "square" if width == height else f"{width}x{height}, width x height"
    notes.append(f"cropped the centre {cw}x{ch} of {w}x{h} (the model is {kind})")
    return img.crop((left, top, left + cw, top + ch))
