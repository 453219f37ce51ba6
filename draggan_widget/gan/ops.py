"""Low-level StyleGAN2 operations: FIR resampling, modulated convolution, bias + activation.

Each operation matches NVIDIA's reference semantics exactly, so that weights trained with
NVIDIA's code give the same images here. Resampling has a general reference version
(`upfirdn2d`, zero insertion + padding + depthwise FIR) and fast special cases built from
one grouped (transposed) convolution, which is what the generator calls.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

LRELU_ALPHA = 0.2
LRELU_GAIN = math.sqrt(2.0)
_DERIVED: dict[int, tuple[weakref.ref, dict]] = {}  # id(frozen weight) -> (its ref, {name: t})


def _derived(weight: Tensor, name: str, make: Callable[[], Tensor]) -> Tensor:
    """``make()``, remembered per frozen parameter: a drag or a render otherwise reshapes
    and squares the same weights at every step (up to a sixth of a 64-px forward pass of
    a 512-channel generator on a CPU; see bench/generator_speed.py).

    Only for an `nn.Parameter` that needs no gradient (the generator under a drag). The
    entry is keyed by the parameter's version and storage, so an in-place update (loading
    a state dict) or a new tensor behind it (``.data =``, ``.to()``) makes a new one.
    """
    if not isinstance(weight, torch.nn.Parameter) or weight.requires_grad:
        return make()
    slot = _DERIVED.get(id(weight))
    if slot is None or slot[0]() is not weight:
        key_id = id(weight)
        forget = weakref.ref(weight, lambda _: _DERIVED.pop(key_id, None))
        slot = _DERIVED[key_id] = (forget, {})
    entries = slot[1]
    version = (weight._version, weight.data_ptr(), weight.dtype, weight.device)
    if entries.get("version") != version:
        entries.clear()
        entries["version"] = version
    if name not in entries:
        entries[name] = make()
    return entries[name]


def setup_filter(taps: Sequence[float]) -> Tensor:
    """Outer product of 1-D taps, normalised to sum 1: the 2-D FIR used for resampling.

    Args:
        taps: 1-D filter taps, e.g. ``[1, 3, 3, 1]``.

    Returns:
        ``[k, k]`` float32 filter.
    """
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim != 1 or f.numel() == 0:
        raise ValueError(f"filter taps must be a non-empty 1-D sequence, got shape {list(f.shape)}")
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d_reference(
    x: Tensor,
    f: Tensor,
    *,
    up: int = 1,
    down: int = 1,
    padding: Sequence[int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> Tensor:
    """Upsample by zero insertion, pad, convolve with the FIR ``f``, then decimate.

    Slow but general: it is the definition the fast paths are tested against.

    Args:
        x: ``[N, C, H, W]`` input.
        f: ``[k, k]`` filter (not flipped by the caller; convolution flips it).
        up: integer upsampling factor.
        down: integer downsampling factor.
        padding: ``(x0, x1, y0, y1)``, negative values crop.
        gain: overall gain; the filter is scaled by it.
    """
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    weight = (f * gain).to(x.dtype).flip([0, 1])
    weight = weight[None, None].repeat(c, 1, 1, 1)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down]


def _depthwise(f: Tensor, channels: int, dtype: torch.dtype, gain: float) -> Tensor:
    """``[C, 1, k, k]`` depthwise weight of the flipped, scaled filter."""
    return (f * gain).to(dtype).flip([0, 1])[None, None].repeat(channels, 1, 1, 1)


def upsample2d(x: Tensor, f: Tensor) -> Tensor:
    """2x FIR upsampling, as NVIDIA's ``upsample2d`` (padding chosen to keep alignment).

    One depthwise transposed convolution with stride 2 does the zero insertion and the
    filtering in a single call. Equals ``upfirdn2d_reference(x, f, up=2, padding=p, gain=4)``.

    Args:
        x: ``[N, C, H, W]``.
        f: ``[k, k]`` filter.

    Returns:
        ``[N, C, 2H, 2W]``.
    """
    k = f.shape[-1]
    pad0 = (k + 1) // 2
    weight = _depthwise(f, x.shape[1], x.dtype, 4.0).flip([2, 3])
    return F.conv_transpose2d(x, weight, stride=2, padding=k - 1 - pad0, groups=x.shape[1])


def filter2d(x: Tensor, f: Tensor, *, padding: int, gain: float = 1.0) -> Tensor:
    """Depthwise FIR filtering with symmetric padding (no resampling)."""
    return F.conv2d(x, _depthwise(f, x.shape[1], x.dtype, gain), padding=padding, groups=x.shape[1])


def bias_act(
    x: Tensor,
    b: Optional[Tensor],
    *,
    act: str = "linear",
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
) -> Tensor:
    """Add a per-channel bias (dim 1), apply the activation, scale by ``gain``, clamp.

    ``act`` is ``'linear'`` or ``'lrelu'`` (slope 0.2, default gain sqrt(2)), as in StyleGAN2.
    """
    if b is not None:
        x = x + b.reshape([-1 if i == 1 else 1 for i in range(x.ndim)])
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_ALPHA)
        gain = LRELU_GAIN if gain is None else gain
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}; expected 'linear' or 'lrelu'")
    if gain is not None and gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def modulated_conv2d(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    *,
    noise: Optional[Tensor] = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: Optional[Tensor] = None,
    demodulate: bool = True,
    fused: Optional[bool] = None,
) -> Tensor:
    """Style-modulated (and demodulated) convolution, optionally with 2x upsampling first.

    The per-sample weights are folded into one grouped convolution (batch as groups), which
    is the fastest form on CPU and GPU for the small batches DragGAN uses.

    Args:
        x: ``[N, I, H, W]`` input.
        weight: ``[O, I, k, k]`` base weight.
        styles: ``[N, I]`` per-sample channel scales.
        noise: optional ``[N or 1, 1, H', W']`` noise added after the convolution.
        up: 1 or 2.
        padding: convolution padding (``k // 2``).
        resample_filter: ``[4, 4]`` FIR, needed when ``up == 2``.
        demodulate: normalise each output channel's weight to unit norm.
        fused: fold the styles into per-sample weights (one grouped conv). None picks
            (see `_fuse`).

    Returns:
        ``[N, O, H*up, W*up]``.
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so that the fp16 products below cannot overflow (NVIDIA does the same).
        weight = weight * (
            1 / math.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    if fused is None:
        fused = _fuse(x, weight, styles, up)
    if not fused:
        return _modconv_separate(x, weight, styles, noise, up, padding, resample_filter, demodulate)
    w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * demodulation(weight, styles).reshape(n, -1, 1, 1, 1)
    w = w.to(x.dtype).reshape(n * out_ch, in_ch, kh, kw)
    x = _conv(x.reshape(1, n * in_ch, *x.shape[2:]), w, n, up, padding, resample_filter)
    x = x.reshape(n, out_ch, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


def _fuse(x: Tensor, weight: Tensor, styles: Tensor, up: int) -> bool:
    """Whether the fused form is the cheaper one here.

    - Only the styles need gradients (a drag): split, whose backward pass is half the work.
    - The weights need gradients (training): fused, as NVIDIA trains.
    - No gradients (rendering): whichever scales fewer numbers. Fused scales the weight,
      ``O x I x k x k`` per sample; split scales the input and the output activations. At
      low resolution the weights are far larger, at high resolution the activations.
    """
    if torch.is_grad_enabled() and (styles.requires_grad or weight.requires_grad):
        return weight.requires_grad
    out_ch, in_ch = weight.shape[:2]
    h, w = x.shape[-2:]
    activations = in_ch * h * w + out_ch * h * w * up * up
    return activations > weight.numel()


def demodulation(weight: Tensor, styles: Tensor) -> Tensor:
    """Per-sample, per-output-channel ``1 / |weight * style|``, ``[N, O]``.

    ``sum_{i,k} (W[o,i,k] s[i])^2 = sum_i s[i]^2 sum_k W[o,i,k]^2`` is one small matmul, so
    the ``[N, O, I, k, k]`` modulated weight (and its gradient) is never formed for it.
    """
    wsq = _derived(weight, "wsq", lambda: weight.float().square().sum(dim=[2, 3]))  # [O, I]
    return (styles.float().square() @ wsq.t() + 1e-8).rsqrt()


def _conv(
    x: Tensor, w: Tensor, groups: int, up: int, padding: int, resample_filter: Optional[Tensor]
) -> Tensor:
    """Grouped 3x3/1x1 convolution, or 2x transposed convolution followed by the FIR."""
    if up == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    if up != 2:
        raise ValueError(f"up must be 1 or 2, got {up}")
    if resample_filter is None:
        raise ValueError("up=2 needs a resample_filter")
    oc, ic, kh, kw = w.shape

    def transposed() -> Tensor:
        return (
            w.reshape(groups, oc // groups, ic, kh, kw)
            .transpose(1, 2)
            .reshape(groups * ic, -1, kh, kw)
        )

    wt = _derived(w, f"transposed{groups}", transposed)
    x = F.conv_transpose2d(x, wt, stride=2, groups=groups)  # [1, G*O, 2H+1, 2W+1]
    fk = resample_filter.shape[-1]
    return filter2d(x, resample_filter, padding=padding + (fk - 2) // 2 - (kw - 1) // 2, gain=4.0)


def _modconv_separate(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    noise: Optional[Tensor],
    up: int,
    padding: int,
    resample_filter: Optional[Tensor],
    demodulate: bool,
) -> Tensor:
    """Modulation as input scaling and demodulation as output scaling around a plain conv.

    The same function as the fused form, but when only the styles need gradients (a drag
    optimising the latent) the backward pass needs one convolution, the input gradient,
    instead of two: no gradient of a per-sample weight is ever formed.
    """
    n = x.shape[0]
    x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
    x = _conv(x, weight.to(x.dtype), 1, up, padding, resample_filter)
    if demodulate:
        x = x * demodulation(weight, styles).to(x.dtype).reshape(n, -1, 1, 1)
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Scale each vector to unit root-mean-square (StyleGAN's pixel norm on z)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()
