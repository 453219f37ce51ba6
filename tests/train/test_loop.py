"""The training loop on a tiny 32 px config: finite losses, exact resume, export, grids."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from draggan_widget.gan.formats.native import load_native
from draggan_widget.train.checkpoint import load_checkpoint
from draggan_widget.train.loop import TrainConfig, config_from_checkpoint, export_generator, train
from draggan_widget.train.networks import Discriminator, MinibatchStd

RES = 32


def tiny_config(out, **kw) -> TrainConfig:
    """Seconds per run: 8-32 channels, batch 4, every regulariser due every other step."""
    base = dict(
        out=str(out),
        res=RES,
        batch=4,
        z_dim=16,
        w_dim=16,
        map_layers=2,
        channel_base=256,
        channel_max=32,
        r1_interval=2,
        pl_weight=2.0,
        pl_interval=2,
        kimg=1.0,
    )
    return TrainConfig(**{**base, **kw})


def stand_in_faces(n: int = 64) -> np.ndarray:
    """The real renderer when it is there, else coloured ellipses of the same format."""
    try:
        from draggan_widget.train import faces
    except ImportError:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[:RES, :RES] / RES
        imgs = np.empty([n, RES, RES, 3], np.uint8)
        for i in range(n):
            cx, cy = rng.uniform(0.35, 0.65, 2)
            rx, ry = rng.uniform(0.2, 0.35, 2)
            inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
            imgs[i] = np.where(inside[..., None], rng.integers(0, 256, 3), rng.integers(0, 256, 3))
        return imgs
    return faces.render_dataset(n, size=RES, seed=0)[0]


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return stand_in_faces()


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_discriminator_gives_one_logit_per_image():
    D = Discriminator(RES, channel_base=256, channel_max=32)
    assert D(torch.randn(8, 3, RES, RES)).shape == (8, 1)
    with pytest.raises(ValueError, match="img must have shape"):
        D(torch.randn(4, 3, 16, 16))


def test_minibatch_std_appends_the_group_std():
    x = torch.zeros(4, 2, 3, 3)
    x[0] = 1.0  # one sample differs: per-feature std over the group of 4 is sqrt(3/16)
    y = MinibatchStd(group_size=4)(x)
    assert y.shape == (4, 3, 3, 3)
    torch.testing.assert_close(y[:, 2], torch.full([4, 3, 3], (3 / 16) ** 0.5))


def test_few_steps_give_finite_losses_a_grid_and_a_checkpoint(tmp_path, images):
    stats = []
    trainer = train(
        tiny_config(tmp_path),
        images=images,
        max_steps=4,
        progress=lambda p: stats.append(p.stats),
        report_every_s=0,
    )
    assert trainer.step_count == 4 and trainer.nimg == 16
    seen = {k for s in stats for k in s}
    assert seen == {"loss_G", "loss_D", "r1", "pl"}
    assert all(np.isfinite(v) for s in stats for v in s.values())
    assert (tmp_path / "latest.pt").is_file() and (tmp_path / "reals.png").is_file()
    grids = sorted(tmp_path.glob("grid-*kimg.png"))
    assert len(grids) == 2  # at the start and at the end
    from PIL import Image

    assert Image.open(grids[-1]).size == (8 * RES, 8 * RES)
    assert not list(tmp_path.glob("*.tmp*"))


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, images):
    cfg_a = tiny_config(tmp_path / "a")
    train(cfg_a, images=images, max_steps=3)
    resumed = train(cfg_a, images=images, resume=tmp_path / "a" / "latest.pt", max_steps=2)

    cfg_b = tiny_config(tmp_path / "b")
    straight = train(cfg_b, images=images, max_steps=5)

    assert resumed.step_count == straight.step_count == 5
    for name in ("G", "D", "G_ema"):
        got, want = params(getattr(resumed, name)), params(getattr(straight, name))
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=f"{name}.{k}")
    torch.testing.assert_close(resumed.loss.pl_mean, straight.loss.pl_mean, rtol=0, atol=0)


def test_resume_refuses_to_change_the_architecture(tmp_path, images):
    train(tiny_config(tmp_path), images=images, max_steps=1)
    ckpt = load_checkpoint(tmp_path / "latest.pt")
    assert config_from_checkpoint(ckpt, kimg=5.0).kimg == 5.0
    with pytest.raises(ValueError, match="channel_base"):
        config_from_checkpoint(ckpt, channel_base=512)


def test_export_writes_a_generator_that_load_native_reads(tmp_path, images):
    trainer = train(tiny_config(tmp_path), images=images, max_steps=2)
    path = export_generator(tmp_path / "latest.pt", tmp_path / "model.safetensors")
    G = load_native(path).eval()
    assert G.init_kwargs == trainer.G_ema.init_kwargs
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = trainer.G_ema(z, truncation_psi=0.7, noise_mode="const")
        torch.testing.assert_close(G(z, truncation_psi=0.7, noise_mode="const"), want)


def test_config_rejects_a_batch_the_mbstd_groups_cannot_split(tmp_path):
    with pytest.raises(ValueError, match="multiple of mbstd_group"):
        dataclasses.replace(tiny_config(tmp_path), batch=6)
