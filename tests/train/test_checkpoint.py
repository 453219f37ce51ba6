"""Checkpoints: the lean bfloat16 copy a session commits holds what resuming needs."""

from __future__ import annotations

import pytest
import torch
from test_loop import images, tiny_config  # noqa: F401 (images is a fixture)

from draggan_widget.train.checkpoint import (
    compact_checkpoint,
    factor,
    load_checkpoint,
    unfactor,
)
from draggan_widget.train.loop import train


def test_factoring_a_rank_one_moment_gives_it_back_in_its_shape():
    rows, cols = torch.rand(6) + 0.1, torch.rand(3 * 2 * 2) + 0.1
    moment = (rows[:, None] * cols[None, :]).reshape(6, 3, 2, 2)
    torch.testing.assert_close(unfactor(*factor(moment), moment.shape), moment)


def test_factored_moments_keep_the_scale_of_each_row_and_column():
    moment = torch.rand(8, 5) ** 4  # far from rank one
    rebuilt = unfactor(*factor(moment), moment.shape)
    torch.testing.assert_close(rebuilt.sum(1), moment.sum(1))
    torch.testing.assert_close(rebuilt.sum(0), moment.sum(0))
    assert (rebuilt >= 0).all()


def row_sums(moment: torch.Tensor) -> torch.Tensor:
    return moment.reshape(moment.shape[0], -1).sum(1) if moment.dim() else moment


@pytest.fixture(scope="module")
def run(tmp_path_factory, images):  # noqa: F811 (the fixture imported above)
    out = tmp_path_factory.mktemp("run")
    train(tiny_config(out), images=images, max_steps=2)
    return out


def test_compact_checkpoint_is_lean_bfloat16(run, tmp_path):
    full = load_checkpoint(run / "latest.pt")
    small_path = compact_checkpoint(run / "latest.pt", tmp_path / "small.pt")
    raw = torch.load(small_path, weights_only=True)
    for name in ("G", "D", "G_ema"):
        assert {v.dtype for v in raw[name].values() if v.is_floating_point()} == {torch.bfloat16}
    stored = list(raw["opt_G"]["state"].values())
    assert all("exp_avg" not in m for m in stored)  # beta1 = 0: never read
    assert any("exp_avg_sq_rows" in m for m in stored)
    assert all(m["exp_avg_sq"].dim() < 2 for m in stored if "exp_avg_sq" in m)
    assert small_path.stat().st_size < 0.5 * (run / "latest.pt").stat().st_size
    torch.testing.assert_close(raw["rng_data"], full["rng_data"], rtol=0, atol=0)


def test_a_compact_checkpoint_loads_as_full_float32_moments(run, tmp_path):
    full = load_checkpoint(run / "latest.pt")
    small = load_checkpoint(compact_checkpoint(run / "latest.pt", tmp_path / "small.pt"))
    for name in ("opt_G", "opt_D"):
        for index, moments in full[name]["state"].items():
            rebuilt = small[name]["state"][index]
            assert rebuilt.keys() == moments.keys()
            for key in ("exp_avg", "exp_avg_sq"):
                assert rebuilt[key].shape == moments[key].shape
                assert rebuilt[key].dtype == torch.float32
            assert not rebuilt["exp_avg"].any()
            # Each row of a factored moment keeps its total (to bfloat16's precision).
            torch.testing.assert_close(
                row_sums(rebuilt["exp_avg_sq"]), row_sums(moments["exp_avg_sq"]), rtol=2e-2, atol=0
            )


def test_training_resumes_from_a_compact_checkpoint(run, tmp_path, images):  # noqa: F811
    small = compact_checkpoint(run / "latest.pt", tmp_path / "small.pt")
    resumed = train(tiny_config(tmp_path / "b"), images=images, resume=small, max_steps=1)
    assert resumed.step_count == 3
    assert all(p.dtype == torch.float32 for p in resumed.G.parameters())
    assert all(torch.isfinite(p).all() for p in resumed.G.parameters())


def test_adam_with_beta1_zero_never_reads_its_stored_first_moment():
    runs = []
    for stored in ("kept", "zeroed"):
        p = torch.nn.Parameter(torch.ones(5))
        opt = torch.optim.Adam([p], lr=0.1, betas=(0.0, 0.99))
        for step in range(3):
            p.grad = torch.randn(5, generator=torch.Generator().manual_seed(step))
            opt.step()
        if stored == "zeroed":
            opt.state[p]["exp_avg"].zero_()
        p.grad = torch.arange(5.0)
        opt.step()
        runs.append(p.detach().clone())
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
