"""bench/spectrum.py: fine detail read from the power spectrum, band by band."""

from __future__ import annotations

import numpy as np
import torch

from conftest import load_bench, make_generator

spectrum = load_bench("spectrum")


def _noise(n: int, side: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)


def test_white_noise_has_flat_rings_and_scores_like_itself():
    power = spectrum.radial_power(_noise(64, 32, 0))
    assert power.shape == (16,)
    assert np.ptp(power[2:]) / power[2:].mean() < 0.3  # white: every ring alike
    same = spectrum.compare(spectrum.radial_power(_noise(64, 32, 1)), power)
    assert same["spectral_distance"] < 0.05
    assert all(abs(same[f"{band}_ratio"] - 1) < 0.1 for band in spectrum.BANDS)


def test_a_blurred_image_loses_the_high_band_and_the_mid_band_less():
    sharp = _noise(32, 32, 2)
    t = torch.from_numpy(sharp).permute(0, 3, 1, 2).float()
    blurred = torch.nn.functional.avg_pool2d(t, 2)
    blurred = torch.nn.functional.interpolate(blurred, scale_factor=2, mode="bilinear")
    blurred = blurred.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    score = spectrum.compare(spectrum.radial_power(blurred), spectrum.radial_power(sharp))
    assert score["high_ratio"] < 0.2 < score["mid_ratio"] < 1.0
    assert score["spectral_distance"] > 0.3


def test_a_small_generator_is_scaled_up_to_the_side_compared(one_thread):
    G = make_generator(img_resolution=16)
    images = spectrum.generated(G, 3, 32, batch=2)
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
