"""The fast resampling and modulated-convolution paths against their pure references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from draggan_widget.gan import ops


@pytest.fixture
def f() -> torch.Tensor:
    return ops.setup_filter([1, 3, 3, 1])


def modconv_up2_reference(x, weight, styles, f, *, demodulate=True):
    """2x-up modulated conv by definition: zero insertion, convolution with the (modulated)
    weight, then the FIR with gain 4, each sample on its own."""
    w = weight[None] * styles[:, None, :, None, None]  # [N, O, I, k, k]
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=[2, 3, 4]) + 1e-8)[:, :, None, None, None]
    k = weight.shape[-1]
    out = []
    for n in range(x.shape[0]):
        # zero insertion, padded by k - 1 all round (the upfirdn trailing zero counts as one)
        z = ops.upfirdn2d_reference(
            x[n : n + 1], torch.ones(1, 1), up=2, padding=[k - 1, k - 2, k - 1, k - 2]
        )
        y = F.conv2d(z, w[n].flip([2, 3]))  # a true convolution with w: [1, O, 2H+1, 2W+1]
        out.append(ops.upfirdn2d_reference(y, f, padding=[1, 1, 1, 1], gain=4))
    return torch.cat(out)


def test_setup_filter_is_normalised_outer_product(f):
    assert f.shape == (4, 4)
    torch.testing.assert_close(f.sum(), torch.tensor(1.0))
    taps = torch.tensor([1.0, 3, 3, 1]) / 8
    torch.testing.assert_close(f, torch.outer(taps, taps))


def test_setup_filter_rejects_bad_taps():
    with pytest.raises(ValueError, match="1-D"):
        ops.setup_filter([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="non-empty"):
        ops.setup_filter([])


def test_upsample2d_matches_upfirdn_reference(f):
    x = torch.randn(2, 5, 7, 9)
    want = ops.upfirdn2d_reference(x, f, up=2, padding=[2, 1, 2, 1], gain=4)
    got = ops.upsample2d(x, f)
    assert got.shape == (2, 5, 14, 18)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_upsample2d_keeps_a_constant_image_constant(f):
    """Gain 4 over a filter summing to 1 preserves the mean after zero insertion."""
    got = ops.upsample2d(torch.full((1, 1, 8, 8), 2.0), f)
    torch.testing.assert_close(got[..., 2:-2, 2:-2], torch.full((1, 1, 12, 12), 2.0))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv2d_up2_matches_reference(f, fused, demodulate):
    x, weight = torch.randn(2, 6, 5, 5), torch.randn(4, 6, 3, 3)
    styles = torch.randn(2, 6)
    want = modconv_up2_reference(x, weight, styles, f, demodulate=demodulate)
    got = ops.modulated_conv2d(
        x, weight, styles, up=2, padding=1, resample_filter=f, demodulate=demodulate, fused=fused
    )
    assert got.shape == (2, 4, 10, 10)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv2d_matches_plain_conv_per_sample(fused):
    x, weight, styles = torch.randn(3, 6, 8, 8), torch.randn(4, 6, 3, 3), torch.randn(3, 6)
    noise = torch.randn(1, 1, 8, 8)
    got = ops.modulated_conv2d(x, weight, styles, noise=noise, padding=1, fused=fused)
    for n in range(3):
        w = weight * styles[n].view(1, -1, 1, 1)
        w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        want = F.conv2d(x[n : n + 1], w, padding=1) + noise
        torch.testing.assert_close(got[n : n + 1], want, atol=1e-5, rtol=1e-5)


def test_demodulation_is_inverse_norm_of_modulated_weight():
    weight, styles = torch.randn(4, 6, 3, 3), torch.randn(2, 6)
    w = weight[None] * styles[:, None, :, None, None]
    want = 1 / (w.square().sum(dim=[2, 3, 4]) + 1e-8).sqrt()
    torch.testing.assert_close(ops.demodulation(weight, styles), want)


def test_modulated_conv2d_rejects_other_up_factors(f):
    x, weight, styles = torch.randn(1, 2, 4, 4), torch.randn(2, 2, 3, 3), torch.randn(1, 2)
    with pytest.raises(ValueError, match="up must be 1 or 2"):
        ops.modulated_conv2d(x, weight, styles, up=4, resample_filter=f)
    with pytest.raises(ValueError, match="resample_filter"):
        ops.modulated_conv2d(x, weight, styles, up=2)


def test_bias_act_by_hand():
    x = torch.tensor([-1.0, 2.0]).view(1, 2, 1, 1)
    b = torch.tensor([0.5, -1.0])
    # x + b = [-0.5, 1.0]; leaky ReLU slope 0.2 -> [-0.1, 1.0]; gain sqrt(2)
    want = torch.tensor([-0.1, 1.0]).view(1, 2, 1, 1) * math.sqrt(2)
    torch.testing.assert_close(ops.bias_act(x, b, act="lrelu"), want)
    clamped = torch.tensor([-0.1 * math.sqrt(2), 1.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(ops.bias_act(x, b, act="lrelu", clamp=1.0), clamped)
    torch.testing.assert_close(ops.bias_act(x, b, gain=3.0), (x + b.view(1, 2, 1, 1)) * 3)
    torch.testing.assert_close(ops.bias_act(x, None), x)


def test_bias_act_rejects_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'relu'"):
        ops.bias_act(torch.zeros(1, 1), None, act="relu")


def test_weights_derived_from_a_frozen_parameter_follow_its_updates():
    torch.manual_seed(0)
    layer = torch.nn.Conv2d(4, 6, 3).requires_grad_(False)
    x, styles, f = torch.randn(1, 4, 5, 5), torch.rand(1, 4) + 0.5, ops.setup_filter([1, 3, 3, 1])

    def run() -> torch.Tensor:
        return ops.modulated_conv2d(
            x, layer.weight, styles, up=2, padding=1, resample_filter=f, fused=False
        )

    def fresh() -> torch.Tensor:  # the same weights, as a tensor nothing is remembered for
        w = layer.weight.detach().clone()
        return ops.modulated_conv2d(x, w, styles, up=2, padding=1, resample_filter=f, fused=False)

    first = run()
    torch.testing.assert_close(first, fresh())
    layer.weight.mul_(2.0).add_(0.1)  # in place, as load_state_dict
    torch.testing.assert_close(run(), fresh())
    layer.weight.data = torch.randn(6, 4, 3, 3)  # a new tensor behind the same parameter
    torch.testing.assert_close(run(), fresh())
    assert not torch.allclose(run(), first)
