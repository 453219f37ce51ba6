"""Hostile and careless session files, atomic saves, and bounded memory (issue 27).

A session file may come from anyone: it must not make this machine download what it names,
allocate what it asks for, or fail with a raw exception. A save that fails must leave the
earlier save loadable. A long drag must not keep every rendered frame.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from httpfiles import FileServer

from conftest import make_generator
from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.drag.config import ADDED_FIELDS
from draggan_widget.export import (
    SessionFileError,
    drag_frames,
    load_session,
    save_gif,
    save_session,
)
from draggan_widget.gan import registry
from draggan_widget.gan.formats import save_generator
from draggan_widget.gan.registry import DownloadError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    return make_generator()


@pytest.fixture
def session(G) -> DragSession:
    s = DragSession(G, seed=3, config=DragConfig(lr=0.01, max_steps=6), device="cpu")
    s.set_points([(10.5, 16.5)], [(16.5, 16.5)])
    return s


def _rewrite(json_path: Path, **changes) -> None:
    doc = json.loads(json_path.read_text())
    doc.update(changes)
    json_path.write_text(json.dumps(doc))


# ------------------------------------------------ 1. a session's model id never downloads


def test_a_session_naming_a_url_does_not_download_it_unless_asked(
    G, session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv(registry.HOME_ENV, str(home))
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    weights = save_generator(G, tmp_path / "g.safetensors").read_bytes()
    with FileServer() as server:
        server.files["/g.safetensors"] = weights
        url = server.url("/g.safetensors")
        out = save_session(session, tmp_path / "edit", model=url)
        with pytest.raises(DownloadError, match="allow_download=True") as err:
            load_session(out, device="cpu")
        assert str(out) in str(err.value)
        assert server.requests == [] and not home.exists()
        loaded = load_session(out, device="cpu", allow_download=True)
        assert len(server.requests) == 1
    torch.testing.assert_close(loaded.ws, session.ws, rtol=0, atol=0)


# ---------------------------------------------------------- 5. a failed save changes nothing


def test_a_save_that_fails_leaves_the_earlier_save_loadable(
    G, session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = save_session(session, tmp_path / "edit", model="tiny")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    session.run(2)  # the latent moves: a new save would replace the latents file
    real_write_text = Path.write_text

    def disk_full(self: Path, *args, **kwargs):
        if self.name.endswith(".json.tmp"):
            raise OSError(28, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_session(session, tmp_path / "edit", model="tiny", generator="embed")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporaries
    load_session(out, G, device="cpu")  # still the earlier, consistent save


def test_a_value_json_cannot_hold_fails_before_any_file_is_replaced(
    G, session, tmp_path: Path
) -> None:
    out = save_session(session, tmp_path / "edit")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    session.run(1)
    with pytest.raises(TypeError):
        save_session(session, tmp_path / "edit", model=object())  # type: ignore[arg-type]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    load_session(out, G, device="cpu")


# ------------------------------------------------------------- 8. sizes a session asks for


def test_a_huge_rle_mask_is_refused_before_it_is_allocated(G, session, tmp_path: Path) -> None:
    out = save_session(session, tmp_path / "edit")
    side = 200_000  # 37 GiB of bools
    _rewrite(out, mask={"height": side, "width": side, "rle": [side * side]})
    t0 = time.perf_counter()
    with pytest.raises(SessionFileError, match="larger than the generator's images") as err:
        load_session(out, G, device="cpu")
    assert time.perf_counter() - t0 < 10 and str(out) in str(err.value)


def test_a_tracking_radius_larger_than_the_image_is_capped(G, session) -> None:
    assert DragConfig(r2=4000).radii_px(64) == (DragConfig().radii_px(64)[0], 64)
    session.config.r2 = 4000.0  # 45 s and 9 GB for one step before the cap
    result = session.step(render=False)
    assert np.isfinite(result.loss)


# ------------------------------------------------------------- 9. never a raw exception


@pytest.mark.parametrize(
    "changes",
    [
        {"handles": [[1e400, 2.0]]},  # inf after parsing
        {"handles": [[True, 2.0]]},
        {"mask": {"height": 32, "width": 32, "rle": [2**70, 1]}},
        {"mask": {"height": 32, "width": 32, "rle": [1024]}},  # nothing editable
        {"config": {"r1": "3"}},
        {"config": {"lr": None}},
        {"files": {"latents": {"name": 7}}},
        {"model": {"id": None}},
        {"step_count": -1},
        {"seed": 1.5},
    ],
    ids=str,
)
def test_a_malformed_session_is_a_session_file_error(G, session, tmp_path: Path, changes) -> None:
    out = save_session(session, tmp_path / "edit")
    _rewrite(out, **changes)
    with pytest.raises(SessionFileError) as err:
        load_session(out, G, device="cpu")
    assert str(out) in str(err.value)


def test_a_deeply_nested_session_is_a_session_file_error(G, tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SessionFileError, match="not a session file") as err:
        load_session(path, G, device="cpu")
    assert str(path) in str(err.value)


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _replace_latents(json_path: Path, arrays: dict) -> Path:
    """Write ``arrays`` as the session's latents file and record its sha256, as a save would:
    what loading then refuses is the content, not a mismatched file."""
    latents = json_path.with_name(json_path.stem + ".latents.pt")
    torch.save(arrays, latents)
    files = json.loads(json_path.read_text())["files"]
    digest = hashlib.sha256(latents.read_bytes()).hexdigest()
    _rewrite(json_path, files={**files, "latents": {**files["latents"], "sha256": digest}})
    return latents


def test_a_latents_file_with_code_is_refused_without_unsafe_advice(
    G, session, tmp_path: Path
) -> None:
    out = save_session(session, tmp_path / "edit")
    latents = _replace_latents(out, {"ws": session.ws, "x": _Payload()})
    with pytest.raises(SessionFileError, match="system") as err:
        load_session(out, G, device="cpu")
    assert str(latents) in str(err.value)
    assert "weights_only=False" not in str(err.value)


# ------------------------------------------------------------- frames held in memory


def test_a_long_drag_keeps_its_frames_within_the_budget(G) -> None:
    s = DragSession(G, seed=3, config=DragConfig(lr=0.01), device="cpu")
    s.set_points([(10.5, 16.5)], [(30.5, 16.5)])
    frame = 32 * 32 * 3
    s.frame_budget = 5 * frame
    results = [s.step(render=True) for _ in range(20)]
    assert all(r.image is not None for r in results)  # the caller gets every frame
    trace = s.trace
    kept = [i for i, r in enumerate(trace) if r.image is not None]
    assert len(trace) == 20 and len(kept) * frame <= s.frame_budget
    assert kept == list(range(0, 20, kept[1]))  # evenly spread over the whole drag
    for i in kept:
        assert (trace[i].image == results[i].image).all()
    frames = drag_frames(s, overlay=False, min_side=32)
    assert len(frames) == len(kept) + 1  # the kept steps, then the image after the last


def test_a_thinned_drag_still_saves_as_gif(G, tmp_path: Path) -> None:
    s = DragSession(G, seed=3, config=DragConfig(lr=0.01), device="cpu")
    s.set_points([(10.5, 16.5)], [(30.5, 16.5)])
    s.frame_budget = 3 * 32 * 32 * 3
    s.run(12, render=True)
    assert save_gif(s, tmp_path / "d.gif").stat().st_size > 0


def test_steps_run_without_rendering_are_still_reported(G) -> None:
    s = DragSession(G, seed=3, config=DragConfig(lr=0.01), device="cpu")
    s.set_points([(10.5, 16.5)], [(30.5, 16.5)])
    s.step(render=True)
    s.step(render=False)
    s.step(render=True)
    s.step(render=True)
    with pytest.raises(ValueError, match="step 2 of the drag has no image"):
        drag_frames(s)


# ------------------------------------------------ removed config fields


def test_a_removed_field_at_its_neutral_value_still_loads(G, session, tmp_path: Path) -> None:
    out = save_session(session, tmp_path / "old.json", model="tiny")
    doc = json.loads(out.read_text())
    config = {**doc["config"], "slow_down": 0.0, "template_momentum": 0.0, "track_res": None}
    _rewrite(out, config=config)
    assert load_session(out, G, device="cpu").config == session.config


@pytest.mark.parametrize("name", sorted(ADDED_FIELDS))
def test_a_session_saved_before_a_field_existed_drags_without_it(
    G, session, tmp_path: Path, name: str
) -> None:
    out = save_session(session, tmp_path / "old.json", model="tiny")
    config = {k: v for k, v in json.loads(out.read_text())["config"].items() if k != name}
    _rewrite(out, config=config)
    loaded = getattr(load_session(out, G, device="cpu").config, name)
    assert getattr(DragConfig(), name) > 0 and loaded == ADDED_FIELDS[name] == 0.0


@pytest.mark.parametrize(("name", "value"), [("slow_down", 3.0), ("track_res", 64)])
def test_a_removed_field_that_was_on_is_refused_with_what_to_do(
    G, session, tmp_path: Path, name: str, value: object
) -> None:
    out = save_session(session, tmp_path / "old.json", model="tiny")
    _rewrite(out, config={**json.loads(out.read_text())["config"], name: value})
    with pytest.raises(SessionFileError, match=f"config.{name} = .*was removed.*set it to"):
        load_session(out, G, device="cpu")


# ------------------------------------------------ the feature warp of masked drags


def _warped(G) -> DragSession:
    s = DragSession(G, seed=3, config=DragConfig(lr=1e-6, warp=0.35), device="cpu")
    mask = np.zeros((32, 32), bool)
    mask[8:26, 6:24] = True
    s.set_points([(10.5, 16.5)], [(16.5, 16.5)])
    s.set_mask(mask)
    s.run(20)
    assert s.feature_warp is not None
    return s


def test_a_masked_drag_s_warp_is_saved_and_loads_to_the_same_image(G, tmp_path: Path) -> None:
    s = _warped(G)
    t = load_session(save_session(s, tmp_path / "warped.json", model="tiny"), G, device="cpu")
    assert torch.equal(t.feature_warp, s.feature_warp)
    assert np.array_equal(t.image(), s.image())


def test_a_warp_that_fits_no_block_is_a_session_file_error(G, tmp_path: Path) -> None:
    s = _warped(G)
    out = save_session(s, tmp_path / "warped.json", model="tiny")
    _replace_latents(out, {"ws": s.ws, "feature_warp": torch.zeros(1, 2, 5, 5)})
    with pytest.raises(SessionFileError, match="feature warp fits no feature block"):
        load_session(out, G, device="cpu")


def test_reading_only_the_latent_of_a_warped_session_says_the_warp_is_left(
    G, tmp_path: Path, caplog
) -> None:
    from draggan_widget.export import load_latent

    save_session(_warped(G), tmp_path / "warped.json", model="tiny")
    with caplog.at_level("WARNING", logger="draggan_widget"):
        ws = load_latent(tmp_path / "warped.latents.pt", G)
    assert ws.shape == (1, G.num_ws, G.w_dim)
    assert "feature warp" in caplog.text and "load_session keeps both" in caplog.text
