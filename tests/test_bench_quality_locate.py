"""bench/quality_locate.py: a moved patch found where it went, a destroyed one not found."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import load_bench

locate_mod = load_bench("quality_locate")


def _blobs(height: int, width: int, centres, sigma: float = 2.5) -> np.ndarray:
    """uint8 ``H x W x 3``: a coloured Gaussian blob at each (x, y), its channels a little
    apart, so that the colour and the shape both pin the position down."""
    ys, xs = np.mgrid[:height, :width] + 0.5
    image = np.full((height, width, 3), 20.0)
    for x, y in centres:
        for c, (ox, oy) in enumerate([(0.0, 0.0), (1.5, -1.0), (-1.0, 2.0)]):
            image[..., c] += 200 * np.exp(-((xs - x - ox) ** 2 + (ys - y - oy) ** 2) / sigma**2 / 2)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shift", [(5.0, -3.0), (4.3, 2.6), (-2.5, -6.2), (0.0, 0.0)])
def test_a_shifted_blob_is_found_where_it_went(shift):
    handle = np.array([[30.4, 25.7]])
    before = _blobs(64, 64, handle)
    after = _blobs(64, 64, handle + shift)
    target = handle + shift + 1.0  # the target need not be where the content is
    found = locate_mod.locate(before, after, handle, target)
    np.testing.assert_allclose(found.xy, handle + shift, atol=0.3)
    assert found.found.all() and found.peak[0] > 0.95


def test_points_are_x_y_on_an_image_wider_than_tall():
    handles = np.array([[60.3, 10.2], [15.0, 30.5]])  # x = 60 lies past the image's height
    shifts = np.array([[-6.4, 3.1], [4.0, -2.5]])
    before, after = _blobs(40, 72, handles), _blobs(40, 72, handles + shifts)
    found = locate_mod.locate(before, after, handles, handles + shifts)
    np.testing.assert_allclose(found.xy, handles + shifts, atol=0.3)
    assert found.found.all()
    tall = [image.transpose(1, 0, 2) for image in (before, after)]  # 72 x 40: x and y swap
    moved = (handles + shifts)[:, ::-1]
    found = locate_mod.locate(*tall, handles[:, ::-1], moved)
    np.testing.assert_allclose(found.xy, moved, atol=0.3)


def test_unmoved_content_is_found_at_the_handle_however_far_the_target():
    handle = np.array([[20.0, 40.0]])
    image = _blobs(64, 64, handle)
    found = locate_mod.locate(image, image, handle, handle + [9.0, -7.0])
    np.testing.assert_allclose(found.xy, handle, atol=0.05)  # a parabola fit's own bias
    assert found.peak[0] == pytest.approx(1.0)


def test_destroyed_content_reads_as_not_found():
    handle = np.array([[32.0, 32.0]])
    before = _blobs(64, 64, handle)
    noise = np.random.default_rng(0).integers(0, 256, before.shape, dtype=np.uint8)
    gone = locate_mod.locate(before, noise, handle, handle + [4.0, 0.0])
    assert not gone.found[0] and gone.peak[0] < locate_mod.FOUND_NCC
    flat_after = np.full_like(before, 90)
    assert not locate_mod.locate(before, flat_after, handle, handle).found[0]
    flat_before = locate_mod.locate(flat_after, before, handle, handle)  # nothing to look for
    assert math.isnan(flat_before.peak[0]) and not flat_before.found[0]


def test_a_patch_at_the_border_is_clipped_and_still_found():
    handle = np.array([[1.5, 62.2]])  # the patch sticks out left and below
    shift = np.array([4.0, -3.4])
    before, after = _blobs(64, 64, handle), _blobs(64, 64, handle + shift)
    found = locate_mod.locate(before, after, handle, handle + shift)
    np.testing.assert_allclose(found.xy, handle + shift, atol=0.3)
    assert found.found[0]


def test_content_pushed_off_the_image_is_not_found_inside_it():
    handle = np.array([[8.0, 32.0]])
    before = _blobs(64, 64, handle)
    after = _blobs(64, 64, handle - [12.0, 0.0])  # its centre now lies 4 px left of the image
    found = locate_mod.locate(before, after, handle, handle - [6.0, 0.0])
    assert not found.found[0] or np.linalg.norm(found.xy - handle + [12.0, 0.0]) > 2


def test_locate_refuses_images_of_different_shapes():
    with pytest.raises(ValueError, match="H x W x 3"):
        locate_mod.locate(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)), [[1, 1]], [[2, 2]])


def test_patch_is_an_eighth_of_the_shorter_side_and_at_least_7_px():
    assert locate_mod.patch_radius((512, 256, 3)) == 16
    assert locate_mod.patch_radius((64, 64, 3)) == 4
    assert locate_mod.patch_radius((16, 32, 3)) == locate_mod.MIN_RADIUS == 3


def test_far_region_keeps_pixels_a_quarter_side_from_every_point():
    far = locate_mod.far_region((64, 96, 3), np.array([[48.0, 32.0], [10.0, 10.0]]))
    assert far.shape == (64, 96)
    assert not far[32, 48] and not far[32, 48 + 15] and far[32, 48 + 17]  # 16 px: 64 / 4
    assert not far[10, 10] and far[63, 0] and far[0, 95]
    assert far.sum() < 64 * 96 - math.pi * 16**2


def test_psnr_and_colour_shift_known_answers():
    rng = np.random.default_rng(1)
    before = rng.integers(10, 240, (16, 24, 3), dtype=np.uint8)
    everywhere = np.ones((16, 24), bool)
    assert locate_mod.psnr(before, before + 1, everywhere) == pytest.approx(48.13, abs=0.01)
    assert locate_mod.psnr(before, before, everywhere) == locate_mod.PSNR_CAP
    assert math.isnan(locate_mod.psnr(before, before, ~everywhere))
    tinted = (before.astype(int) + [3, 4, 0]).astype(np.uint8)
    assert locate_mod.colour_shift(before, tinted, everywhere) == pytest.approx(5.0)
    shuffled = before.reshape(-1, 3)[rng.permutation(16 * 24)].reshape(before.shape)
    assert locate_mod.colour_shift(before, shuffled, everywhere) == pytest.approx(0.0, abs=1e-9)
    half = np.zeros((16, 24), bool)
    half[:, :12] = True
    changed = before.copy()
    changed[:, 12:] = 0  # only outside ``half``
    assert locate_mod.psnr(before, changed, half) == locate_mod.PSNR_CAP
