"""StyleGAN3's alias-free operations: low-pass filter design and the filtered leaky ReLU.

StyleGAN3 applies its non-linearity at a higher sampling rate: upsample with a low-pass FIR,
leaky ReLU, low-pass and downsample again, so that the ReLU's new high frequencies do not
alias. The results equal NVIDIA's reference (``upfirdn2d`` zero insertion, padding and FIR,
``bias_act``); here each resampling is one strided (transposed) depthwise convolution per
axis, which is what makes the network usable on a CPU.

Filters are designed with numpy and torch alone (a Kaiser-windowed sinc, as
``scipy.signal.firwin`` designs it, or a windowed jinc for the radial filters of config R),
so that a generator can be built without SciPy; a loaded generator uses the file's filters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _kaiser_beta(numtaps: int, width: float, nyquist: float) -> float:
    """Kaiser window shape for a transition band ``width`` (Hz) at ``numtaps`` taps.

    Kaiser's empirical formulas (as ``scipy.signal.kaiser_atten`` / ``kaiser_beta``): the
    attenuation the filter can reach, then the window parameter that reaches it.
    """
    atten = 2.285 * (numtaps - 1) * math.pi * (width / nyquist) + 7.95
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def lowpass_filter(
    numtaps: int, cutoff: float, width: float, fs: float, *, radial: bool = False
) -> Optional[Tensor]:
    """A low-pass FIR as StyleGAN3 designs its resampling filters.

    Args:
        numtaps: filter length; 1 means no filter (returns None).
        cutoff: cutoff frequency, in the units of ``fs``.
        width: transition band width, same units.
        fs: sampling rate the filter runs at.
        radial: a 2-D radially symmetric (jinc) filter instead of separable 1-D taps.

    Returns:
        ``[numtaps]`` separable taps or ``[numtaps, numtaps]`` (radial), summing to 1; None
        for ``numtaps == 1``.
    """
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    window = np.kaiser(numtaps, _kaiser_beta(numtaps, width, fs / 2))
    t = np.arange(numtaps) - (numtaps - 1) / 2
    if not radial:
        c = cutoff / (fs / 2)
        taps = c * np.sinc(c * t) * window
        return torch.as_tensor(taps / taps.sum(), dtype=torch.float32)
    r = torch.as_tensor(np.hypot(*np.meshgrid(t / fs, t / fs)), dtype=torch.float64)
    safe = r.clamp_min(1e-12)
    jinc = torch.special.bessel_j1(2 * math.pi * cutoff * safe) / (math.pi * safe)
    jinc = torch.where(r > 0, jinc, torch.full_like(r, cutoff))  # the limit at the centre
    taps = jinc.numpy() * np.outer(window, window)
    return torch.as_tensor(taps / taps.sum(), dtype=torch.float32)


def _passes(
    f: Tensor, channels: int, dtype: torch.dtype, gain: float, factor: int, *, flip: bool
) -> list[tuple[Tensor, tuple[int, int]]]:
    """Depthwise kernels ``[C, 1, kh, kw]`` and their strides: one pass per axis (x, then y)
    for separable taps, else one 2-D pass. ``gain`` is spread evenly over the passes;
    ``flip`` turns the filter into a convolution kernel for ``conv2d`` (a cross-correlation),
    while ``conv_transpose2d`` already convolves."""
    if f.ndim == 1:
        taps = f * math.sqrt(gain)
        taps = (taps.flip(0) if flip else taps).to(dtype)
        row = taps.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1)
        return [(row, (1, factor)), (row.transpose(2, 3), (factor, 1))]
    kernel = f * gain
    kernel = (kernel.flip([0, 1]) if flip else kernel).to(dtype)
    return [(kernel[None, None].expand(channels, 1, -1, -1), (factor, factor))]


def upsample(x: Tensor, f: Tensor, up: int, padding: Sequence[int]) -> Tensor:
    """NVIDIA's ``upfirdn2d(x, f, up=up, padding=padding, gain=up**2)`` for up >= 2.

    Zero insertion followed by the FIR is a transposed convolution with stride ``up``; its
    output starts ``k - 1`` samples before the reference's unpadded window, so the padding
    becomes a crop (or zero padding) of that output.

    Args:
        x: ``[N, C, H, W]``.
        f: ``[k]`` separable or ``[k, k]`` filter.
        up: integer factor.
        padding: ``(x0, x1, y0, y1)`` in upsampled samples; negative values crop.

    Returns:
        ``[N, C, H*up + y0 + y1 - k + 1, W*up + x0 + x1 - k + 1]``.
    """
    n, c, h, w = x.shape
    k = f.shape[-1]
    px0, px1, py0, py1 = padding
    for kernel, stride in _passes(f, c, x.dtype, up * up, up, flip=False):
        x = F.conv_transpose2d(x, kernel, stride=stride, groups=c)
    # output t of the reference is sample t + k - 1 - p0 of the transposed convolution
    out_h, out_w = h * up + py0 + py1 - k + 1, w * up + px0 + px1 - k + 1
    top, left = k - 1 - py0, k - 1 - px0
    return F.pad(
        x, [-left, out_w - (x.shape[3] - left), -top, out_h - (x.shape[2] - top)]
    )  # [N, C, out_h, out_w]


def downsample(x: Tensor, f: Tensor, down: int, *, gain: float = 1.0) -> Tensor:
    """NVIDIA's ``upfirdn2d(x, f, down=down, gain=gain)``: FIR without padding, then every
    down-th sample."""
    for kernel, stride in _passes(f, x.shape[1], x.dtype, gain, down, flip=True):
        x = F.conv2d(x, kernel, stride=stride, groups=x.shape[1])
    return x


def filtered_lrelu(
    x: Tensor,
    *,
    up_filter: Optional[Tensor],
    down_filter: Optional[Tensor],
    bias: Tensor,
    up: int,
    down: int,
    padding: Sequence[int],
    gain: float,
    slope: float,
    clamp: Optional[float],
) -> Tensor:
    """Bias, upsample, leaky ReLU (times ``gain``, clamped), downsample.

    Args:
        x: ``[N, C, H, W]``.
        up_filter, down_filter: FIR taps (None = no filter, factor 1).
        bias: ``[C]``.
        up, down: resampling factors.
        padding: ``(x0, x1, y0, y1)`` applied when upsampling.
        gain: scale after the activation (sqrt(2), or 1 for the toRGB layer).
        slope: negative slope (0.2, or 1 = linear for the toRGB layer).
        clamp: clamp the activation to [-clamp, clamp]; None = no clamp.

    Returns:
        The result in ``x``'s dtype, except on a CPU, where it is float32: CPUs have no fast
        low-precision depthwise convolution (under bfloat16 autocast these steps took 4x
        longer than the whole float32 layer), and the next layer's convolution casts back.
    """
    if x.device.type == "cpu":
        with torch.autocast("cpu", enabled=False):
            return _filtered_lrelu(
                x.float(), up_filter, down_filter, bias, up, down, padding, gain, slope, clamp
            )
    return _filtered_lrelu(x, up_filter, down_filter, bias, up, down, padding, gain, slope, clamp)


def _filtered_lrelu(
    x: Tensor,
    up_filter: Optional[Tensor],
    down_filter: Optional[Tensor],
    bias: Tensor,
    up: int,
    down: int,
    padding: Sequence[int],
    gain: float,
    slope: float,
    clamp: Optional[float],
) -> Tensor:
    x = x + bias.to(x.dtype).reshape(1, -1, 1, 1)
    if up_filter is not None:
        x = upsample(x, up_filter, up, padding)
    elif any(padding) or up != 1:
        raise ValueError("padding or upsampling needs an up_filter")
    if slope != 1:  # x is this function's own tensor here: in place saves a full pass
        x = F.leaky_relu(x, slope, inplace=up_filter is not None)
    if down_filter is None:
        if down != 1:
            raise ValueError("downsampling needs a down_filter")
        x = x * gain if gain != 1 else x
        return x if clamp is None else x.clamp(-clamp, clamp)
    # clamp(gain * x, c) = gain * clamp(x, c / gain): the gain rides on the (linear) filter,
    # one pass over the largest grid of the layer fewer
    if clamp is not None:
        x = x.clamp(-clamp / gain, clamp / gain)
    return downsample(x, down_filter, down, gain=gain)
