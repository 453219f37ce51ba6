"""Growing a trained tiny run from 16 to 32 px: kept layers, the fade, resume and export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from draggan_widget.gan import ops
from draggan_widget.gan.formats.native import load_native
from draggan_widget.train.checkpoint import load_checkpoint
from draggan_widget.train.faces import render_dataset
from draggan_widget.train.grow import grow_checkpoint
from draggan_widget.train.loop import TrainConfig, Trainer, export_generator, train
from draggan_widget.train.networks import GrowingDiscriminator

OLD, NEW = 16, 32


def tiny_config(out, **kw) -> TrainConfig:
    """Seconds per run: 8-32 channels, batch 4, R1 due every other step."""
    base = dict(
        out=str(out),
        res=OLD,
        batch=4,
        z_dim=16,
        w_dim=16,
        map_layers=2,
        channel_base=128,
        channel_max=32,
        d_channel_base=128,
        r1_interval=2,
        kimg=1.0,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def faces() -> dict[int, np.ndarray]:
    return {res: render_dataset(16, size=res, seed=0)[0] for res in (OLD, NEW)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, faces) -> dict:
    """A 16-px run after 3 steps: Adam has moments for every parameter."""
    out = tmp_path_factory.mktemp("old")
    train(tiny_config(out), images=faces[OLD], max_steps=3)
    return load_checkpoint(out / "latest.pt")


def grown_trainer(trained, faces, tmp_path, fade_kimg=0.008) -> Trainer:
    ckpt = grow_checkpoint(trained, res=NEW, kimg=1.0, fade_kimg=fade_kimg, out=str(tmp_path))
    return Trainer(TrainConfig(**ckpt["config"]), faces[NEW], resume=ckpt)


def old_networks(trained, faces, tmp_path) -> Trainer:
    cfg = TrainConfig(**{**trained["config"], "out": str(tmp_path)})
    return Trainer(cfg, faces[OLD], resume=trained)


def ws_for(G, n: int = 4) -> torch.Tensor:
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(0))
    return G.mapping(z, None, truncation_psi=0.7)


@torch.no_grad()
def test_grown_generator_at_alpha_0_draws_the_old_image_upsampled(trained, faces, tmp_path):
    old = old_networks(trained, faces, tmp_path / "o").G_ema
    new = grown_trainer(trained, faces, tmp_path / "n")
    assert new.alpha == 0.0 and new.G_ema.img_resolution == NEW
    ws = ws_for(old)  # [N, 8, w]; the grown G reads two more styles, for its new block
    ws_new = torch.cat([ws, ws[:, -1:].repeat(1, 2, 1)], dim=1)
    want = ops.upsample2d(old.synthesis(ws, noise_mode="const"), old.synthesis.b16.resample_filter)
    got = new.G_ema.synthesis(ws_new, noise_mode="const")
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    new.nimg += 4  # half way through the fade: the new block's toRGB at half strength
    half = new.G_ema.synthesis(ws_new, noise_mode="const")
    new.nimg += 4
    full = new.G_ema.synthesis(ws_new, noise_mode="const")
    torch.testing.assert_close(half, (want + full) / 2, rtol=0, atol=1e-5)
    assert (full - want).abs().mean() > 1e-3


@torch.no_grad()
def test_grown_discriminator_at_alpha_0_is_the_old_one_on_the_downsampled_image(
    trained, faces, tmp_path
):
    old = old_networks(trained, faces, tmp_path / "o").D
    new = grown_trainer(trained, faces, tmp_path / "n").D
    assert isinstance(new, GrowingDiscriminator) and new.img_resolution == NEW
    img = torch.from_numpy(faces[NEW][:8]).permute(0, 3, 1, 2).float() / 127.5 - 1
    new.alpha = 0.0
    torch.testing.assert_close(new(img), old(F.avg_pool2d(img, 2)), rtol=0, atol=1e-6)
    new.alpha = 1.0
    assert not torch.allclose(new(img), old(F.avg_pool2d(img, 2)), atol=1e-3)


def test_alpha_ramps_from_0_to_1_over_the_fade(trained, faces, tmp_path):
    cfg = TrainConfig(**grow_checkpoint(trained, res=NEW, kimg=1.0, fade_kimg=0.5)["config"])
    start = trained["nimg"]
    assert cfg.grown_at_kimg * 1000 == start
    ramp = [cfg.fade_alpha(start + n) for n in (0, 125, 250, 500, 900)]
    assert ramp == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert TrainConfig().fade_alpha(0) == 1.0  # a run that never grew

    stats = []  # the loop sets D's alpha each step and reports it
    trainer = grown_trainer(trained, faces, tmp_path)
    for _ in range(3):
        stats.append(trainer.step())
    assert [s["alpha"] for s in stats] == [0.0, 0.5, 1.0]
    assert trainer.D.alpha == 1.0


def test_growth_keeps_the_trained_adam_moments_and_starts_the_new_ones_fresh(
    trained, faces, tmp_path
):
    old = old_networks(trained, faces, tmp_path / "o")
    new = grown_trainer(trained, faces, tmp_path / "n")
    old_fc = old.opt_G.state[old.G.mapping.fc0.weight]["exp_avg_sq"]
    torch.testing.assert_close(new.opt_G.state[new.G.mapping.fc0.weight]["exp_avg_sq"], old_fc)
    old_block = old.opt_D.state[old.D.blocks[0].conv0.weight]["exp_avg_sq"]
    new_block = new.opt_D.state[new.D.blocks[1].conv0.weight]["exp_avg_sq"]
    torch.testing.assert_close(new_block, old_block)
    old_rgb = old.opt_D.state[old.D.fromrgb.weight]["exp_avg_sq"]
    torch.testing.assert_close(new.opt_D.state[new.D.fromrgb_prev.weight]["exp_avg_sq"], old_rgb)
    for p in [*new.G.synthesis.b32.parameters(), new.D.fromrgb.weight, new.D.blocks[0].skip.weight]:
        assert p not in new.opt_G.state and p not in new.opt_D.state
    assert (new.step_count, new.nimg) == (trained["step"], trained["nimg"])


def test_a_grown_checkpoint_resumes_exactly_and_exports_a_plain_generator(trained, faces, tmp_path):
    ckpt = grow_checkpoint(trained, res=NEW, kimg=1.0, fade_kimg=0.008, out=str(tmp_path / "a"))
    cfg = TrainConfig(**ckpt["config"])
    train(cfg, images=faces[NEW], resume=ckpt, max_steps=2)  # alpha 0, then 0.5
    resumed = train(cfg, images=faces[NEW], resume=tmp_path / "a" / "latest.pt", max_steps=2)
    straight = train(
        TrainConfig(**{**ckpt["config"], "out": str(tmp_path / "b")}),
        images=faces[NEW],
        resume=ckpt,
        max_steps=4,
    )
    for name in ("G", "D", "G_ema"):
        got, want = getattr(resumed, name).state_dict(), getattr(straight, name).state_dict()
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=f"{name}.{k}")
    assert Image.open(tmp_path / "a" / "reals.png").size == (8 * NEW, 2 * NEW)  # 16 faces
    assert len(list((tmp_path / "a").glob("grid-*kimg.png"))) == 3  # start, stop, stop

    G = load_native(export_generator(tmp_path / "a" / "latest.pt", tmp_path / "g.safetensors"))
    assert G.img_resolution == NEW and resumed.alpha == 1.0
    ws = ws_for(G)
    with torch.no_grad():
        want = resumed.G_ema.synthesis(ws, noise_mode="const")
        torch.testing.assert_close(G.eval().synthesis(ws, noise_mode="const"), want)


def test_growth_refuses_another_side_an_early_stop_and_a_new_architecture(trained):
    with pytest.raises(ValueError, match="--res 32"):
        grow_checkpoint(trained, res=64, kimg=1.0)
    with pytest.raises(ValueError, match="larger --kimg"):
        grow_checkpoint(trained, res=NEW, kimg=trained["nimg"] / 1000)
    with pytest.raises(ValueError, match="channel_base"):
        grow_checkpoint(trained, res=NEW, kimg=1.0, channel_base=256)
    mid_fade = grow_checkpoint(trained, res=NEW, kimg=1.0, fade_kimg=1.0)
    with pytest.raises(ValueError, match="still fading"):
        grow_checkpoint(mid_fade, res=2 * NEW, kimg=2.0)
