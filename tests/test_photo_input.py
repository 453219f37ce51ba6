"""Reading photos into the model's frame: what is accepted, refused, and noted (no model needed)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from draggan_widget.photo_input import prepare_image


def png_bytes(img: Image.Image, **save) -> bytes:
    """The file an upload delivers; ``save`` passes PNG options such as ``exif``."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", **save)
    return buf.getvalue()


def test_prepare_image_crops_centre_and_resizes_with_notes(caplog):
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:, 10:50] = 200  # the centre square is uniform; the cropped margins are black
    caplog.set_level("INFO", logger="draggan_widget.photo_input")
    out = prepare_image(arr, 32)
    assert out.image.shape == (32, 32, 3) and out.image.dtype == np.uint8
    assert np.abs(out.image.astype(int) - 200).max() <= 1
    assert any("cropped the centre 40x40 of 60x40" in n for n in out.notes)
    assert any("downscaled 40x40" in n for n in out.notes)
    assert "cropped the centre" in caplog.text


def test_prepare_image_composites_alpha_on_white():
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:16, :, 3] = 255  # top half opaque red, bottom half transparent
    out = prepare_image(Image.fromarray(rgba, "RGBA"), 32)
    assert (out.image[:16] == [255, 0, 0]).all() and (out.image[16:] == 255).all()
    assert any("transparent" in n for n in out.notes)


def test_prepare_image_opaque_rgba_needs_no_note():
    rgba = np.full((32, 32, 4), 255, np.uint8)
    assert prepare_image(rgba, 32).notes == []


def test_prepare_image_greyscale_and_16_bit():
    grey = prepare_image(Image.fromarray(np.full((32, 32), 77, np.uint8), "L"), 32)
    assert (grey.image == 77).all() and any("greyscale" in n for n in grey.notes)
    deep = Image.fromarray(np.full((32, 32), 65535, np.uint16))
    assert (prepare_image(png_bytes(deep), 32).image == 255).all()


def test_prepare_image_follows_exif_rotation():
    arr = np.zeros((20, 40, 3), np.uint8)  # stored landscape: left red, right blue
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    out = prepare_image(png_bytes(img, exif=exif), 20)
    top, bottom = out.image[2, 10], out.image[-3, 10]
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]  # upright: red above blue
    assert any("EXIF orientation 6" in n for n in out.notes)


def test_prepare_image_float_array_and_upscale_note():
    out = prepare_image(np.full((8, 8, 3), 0.5), 32)
    assert out.image.shape == (32, 32, 3) and any("upscaled" in n for n in out.notes)


@pytest.mark.parametrize(
    "data, error, match",
    [
        (b"definitely not an image", ValueError, "not an image"),
        (b"", ValueError, "empty"),
        (png_bytes(Image.new("RGB", (32, 32)))[:60], ValueError, "not an image"),  # truncated
        (np.zeros((4, 4, 2), np.uint8), ValueError, "H x W"),
        (np.full((4, 4, 3), 2.0), ValueError, r"\[0, 1\]"),
        (12, TypeError, "must be a path"),
    ],
)
def test_prepare_image_refuses_what_is_not_an_image(data, error, match):
    with pytest.raises(error, match=match):
        prepare_image(data, 32)


def test_prepare_image_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image file"):
        prepare_image(tmp_path / "nope.png", 32)
