"""Generator behaviour: shapes, truncation, noise modes, input checks, partial synthesis, saving."""

from __future__ import annotations

import pytest
import torch

from conftest import make_generator
from draggan_widget.gan import Generator, load_generator, save_generator


@pytest.fixture
def ws(tiny_G) -> torch.Tensor:
    torch.manual_seed(1)
    return tiny_G.mapping(torch.randn(2, tiny_G.z_dim), truncation_psi=0.7)


def test_shapes(tiny_G):
    z = torch.randn(3, tiny_G.z_dim)
    ws = tiny_G.mapping(z)
    assert tiny_G.num_ws == 2 * 5 - 2  # two per block from 8 to 32 px, two at 4 px
    assert ws.shape == (3, tiny_G.num_ws, tiny_G.w_dim)
    img = tiny_G(z, noise_mode="const")
    assert img.shape == (3, 3, 32, 32)
    assert img.dtype == torch.float32


def test_truncation_psi_zero_gives_w_avg(tiny_G):
    ws = tiny_G.mapping(torch.randn(4, tiny_G.z_dim), truncation_psi=0.0)
    torch.testing.assert_close(ws, tiny_G.mapping.w_avg.expand_as(ws))


def test_truncation_cutoff_truncates_only_the_first_ws(tiny_G):
    z = torch.randn(2, tiny_G.z_dim)
    full = tiny_G.mapping(z)
    cut = tiny_G.mapping(z, truncation_psi=0.0, truncation_cutoff=3)
    torch.testing.assert_close(cut[:, :3], tiny_G.mapping.w_avg.expand(2, 3, -1))
    torch.testing.assert_close(cut[:, 3:], full[:, 3:])


def test_noise_modes(tiny_G, ws):
    const = tiny_G.synthesis(ws, noise_mode="const")
    torch.testing.assert_close(tiny_G.synthesis(ws, noise_mode="const"), const, atol=0, rtol=0)
    torch.manual_seed(0)
    random_a = tiny_G.synthesis(ws, noise_mode="random")
    random_b = tiny_G.synthesis(ws, noise_mode="random")
    assert (random_a - random_b).abs().max() > 1e-3
    none = tiny_G.synthesis(ws, noise_mode="none")
    torch.testing.assert_close(tiny_G.synthesis(ws, noise_mode="none"), none, atol=0, rtol=0)
    assert (none - const).abs().max() > 1e-3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda G: G.mapping(torch.randn(2, G.z_dim + 1)), r"z must have shape \['\*', 16\]"),
        (lambda G: G.mapping(torch.randn(G.z_dim)), "z must have shape"),
        (lambda G: G.synthesis(torch.randn(2, G.num_ws - 1, G.w_dim)), "ws must have shape"),
        (
            lambda G: G.synthesis(torch.randn(2, G.num_ws, 3)),
            r"ws must have shape \['\*', 8, 16\], got \[2, 8, 3\]",
        ),
        (lambda G: G.synthesis(torch.randn(1, 8, 16), noise_mode="off"), "noise_mode must be"),
        (
            lambda G: G.synthesis.begin(torch.randn(1, 8, 16), until_res=12),
            "no block at resolution 12",
        ),
    ],
)
def test_bad_inputs_raise_value_error(tiny_G, call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_G)


def test_conditional_generator_requires_c():
    G = make_generator(c_dim=3)
    z = torch.randn(2, G.z_dim)
    with pytest.raises(ValueError, match="conditional: pass c of shape"):
        G.mapping(z)
    with pytest.raises(ValueError, match="c must have shape"):
        G.mapping(z, torch.zeros(2, 4))
    a, b = G.mapping(z, torch.eye(3)[:2]), G.mapping(z, torch.eye(3)[1:])
    assert (a - b).abs().max() > 1e-3  # the label changes w


def test_begin_then_finish_equals_full_synthesis_at_every_block(tiny_G, ws):
    full = tiny_G.synthesis(ws, noise_mode="const")
    for res in tiny_G.synthesis.block_resolutions:
        state = tiny_G.synthesis.begin(ws, until_res=res)
        assert state.x.shape == (2, tiny_G.synthesis.channels[res], res, res)
        assert state.img.shape == (2, 3, res, res)
        torch.testing.assert_close(tiny_G.synthesis.finish(ws, state), full, atol=1e-6, rtol=0)


def test_gradient_reaches_exactly_the_ws_begin_uses(tiny_G, ws):
    """Features after b16 depend on ws 0-4 (b4 conv, b8 convs, b16 convs), not on the rest."""
    ws = ws.clone().requires_grad_(True)
    tiny_G.synthesis.begin(ws, until_res=16).x.square().sum().backward()
    per_w = ws.grad.abs().sum(dim=[0, 2])
    assert (per_w[:5] > 0).all()
    assert (per_w[5:] == 0).all()


def test_save_load_round_trip_float32_is_exact(tiny_G, ws, tmp_path):
    G2 = load_generator(save_generator(tiny_G, tmp_path / "g.safetensors"))
    assert G2.init_kwargs == tiny_G.init_kwargs
    for k, v in tiny_G.state_dict().items():
        assert torch.equal(G2.state_dict()[k], v), k
    assert torch.equal(
        G2.synthesis(ws, noise_mode="const"), tiny_G.synthesis(ws, noise_mode="const")
    )


def test_save_load_round_trip_float16_is_close(tiny_G, ws, tmp_path):
    path = save_generator(tiny_G, tmp_path / "g16.safetensors", dtype=torch.float16)
    assert (
        path.stat().st_size
        < 0.6 * save_generator(tiny_G, tmp_path / "g32.safetensors").stat().st_size
    )
    G2 = load_generator(path)
    want = tiny_G.synthesis(ws, noise_mode="const")
    torch.testing.assert_close(G2.synthesis(ws, noise_mode="const"), want, atol=2e-2, rtol=1e-2)


def test_fp16_block_config_runs_in_fp32_on_cpu(ws):
    G = make_generator(num_fp16_res=2, conv_clamp=256)
    assert G.synthesis.b32.use_fp16 and G.synthesis.b16.use_fp16 and not G.synthesis.b8.use_fp16
    img = G.synthesis(ws, noise_mode="const")
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    assert torch.equal(img, G.synthesis(ws, noise_mode="const", force_fp32=True))


def test_init_kwargs_rebuild_the_architecture(tiny_G):
    G2 = Generator(**tiny_G.init_kwargs)
    shapes = {k: v.shape for k, v in G2.state_dict().items()}
    assert shapes == {k: v.shape for k, v in tiny_G.state_dict().items()}
