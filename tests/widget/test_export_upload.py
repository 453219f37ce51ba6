"""DragWidget headless: GIF, MP4 and session files, and a photo upload projected in the background.

Buttons are clicked and the upload is filled the way the browser fills it
(``FileUpload.set_state``), on a real session of the tiny generator; projections run a few
steps. Runs are awaited with ``w.wait(timeout)`` or Events, never with sleeps.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
import threading
from unittest.mock import MagicMock

import numpy as np
import pytest
import torch
from PIL import Image
from widget_fakes import TIMEOUT

from conftest import REPO, make_generator
from draggan_widget import invert
from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.gan.formats import save_generator
from draggan_widget.widget import DragWidget

SCALE = 16  # a 32-px session on the 512-px canvas
PHOTO_STEPS = 8


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    return make_generator()


@pytest.fixture(scope="module")
def photo(G) -> bytes:
    """PNG bytes of an image the tiny generator made (seed 5), as an upload carries them."""
    return png_bytes(DragSession(G, seed=5, device="cpu").image())


@pytest.fixture
def w(G) -> DragWidget:
    widget = DragWidget(G, seed=0, config=DragConfig(lr=0.01, max_steps=3), device="cpu")
    yield widget
    widget.close()


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def click(w: DragWidget, x: float, y: float) -> None:
    """A click at image pixel (x, y), sent as the browser sends it (canvas pixels)."""
    w.canvas._on_mouse_down(x * SCALE, y * SCALE)
    w.canvas._on_mouse_up(x * SCALE, y * SCALE)


def drag(w: DragWidget, handle=(10, 16), target=(20, 16)) -> None:
    click(w, *handle)
    click(w, *target)
    w.controls.start.click()
    assert w.wait(TIMEOUT)


def upload(w: DragWidget, data: bytes, name: str = "photo.png") -> None:
    """Fill the FileUpload as the browser's message does."""
    entry = {"name": name, "type": "image/png", "size": len(data), "last_modified": 0}
    w.controls.upload.set_state({"value": [{**entry, "content": memoryview(data)}]})


def errors_shown(w: DragWidget) -> str:
    return "".join(o["text"] for o in w.output.outputs)


# ------------------------------------------------------------------------------- GIF


def test_save_gif_writes_every_step_with_its_points(w, tmp_path):
    drag(w)
    path = tmp_path / "drag.gif"
    w.controls.gif_path.value = str(path)
    w.controls.save_gif.click()
    assert "saved" in w.status and path.is_file()
    gif = Image.open(path)
    assert gif.n_frames >= len(w.session.trace) == 3
    first = np.asarray(gif.convert("RGB"))
    assert first.shape == (256, 256, 3)  # a 32-px drag, enlarged 8x to be seen
    r, g, b = first[16 * 8, 10 * 8].astype(int)  # the handle's disc is drawn red
    assert r > 150 and g < 100 and b < 100


def test_save_gif_problems_are_reported_and_write_nothing(w, tmp_path):
    w.controls.gif_path.value = str(tmp_path / "a.gif")
    w.controls.save_gif.click()
    assert "no drag" in w.status and not (tmp_path / "a.gif").exists()
    drag(w)
    w.controls.gif_path.value = str(tmp_path / "no-such-folder" / "a.gif")
    w.controls.save_gif.click()
    assert "save gif: the folder" in w.status and "no-such-folder does not exist" in w.status
    assert "Traceback" not in errors_shown(w)  # a user's error: the message says it all
    w.controls.gif_path.value = str(tmp_path / "a.png")
    w.controls.save_gif.click()
    assert "must end in .gif" in w.status
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- MP4


def test_save_mp4_writes_every_step_with_its_points(w, tmp_path):
    iio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    drag(w)
    path = tmp_path / "drag.mp4"
    w.controls.mp4_path.value = str(path)
    w.controls.save_mp4.click()
    assert w.status == f"saved {path}"
    with iio.get_reader(path) as reader:
        frames = list(reader.iter_data())
    assert len(frames) > len(w.session.trace) == 3  # each step, then the last one held
    assert frames[0].shape == (256, 256, 3)  # a 32-px drag, enlarged 8x to be seen
    r, g, b = frames[0][16 * 8, 10 * 8].astype(int)  # the handle's disc is drawn red
    assert r > 150 and g < 100 and b < 100
    assert [p.name for p in tmp_path.iterdir()] == ["drag.mp4"]


def test_save_mp4_without_the_video_extra_shows_the_install_hint(w, tmp_path, monkeypatch):
    drag(w)
    trace, ws = list(w.session.trace), w.session.ws
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # makes the import fail
    w.controls.mp4_path.value = str(tmp_path / "drag.mp4")
    w.controls.save_mp4.click()
    assert "save mp4" in w.status and "pip install 'draggan-widget[video]'" in w.status
    assert "pip install 'draggan-widget[video]'" in errors_shown(w)
    assert "Traceback" not in errors_shown(w)  # the hint says it all
    assert list(tmp_path.iterdir()) == []
    assert w.session.trace == trace and torch.equal(w.session.ws, ws)  # nothing lost
    w.controls.gif_path.value = str(tmp_path / "drag.gif")
    w.controls.save_gif.click()  # the same drag still saves, as a GIF
    assert "saved" in w.status and (tmp_path / "drag.gif").is_file()


def test_save_mp4_checks_the_suffix(w, tmp_path):
    drag(w)
    w.controls.mp4_path.value = str(tmp_path / "drag.gif")
    w.controls.save_mp4.click()
    assert "must end in .mp4" in w.status and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- sessions


def test_session_round_trip_restores_latent_points_mask_and_config(w, tmp_path):
    drag(w)
    w.controls.tool.value = "brush"
    w.canvas._on_mouse_down(5 * SCALE, 5 * SCALE)
    w.canvas._on_mouse_up(25 * SCALE, 25 * SCALE)
    w.config.lr = 5e-3
    s = w.session
    saved = (s.ws, s.handles, s.targets, s.mask, s.config.asdict(), s.image())
    assert saved[3] is not None
    path = tmp_path / "edit.json"
    w.controls.session_path.value = str(path)
    w.controls.save_session.click()
    assert "saved" in w.status and "generator" in w.status  # a module passed in: embedded
    doc = json.loads(path.read_text())
    assert doc["handles"] == [list(p) for p in saved[1]]
    assert (tmp_path / "edit.latents.pt").is_file()
    assert (tmp_path / "edit.generator.safetensors").is_file()

    w.config.seed = 9  # another image: no points, no mask left of the saved one
    w.clear_mask()
    w.canvas.draw_image = MagicMock()
    w.controls.load_session.click()
    s = w.session
    assert torch.equal(s.ws, saved[0])
    assert s.handles == saved[1] and s.targets == saved[2]
    assert np.array_equal(s.mask, saved[3]) and s.config.asdict() == saved[4]
    assert w.handles == saved[1] and w.controls.fields["lr"].value == 5e-3
    assert w.controls.fields["seed"].value == 0 and "loaded" in w.status
    assert np.array_equal(w.canvas.draw_image.call_args.args[0], saved[5])


def test_a_bad_session_file_is_reported_and_changes_nothing(w, tmp_path):
    before, ws = w.session, w.session.ws
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    w.controls.session_path.value = str(bad)
    w.controls.load_session.click()
    assert "load session" in w.status and "not a session file" in w.status
    good = tmp_path / "good.json"
    w.save_session(good)
    latents = tmp_path / "good.latents.pt"
    latents.write_bytes(latents.read_bytes()[:100])  # truncated
    w.controls.session_path.value = str(good)
    w.controls.load_session.click()
    assert "sha256 differs" in w.status
    w.controls.session_path.value = str(tmp_path / "missing.json")
    w.controls.load_session.click()
    assert "no session file" in w.status
    (tmp_path / "file").write_text("")
    w.controls.session_path.value = str(tmp_path / "file" / "s.json")  # a folder that is a file
    w.controls.save_session.click()
    assert "save session" in w.status
    assert w.session is before and torch.equal(w.session.ws, ws)


def test_a_session_names_a_known_model_and_embeds_a_tuned_one(G, photo, tmp_path):
    weights = save_generator(G, tmp_path / "tiny.safetensors")
    w = DragWidget(str(weights), seed=0, device="cpu")
    w.save_session(tmp_path / "plain.json")
    assert json.loads((tmp_path / "plain.json").read_text())["model"]["id"] == str(weights)
    assert not (tmp_path / "plain.generator.safetensors").exists()
    original = {k: v.clone() for k, v in w.session.G.state_dict().items()}

    w.edit_photo(photo, steps=4, tune=True, tune_steps=4)
    assert w.wait(TIMEOUT)
    assert "pti" in w.status and w.session.seed is None
    tuned = w.session.G
    assert not all(torch.equal(v, tuned.state_dict()[k]) for k, v in original.items())
    w.save_session(tmp_path / "tuned.json")  # the tuned copy exists nowhere else
    assert (tmp_path / "tuned.generator.safetensors").is_file()
    ws = w.session.ws
    w.load_session(tmp_path / "tuned.json")
    assert torch.equal(w.session.ws, ws)
    w.close()


def test_relative_names_go_to_the_output_folder_that_the_status_names(G, tmp_path):
    """Issue 28: files landed in the notebook's folder of the clone, and nothing said where."""
    out = tmp_path / "draggan-output"
    w = DragWidget(G, seed=0, config=DragConfig(max_steps=2), device="cpu", out_dir=out)
    assert w.controls.folder.value == str(out) and not out.exists()
    w.controls.save.click()  # the default name, draggan.png
    assert (out / "draggan.png").is_file() and w.status == f"saved {out / 'draggan.png'}"
    w.controls.session_path.value = "edit.json"
    w.controls.save_session.click()
    assert (out / "edit.json").is_file() and str(out / "edit.json") in w.status
    w.controls.load_session.click()  # the same relative name reads it back
    assert w.status.startswith(f"loaded {out / 'edit.json'}")
    w.controls.folder.value = str(tmp_path / "elsewhere")
    assert w.save_png("a.png") == tmp_path / "elsewhere" / "a.png"
    assert w.save_png(tmp_path / "b.png") == tmp_path / "b.png"  # absolute: as given
    w.close()


@pytest.mark.weights
def test_a_session_of_the_bundled_model_names_it_instead_of_copying_it(tmp_path):
    """Issue 28: each save copied the unchanged bundled generator, readable by its owner only."""
    from draggan_widget import load_generator

    if not (REPO / "weights" / "default.safetensors").exists():
        pytest.skip("no bundled model")
    w = DragWidget(load_generator("default"), seed=0, device="cpu", out_dir=tmp_path)
    path = w.save_session("edit.json")
    assert json.loads(path.read_text())["model"]["id"] == "default"
    assert not (tmp_path / "edit.generator.safetensors").exists()
    assert "generator" not in w.status
    w.load_session("edit.json")
    assert torch.equal(w.session.ws, DragSession(load_generator("default"), seed=0).ws)
    w.close()


def test_an_embedded_generator_gets_the_usual_file_permissions(G, tmp_path):
    w = DragWidget(G, seed=0, device="cpu", out_dir=tmp_path)
    w.save_session("edit.json")
    plain = tmp_path / "plain"
    plain.write_text("")  # what this process's umask gives a new file
    embedded = tmp_path / "edit.generator.safetensors"
    assert embedded.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    w.close()


# ----------------------------------------------------------------------------- photos


def test_choosing_a_photo_says_so_and_progress_counts_the_steps_asked_for(w, photo):
    """Issue 28: no status until projection started, and a count per stage, not per photo."""
    w.controls.photo_steps.value = PHOTO_STEPS
    upload(w, photo, name="me.png")
    assert "photo me.png" in w.status and "chosen" in w.status
    assert f"in {PHOTO_STEPS} steps" in w.status
    seen: list[str] = []
    w.observe(lambda ch: seen.append(ch["new"]), "status")
    w.controls.project.click()
    assert w.wait(TIMEOUT)
    counts = [m.group(1, 2) for m in map(re.compile(r"step (\d+)/(\d+)").search, seen) if m]
    assert counts and {total for _, total in counts} == {str(PHOTO_STEPS)}
    assert max(int(done) for done, _ in counts) > PHOTO_STEPS // 2  # the W+ stage counts on


def test_an_uploaded_png_is_projected_shown_and_can_be_dragged(w, G, photo):
    before, ws = w.session, w.session.ws
    click(w, 3, 3)
    click(w, 8, 3)
    upload(w, photo)
    w.controls.photo_steps.value = PHOTO_STEPS
    w.canvas.draw_image = MagicMock()
    w.controls.project.click()
    assert w.wait(TIMEOUT) and not w.projecting
    s = w.session
    assert s is not before and s.G is G and s.seed is None  # not tuned: the same model
    assert not torch.equal(s.ws, ws) and s.handles == []
    assert np.array_equal(w.canvas.draw_image.call_args.args[0], s.image())
    assert "photo: PSNR w:" in w.status and "w+:" in w.status
    assert not w.controls.start.disabled and not w.controls.project.disabled
    drag(w, (10, 16), (14, 16))
    assert s.step_count == 3 and "max steps reached" in w.status


def test_a_garbage_upload_is_reported_and_the_latent_stays(w):
    before, ws = w.session, w.session.ws
    w.controls.project.click()
    assert "choose a photo first" in w.status
    upload(w, b"<html>oops</html>")
    w.controls.project.click()
    assert "project" in w.status and "not an image" in w.status
    assert not w.projecting and not w._photo.running  # refused before any thread started
    with pytest.raises(ValueError, match="not an image"):
        w.edit_photo(b"\x89PNG\r\n\x1a\n truncated")
    assert w.session is before and torch.equal(w.session.ws, ws)
    assert not w.controls.project.disabled


def test_controls_are_disabled_while_projecting_and_stop_cancels(w, photo, monkeypatch):
    """The first step's progress report waits for the test, which checks the panel, then Stop."""
    reached, release = threading.Event(), threading.Event()
    reports: list = []
    real = invert.edit_photo

    def gated(G, data, *, progress, **options):
        def held(step):
            reached.set()
            assert release.wait(TIMEOUT), "the test never released the step"
            reports.append(progress(step))
            return reports[-1]

        return real(G, data, progress=held, **options)

    monkeypatch.setattr(invert, "edit_photo", gated)
    before, ws = w.session, w.session.ws
    upload(w, photo)
    w.controls.photo_steps.value = PHOTO_STEPS
    w.controls.project.click()
    assert reached.wait(TIMEOUT) and w.projecting
    c = w.controls
    for control in (c.start, c.project, c.upload, c.tune, c.photo_steps, c.load, c.model):
        assert control.disabled
    for control in (c.load_session, c.undo, c.reset, c.clear_points, c.random_seed):
        assert control.disabled
    assert c.fields["seed"].disabled and c.fields["truncation_psi"].disabled
    assert not c.stop.disabled and not c.fields["lr"].disabled and not c.save_session.disabled
    w.start()  # from code: refused, the projection goes on
    assert not w.running and "being projected" in w.status
    click(w, 4, 4)  # a stray click does not cancel it either
    assert w.pending is None and "being projected" in w.status and w.projecting

    c.stop.click()
    assert "cancelling" in w.status
    release.set()
    assert w.wait(TIMEOUT) and not w.projecting
    assert reports == [False]  # stopped after the step that was running
    assert "cancelled" in w.status
    assert w.session is before and torch.equal(w.session.ws, ws)
    assert not c.start.disabled and not c.project.disabled and c.stop.disabled


def test_photo_progress_and_result_reach_the_widget_on_the_loop_thread(G, photo):
    """In a kernel the worker touches no widget: status and drawing happen on the loop."""

    async def main() -> tuple[set, list, int]:
        w = DragWidget(G, seed=0, device="cpu")
        threads: set = set()
        statuses: list = []
        w.canvas.draw_image = lambda image: threads.add(threading.get_ident())
        w.observe(
            lambda ch: (threads.add(threading.get_ident()), statuses.append(ch["new"])), "status"
        )
        finished = asyncio.Event()
        w.observe(lambda ch: None if ch["new"] else finished.set(), "projecting")
        w.edit_photo(photo, steps=PHOTO_STEPS)
        await asyncio.wait_for(finished.wait(), TIMEOUT)
        assert w.session.seed is None
        w.close()
        return threads, statuses, threading.get_ident()

    threads, statuses, loop_thread = asyncio.run(main())
    assert threads == {loop_thread}
    assert any(f"/{PHOTO_STEPS}" in s and "PSNR" in s for s in statuses)  # progress shown
    assert statuses[-1].startswith("photo: PSNR")
