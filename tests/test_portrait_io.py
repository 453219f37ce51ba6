"""Everything that leaves or enters a session keeps a portrait model's H x W (StyleGAN-Human):
PNG, GIF and MP4 frames, saved sessions with a mask, photos projected and tuned, the demo."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

from conftest import make_generator
from draggan_widget import export, invert
from draggan_widget.__main__ import demo_points
from draggan_widget.drag import DragConfig, DragSession

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def session():
    """A dragged 32 x 16 portrait session with a mask (left half editable)."""
    G = make_generator(img_resolution=32, square=False)
    s = DragSession(G, seed=0, config=DragConfig(precision="float32"), device="cpu")
    mask = np.zeros((32, 16), dtype=bool)
    mask[:, :8] = True
    s.set_mask(mask)
    s.set_points([(4.5, 20.5)], [(6.5, 24.5)])
    return s


def test_png_is_width_by_height(session, tmp_path):
    with Image.open(export.save_png(session, tmp_path / "a.png")) as im:
        assert im.size == (16, 32)


def test_drag_frames_and_gif_keep_the_aspect(session, tmp_path):
    frames = export.record_drag(session, max_steps=3, overlay=True, min_side=64)
    assert all(f.shape == (128, 64, 3) for f in frames)  # enlarged 4x: the short side reaches 64
    with Image.open(export.save_gif(session, tmp_path / "a.gif", min_side=64)) as im:
        assert im.size == (64, 128)


@pytest.mark.skipif(
    importlib.util.find_spec("imageio_ffmpeg") is None, reason="needs the [video] extra"
)
def test_mp4_frames_keep_the_aspect(session, tmp_path):
    import imageio.v2 as iio

    export.record_drag(session, max_steps=2)
    path = export.save_mp4(session, tmp_path / "a.mp4", hold=0)
    reader = iio.get_reader(path)
    try:
        assert reader.get_data(0).shape == (512, 256, 3)
    finally:
        reader.close()


def test_a_saved_session_comes_back_with_its_portrait_mask(session, tmp_path):
    session.step()
    path = export.save_session(session, tmp_path / "edit", generator="embed")
    loaded = export.load_session(path, device="cpu")
    assert loaded.shape == (32, 16) and loaded.mask.shape == (32, 16)
    assert np.array_equal(loaded.mask, session.mask)
    assert loaded.handles == session.handles
    assert np.array_equal(loaded.image(), session.image())


def test_a_session_of_a_portrait_refuses_a_square_generator(session, tmp_path):
    path = export.save_session(session, tmp_path / "edit")
    square = make_generator(img_resolution=32)
    with pytest.raises(ValueError, match="'img_width': 16"):
        export.load_session(path, G=square, on_mismatch="warn")


def test_a_photo_is_cropped_to_the_models_aspect_not_to_a_square():
    photo = np.zeros((40, 60, 3), dtype=np.uint8)
    photo[:, 20:40] = 255  # the white band is the centre 20 x 40 (width x height)
    prepared = invert.prepare_image(photo, (32, 16))
    assert prepared.image.shape == (32, 16, 3)
    assert prepared.image[:, 2:-2].min() > 200  # only the white centre is left
    assert "cropped the centre 20x40 of 60x40" in prepared.notes[0]
    tall = invert.prepare_image(np.zeros((100, 20, 3), dtype=np.uint8), (32, 16))
    assert tall.image.shape == (32, 16, 3) and "20x40 of 20x100" in tall.notes[0]


def test_projection_and_tuning_on_a_portrait_model():
    G = make_generator(img_resolution=32, square=False)
    photo = DragSession(G, seed=3, device="cpu").image()
    ws, report = invert.project(G, photo, steps=4, n_init=2, bar=False)
    assert report.target.shape == (32, 16, 3) and not report.notes
    tuned = invert.pti(G, ws, photo, steps=2, bar=False)
    assert DragSession(tuned, w=ws, device="cpu").image().shape == (32, 16, 3)


def test_demo_points_are_fractions_of_width_and_height():
    handles, targets = demo_points((1024, 512))
    square_handles, _ = demo_points(1024)
    for (x, y), (sx, sy) in zip(handles, square_handles):
        assert (x, y) == (sx / 2, sy)
    assert all(0 <= x <= 512 and 0 <= y <= 1024 for x, y in handles + targets)
