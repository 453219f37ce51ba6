"""PNG, GIF and MP4 export of drags, and session and latent files: round trips and bad files."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_generator
from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.export import (
    drag_frames,
    generator_sha256,
    load_latent,
    load_session,
    record_drag,
    save_gif,
    save_mp4,
    save_png,
    save_session,
)
from draggan_widget.gan.formats import save_generator

HANDLE, TARGET = (10.5, 16.5), (16.5, 16.5)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    return make_generator()


def new_session(G) -> DragSession:
    s = DragSession(G, seed=3, config=DragConfig(lr=0.01, max_steps=6), device="cpu")
    s.set_points([HANDLE], [TARGET])
    return s


@pytest.fixture
def session(G) -> DragSession:
    return new_session(G)


@pytest.fixture(scope="module")
def dragged(G) -> DragSession:
    """A session whose drag ran with rendering: 4 steps, with an image each (do not edit)."""
    s = new_session(G)
    s.run(4, render=True)
    return s


def saved_files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())}


# ---------------------------------------------------------------------------------- images


def test_save_png_round_trip_is_exact(dragged, tmp_path):
    out = save_png(dragged, tmp_path / "a.png")
    assert (np.asarray(Image.open(out)) == dragged.image()).all()
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    back = np.asarray(Image.open(save_png(grey, tmp_path / "g.png")).convert("RGB"))
    assert (back[..., 0] == grey).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "g.png"]  # no temp files


def test_drag_frames_enlarge_and_draw_points(dragged):
    trace = dragged.trace
    plain = drag_frames(dragged, overlay=False)
    assert len(plain) == len(trace) + (0 if trace[-1].done else 1)
    assert plain[0].shape == (256, 256, 3)  # 32 px enlarged 8x, nearest
    assert (plain[0][::8, ::8] == trace[0].image).all()
    drawn = drag_frames(dragged)  # points known: overlay by default
    hx, hy = (round(v * 8) for v in trace[0].points[0])
    tx, ty = (round(v * 8) for v in trace[0].targets[0])
    assert tuple(drawn[0][hy, hx]) == (230, 40, 40) and tuple(drawn[0][ty, tx]) == (40, 90, 230)


def test_record_drag_returns_the_frames_of_its_own_steps(session):
    session.run(2, render=False)  # earlier steps of the same drag, without images
    frames = record_drag(session, 3, overlay=True)
    trace = session.trace
    assert len(trace) == 5 and all(r.image is not None for r in trace[2:])
    assert len(frames) == 3 + (0 if trace[-1].done else 1) and frames[0].shape == (256, 256, 3)


def test_export_needs_rendered_steps(session, tmp_path):
    session.run(2, render=False)
    with pytest.raises(ValueError, match="render=True"):
        save_gif(session, tmp_path / "a.gif")
    session.set_points([HANDLE], [TARGET])  # a new drag, not run yet
    with pytest.raises(ValueError, match="no drag to export"):
        save_gif(session, tmp_path / "a.gif")
    assert list(tmp_path.iterdir()) == []


def test_overlay_of_plain_frames_is_an_error(tmp_path):
    frames = [np.zeros((32, 32, 3), np.uint8)] * 2
    with pytest.raises(ValueError, match="overlay needs the points"):
        save_gif(frames, tmp_path / "a.gif", overlay=True)


def test_save_gif_round_trip(tmp_path):
    frames = [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(4)]
    out = save_gif(frames, tmp_path / "a.gif", fps=20, hold=0.5)
    with Image.open(out) as gif:
        assert gif.n_frames == 4 and gif.size == (256, 256)
        durations, pixels = [], []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
            pixels.append(gif.convert("RGB").getpixel((5, 5)))
    assert durations == [50, 50, 50, 500]
    assert pixels == [(40 * i,) * 3 for i in range(4)]


def test_save_gif_of_a_session(dragged, tmp_path):
    out = save_gif(dragged, tmp_path / "drag.gif")
    with Image.open(out) as gif:
        assert gif.n_frames >= 2 and gif.size == (256, 256)


def test_save_mp4_round_trip(dragged, tmp_path):
    iio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    n = len(drag_frames(dragged))
    out = save_mp4(dragged, tmp_path / "drag.mp4", fps=10, hold=0.3)
    with iio.get_reader(out) as reader:
        frames = list(reader.iter_data())
    assert len(frames) == n + 3 and frames[0].shape == (256, 256, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["drag.mp4"]


def test_a_failed_mp4_write_leaves_no_file_behind(tmp_path):
    pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    frames = [np.zeros((32, 32, 3), np.uint8), np.zeros((48, 48, 3), np.uint8)]  # sizes differ
    with pytest.raises(ValueError):
        save_mp4(frames, tmp_path / "drag.mp4", hold=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps, hold", [(0, 1.0), (-5, 1.0), (10, -0.5)])
def test_gif_and_mp4_refuse_bad_timing_alike(dragged, tmp_path, fps, hold):
    for save in (save_gif, save_mp4):
        with pytest.raises(ValueError, match=f"need fps > 0 and hold >= 0, got fps={fps}"):
            save(dragged, tmp_path / "drag.out", fps=fps, hold=hold)
    assert list(tmp_path.iterdir()) == []


def test_save_mp4_without_the_video_extra_says_what_to_install(dragged, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # makes the import fail
    with pytest.raises(RuntimeError, match=r"draggan-widget\[video\]"):
        save_mp4(dragged, tmp_path / "drag.mp4")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------- latents


@pytest.mark.parametrize("shape", [(1, 8, 16), (8, 16), (1, 16), (16,), (1, 1, 16)])
def test_load_latent_npy_shapes(G, tmp_path, shape):
    w = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.save(tmp_path / "w.npy", w)
    got = load_latent(tmp_path / "w.npy", G)
    assert got.shape == (1, G.num_ws, G.w_dim)
    torch.testing.assert_close(got, torch.from_numpy(w).reshape(1, -1, 16).expand(1, 8, 16))
    bare = load_latent(tmp_path / "w.npy")
    assert bare.shape == ((1, 8, 16) if w.size == 128 else (1, 16))
    DragSession(G, w=bare, device="cpu")  # the session takes either form


def test_load_latent_from_other_tools(G, tmp_path):
    w = torch.randn(1, G.num_ws, G.w_dim)
    torch.save(w, tmp_path / "dragGAN_gui.pt")  # the official GUI loads torch.save'd ws
    torch.save({"latent": w, "sample": torch.zeros(1)}, tmp_path / "inversion.pt")
    np.savez(tmp_path / "projected_w.npz", w=w.numpy())  # NVIDIA's projector
    (tmp_path / "renamed.bin").write_bytes((tmp_path / "projected_w.npz").read_bytes())
    for name in ("dragGAN_gui.pt", "inversion.pt", "projected_w.npz", "renamed.bin"):
        torch.testing.assert_close(load_latent(tmp_path / name, G), w)


class Payload:
    """Not a tensor: loading it would need to run code."""


@pytest.mark.parametrize(
    "write, match",
    [
        (lambda f: f.write(b"garbage that is no latent"), "not"),
        (lambda p: np.save(p, np.array([Payload()], dtype=object)), "not a latent file"),
        (lambda p: torch.save({"ws": Payload()}, p), "plain tensors"),
        (lambda p: torch.save({"other": torch.zeros(16)}, p), "no latent"),
        (lambda p: np.save(p, np.zeros((1, 16), np.int64)), "floats"),
        (lambda p: np.save(p, np.full((1, 16), np.nan, np.float32)), "NaN"),
        (lambda p: np.save(p, np.zeros((2, 3, 16), np.float32)), "must be"),
        (lambda p: np.save(p, np.zeros((1, 8, 15), np.float32)), "does not fit"),
    ],
)
def test_load_latent_refuses_bad_files(G, tmp_path, write, match):
    path = tmp_path / "w.bin"
    with path.open("wb") as f:
        write(f)
    with pytest.raises(ValueError, match=match):
        load_latent(path, G)


def test_load_latent_truncated_and_missing(G, tmp_path):
    torch.save(torch.randn(1, 8, 16), tmp_path / "w.pt")
    data = (tmp_path / "w.pt").read_bytes()
    (tmp_path / "w.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_latent(tmp_path / "w.pt", G)
    with pytest.raises(FileNotFoundError):
        load_latent(tmp_path / "missing.npy")


# -------------------------------------------------------------------------------- sessions


def edited(session: DragSession) -> DragSession:
    """The fixture's session after a masked drag, with a changed config."""
    mask = np.zeros((32, 32), bool)
    mask[4:28, 6:30] = True
    session.set_mask(mask)
    session.config.r2 = 20.0
    session.run(3)
    return session


def test_session_round_trip_continues_the_same_drag(G, session, tmp_path):
    s = edited(session)
    out = save_session(s, tmp_path / "edit", model="tiny")
    assert out.name == "edit.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edit.json", "edit.latents.pt"]
    doc = json.loads(out.read_text())
    assert doc["model"]["id"] == "tiny" and doc["seed"] == 3 and doc["step_count"] == 3
    t = load_session(out, G, device="cpu")
    torch.testing.assert_close(t.ws, s.ws, rtol=0, atol=0)
    assert t.handles == s.handles and t.targets == s.targets
    assert (t.mask == s.mask).all() and t.config == s.config and t.seed == 3
    assert t.step_count == 3
    s.set_points(s.handles, s.targets)  # both start a fresh drag from the saved state
    t.set_points(t.handles, t.targets)
    a, b = s.step(render=False), t.step(render=False)
    assert a.points == b.points and a.loss == pytest.approx(b.loss, rel=1e-6)


def test_session_with_embedded_generator_needs_no_g(G, session, tmp_path):
    tuned = make_generator(seed=9)  # stands for a pivotally tuned copy
    s = DragSession(tuned, w=session.ws, device="cpu")
    s.set_points([HANDLE], [TARGET])
    out = save_session(s, tmp_path / "photo.json", generator="embed")
    t = load_session(out, device="cpu")
    assert generator_sha256(t.G) == generator_sha256(tuned)
    assert (t.image() == s.image()).all() and t.seed is None and t.mask is None


def test_session_loads_its_model_by_id(G, session, tmp_path):
    weights = save_generator(G, tmp_path / "tiny.safetensors")
    out = save_session(session, tmp_path / "edit.json", model=str(weights))
    t = load_session(out, device="cpu")
    assert generator_sha256(t.G) == generator_sha256(G)
    torch.testing.assert_close(t.ws, session.ws)


def test_session_from_other_weights_is_refused_or_warned(session, tmp_path, caplog):
    out = save_session(session, tmp_path / "edit.json", model="tiny")
    other = make_generator(seed=1)
    with pytest.raises(ValueError, match="other weights"):
        load_session(out, other, device="cpu")
    with caplog.at_level(logging.WARNING, logger="draggan_widget.export"):
        load_session(out, other, device="cpu", on_mismatch="warn")
    assert "other weights" in caplog.text
    with pytest.raises(ValueError, match="generator of"):
        load_session(out, make_generator(img_resolution=64), device="cpu")


def test_session_without_model_id_asks_for_g(session, tmp_path):
    out = save_session(session, tmp_path / "edit.json")
    with pytest.raises(ValueError, match="pass the generator"):
        load_session(out, device="cpu")


def corrupt(doc: dict, key: str, value) -> dict:
    doc = json.loads(json.dumps(doc))
    target = doc
    *parents, last = key.split(".")
    for k in parents:
        target = target[k]
    target[last] = value
    return doc


@pytest.mark.parametrize(
    "key, value, error, match",
    [
        ("format", "something-else", ValueError, "not a draggan-widget session"),
        ("version", 99, ValueError, "version 99"),
        ("config.r1", -1.0, ValueError, "invalid config"),
        ("config.feature_res", 3, ValueError, "invalid config"),
        ("handles", [[1.0, 2.0, 3.0]], ValueError, "list of \\[x, y\\] pairs"),
        ("handles", [[99.0, 2.0]], ValueError, "off the image"),
        ("targets", [], ValueError, "one target per handle"),
        ("mask", {"height": 32, "width": 32, "rle": [10, 5]}, ValueError, "runs cover 15"),
        ("mask", {"height": 32, "width": 32, "rle": [1024]}, ValueError, "no pixel"),
        ("seed", "three", ValueError, "'seed' must be"),
        ("files", None, ValueError, "'files'"),
        ("files.latents.name", "elsewhere.pt", FileNotFoundError, "missing"),
        ("model", None, ValueError, "'model'"),
    ],
)
def test_bad_session_files_raise_clearly(G, session, tmp_path, key, value, error, match):
    out = save_session(edited(session), tmp_path / "edit.json", model="tiny")
    out.write_text(json.dumps(corrupt(json.loads(out.read_text()), key, value)))
    before = saved_files(out)
    with pytest.raises(error, match=match):
        load_session(out, G, device="cpu")
    assert saved_files(out) == before  # loading never writes


def test_truncated_or_swapped_session_files_are_refused(G, session, tmp_path):
    a = save_session(session, tmp_path / "a.json", model="tiny")
    text = a.read_text()
    a.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="not JSON, or truncated"):
        load_session(a, G, device="cpu")
    a.write_text(text)
    latents = tmp_path / "a.latents.pt"
    data = latents.read_bytes()
    latents.write_bytes(data[:-10])
    with pytest.raises(ValueError, match="sha256 differs"):
        load_session(a, G, device="cpu")
    session.run(2)
    save_session(session, tmp_path / "b.json", model="tiny")  # another save's latent
    latents.write_bytes((tmp_path / "b.latents.pt").read_bytes())
    with pytest.raises(ValueError, match="another save"):
        load_session(a, G, device="cpu")
    latents.unlink()
    with pytest.raises(FileNotFoundError, match="latents file"):
        load_session(a, G, device="cpu")
    with pytest.raises(FileNotFoundError, match="no session file"):
        load_session(tmp_path / "nothing.json", G)


def test_generator_sha256_follows_the_weights_not_the_file(G, tmp_path):
    from draggan_widget.gan.formats import load_generator

    again = load_generator(save_generator(G, tmp_path / "g.safetensors"))
    assert generator_sha256(again) == generator_sha256(G)
    with torch.no_grad():
        again.synthesis.b4.const.add_(1e-3)
    assert generator_sha256(again) != generator_sha256(G)
