"""StyleGAN3 generator (configs T and R) with NVIDIA's interface and parameter names.

The mapping network is StyleGAN2's. The synthesis network starts from Fourier features
that the first style rotates and translates, then runs ``num_layers`` modulated
convolutions, each followed by a filtered leaky ReLU (see `alias_free`), and a final toRGB.
Every layer works on a grid larger than the image by ``margin_size`` samples a side
(except the last two), and its sampling rate grows from 16 to the image side.

Module tree and state-dict keys equal those of NVIDIA's ``G_ema`` (``synthesis.input``,
``synthesis.L0_36_512``, ...), so a pickle's tensors load without a key map.

Dragging: DragGAN supervises one layer's output. ``begin(ws, until_res=side)`` runs the
layers up to the one picked for that feature side (`SynthesisNetwork.feature_layer`) and
returns its output with the margin cropped off, so the map covers the image exactly as a
StyleGAN2 block's does; ``finish`` runs the rest from the uncropped output.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor, nn

from .alias_free import filtered_lrelu, lowpass_filter
from .stylegan2 import (
    NOISE_MODES,
    FullyConnectedLayer,
    MappedGenerator,
    MappingNetwork,
    NoiseMode,
    check_shape,
)

FeatureChoice = Literal["first", "last"]


class LayerPlan(NamedTuple):
    """Per-layer numbers of a StyleGAN3 synthesis network (index 0..num_layers; the last is
    the toRGB), derived from the constructor arguments as NVIDIA's code derives them."""

    cutoffs: np.ndarray  # f_c, cycles per image
    half_widths: np.ndarray  # f_h, transition half-band
    sampling_rates: np.ndarray  # samples per image side
    sizes: np.ndarray  # grid side: sampling rate + 2 margins (the last two: the image)
    channels: np.ndarray


def layer_plan(
    img_resolution: int,
    img_channels: int,
    *,
    channel_base: int,
    channel_max: int,
    num_layers: int,
    num_critical: int,
    first_cutoff: float,
    first_stopband: float,
    last_stopband_rel: float,
    margin_size: int,
) -> LayerPlan:
    """Cutoffs and stopbands grow geometrically to the image's Nyquist frequency; each
    layer samples at the smallest power of two above twice its stopband."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return LayerPlan(cutoffs, half_widths, rates, sizes, channels)


class SynthesisInput(nn.Module):
    """Fourier features on a ``size x size`` grid, rotated and translated by the first style.

    Buffers: ``freqs`` ``[C, 2]`` (cycles per image), ``phases`` ``[C]``, and ``transform``,
    a user-set 3x3 inverse transform of the image (identity by default).
    """

    def __init__(
        self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float
    ) -> None:
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, size
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        freqs = torch.randn(channels, 2)  # uniform in a disc of radius `bandwidth`
        radii = freqs.norm(dim=1, keepdim=True)
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():  # starts as the identity: no rotation, no translation
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand(channels) - 0.5)

    def _transformed(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample frequencies ``[N, C, 2]`` and phases ``[N, C]`` after the style's
        rotation (a unit (cos, sin)) and translation, then the user's transform."""
        t = self.affine(w)  # [N, 4] = (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        n = w.shape[0]
        rot = torch.eye(3, device=w.device).repeat(n, 1, 1)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        shift = torch.eye(3, device=w.device).repeat(n, 1, 1)
        shift[:, 0, 2], shift[:, 1, 2] = -t[:, 2], -t[:, 3]
        m = rot @ shift @ self.transform[None]  # [N, 3, 3]
        freqs = self.freqs[None] @ m[:, :2, :2]  # [N, C, 2]
        phases = self.phases[None] + (self.freqs[None] @ m[:, :2, 2:]).squeeze(2)
        return freqs, phases

    def forward(self, w: Tensor) -> Tensor:
        """``[N, w_dim]`` -> ``[N, C, size, size]``."""
        check_shape(w, [None, self.w_dim], "w")
        freqs, phases = self._transformed(w)
        # a transform may push frequencies past what the grid can carry: fade them out
        amplitudes = 1 - (freqs.norm(dim=2) - self.bandwidth) / (
            self.sampling_rate / 2 - self.bandwidth
        )
        amplitudes = amplitudes.clamp(0, 1)  # [N, C]
        cells = torch.arange(self.size, device=w.device) + 0.5 - self.size / 2
        coords = cells / self.sampling_rate  # cell centres; the image spans [-0.5, 0.5]
        grid = torch.stack(torch.meshgrid(coords, coords, indexing="xy"), dim=-1)  # [S, S, (x, y)]
        x = torch.einsum("hwk,nck->nhwc", grid, freqs) + phases[:, None, None, :]
        x = torch.sin(x * (2 * math.pi)) * amplitudes[:, None, None, :]  # [N, S, S, C]
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)  # [N, C, S, S]

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, size={self.size}, sampling_rate={self.sampling_rate:g}, "
            f"bandwidth={self.bandwidth:g}"
        )


def modulated_conv(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    *,
    demodulate: bool,
    input_gain: Tensor,
    padding: int,
) -> Tensor:
    """StyleGAN3's modulated convolution, as input scaling, a plain conv and output scaling.

    Weight and styles are first scaled to unit RMS (so that fp16 cannot overflow); the
    styles per sample, where NVIDIA's code takes one RMS over the whole batch: a drawing must
    not depend on what else is in its batch, and demodulation cancels the scale anyway.
    Modulating the input instead of the weight keeps the ``[N, O, I, k, k]`` weight (and its
    gradient) from ever being formed, which is what a drag on the styles needs.

    Args:
        x: ``[N, I, H, W]``.
        weight: ``[O, I, k, k]``.
        styles: ``[N, I]``.
        demodulate: normalise each output channel (every layer but the toRGB).
        input_gain: scalar, ``1 / sqrt(magnitude_ema)``: the input's expected RMS undone.
        padding: ``k - 1``: the output grows by the kernel's reach.

    Returns:
        ``[N, O, H + 2 * padding - k + 1, W + ...]``.
    """
    n = x.shape[0]
    if demodulate:
        weight = weight * weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()
    x = x * (styles * input_gain).to(x.dtype).reshape(n, -1, 1, 1)
    x = nn.functional.conv2d(x, weight.to(x.dtype), padding=padding)
    if demodulate:
        coef = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
        x = x * coef.to(x.dtype).reshape(n, -1, 1, 1)
    return x


class SynthesisLayer(nn.Module):
    """Modulated convolution, then the filtered leaky ReLU that resamples it to the output
    grid (or, for the toRGB layer, a 1x1 modulated convolution without demodulation).

    The filtered ReLU runs at ``tmp_sampling_rate``: twice the larger of the input and output
    rates (``lrelu_upsampling``), reached by upsampling the input ``up_factor`` times and left
    by downsampling ``down_factor`` times. ``padding`` is chosen so that the output grid is
    centred on the input grid.
    """

    def __init__(
        self,
        w_dim: int,
        is_torgb: bool,
        is_critically_sampled: bool,
        use_fp16: bool,
        in_channels: int,
        out_channels: int,
        in_size: int,
        out_size: int,
        in_sampling_rate: int,
        out_sampling_rate: int,
        in_cutoff: float,
        out_cutoff: float,
        in_half_width: float,
        out_half_width: float,
        conv_kernel: int = 3,
        filter_size: int = 6,
        lrelu_upsampling: int = 2,
        use_radial_filters: bool = False,
        conv_clamp: Optional[float] = 256,
        magnitude_ema_beta: float = 0.999,
    ) -> None:
        super().__init__()
        self.is_torgb, self.use_fp16, self.conv_clamp = is_torgb, use_fp16, conv_clamp
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size = in_size, out_size
        self.in_sampling_rate, self.out_sampling_rate = in_sampling_rate, out_sampling_rate
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        k = self.conv_kernel
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        tmp_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.up_factor = int(round(tmp_rate / in_sampling_rate))
        self.down_factor = int(round(tmp_rate / out_sampling_rate))
        up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        up = lowpass_filter(up_taps, in_cutoff, in_half_width * 2, tmp_rate)
        down = lowpass_filter(
            down_taps, out_cutoff, out_half_width * 2, tmp_rate, radial=self.down_radial
        )
        self.register_buffer("up_filter", up)  # None registers nothing, as in NVIDIA's tree
        self.register_buffer("down_filter", down)
        total = (out_size - 1) * self.down_factor + 1  # grid before downsampling
        total -= (in_size + k - 1) * self.up_factor  # what the conv and upsampling give
        total += up_taps + down_taps - 2  # what the two filters take away
        lo = (total + self.up_factor) // 2  # centred: samples sit at cell centres
        self.padding = (lo, total - lo, lo, total - lo)  # (x0, x1, y0, y1)

    def forward(self, x: Tensor, w: Tensor, *, force_fp32: bool = False) -> Tensor:
        """``[N, in_channels, in_size, in_size]`` -> ``[N, out_channels, out_size, out_size]``."""
        check_shape(x, [None, self.in_channels, self.in_size, self.in_size], "x")
        fp16 = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        x = x.to(torch.float16 if fp16 else torch.float32)
        styles = self.affine(w)  # [N, I]
        if self.is_torgb:
            styles = styles / math.sqrt(self.in_channels * self.conv_kernel**2)
        x = modulated_conv(
            x,
            self.weight,
            styles,
            demodulate=not self.is_torgb,
            input_gain=self.magnitude_ema.rsqrt(),
            padding=self.conv_kernel - 1,
        )
        return filtered_lrelu(
            x,
            up_filter=self.up_filter,
            down_filter=self.down_filter,
            bias=self.bias,
            up=self.up_factor,
            down=self.down_factor,
            padding=self.padding,
            gain=1.0 if self.is_torgb else math.sqrt(2),
            slope=1.0 if self.is_torgb else 0.2,
            clamp=self.conv_clamp,
        )

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}x{self.in_size}@{self.in_sampling_rate}, "
            f"out={self.out_channels}x{self.out_size}@{self.out_sampling_rate}, "
            f"up={self.up_factor}, down={self.down_factor}, radial={self.down_radial}"
        )


class SynthesisState(NamedTuple):
    """Where a partial synthesis stopped. The first three fields mean what StyleGAN2's
    `stylegan2.SynthesisState` fields mean, so the drag treats both alike."""

    x: Tensor  # [N, C, res, res] the layer's output inside the image (margin cropped)
    img: Tensor  # [N, 1, res, res] zeros: StyleGAN3 draws no image before its last layer,
    # so a drag's mask term on the coarse image (`DragConfig.mask_image`) adds nothing here
    res: int  # the layer's sampling rate: samples per image side
    full: Tensor  # [N, C, size, size] the layer's whole output, which the next layer reads
    layer: int  # layers run: 0 = the Fourier input only, i + 1 = through layer L{i}


class SynthesisNetwork(nn.Module):
    """ws ``[N, num_ws, w_dim]`` -> image: Fourier input, ``num_layers`` layers, toRGB.

    ``ws[:, 0]`` drives the input's transform, ``ws[:, i + 1]`` layer ``L{i}``.
    """

    # Which of the layers sharing a sampling rate the drag uses (see `feature_layer`).
    feature_choice: FeatureChoice = "last"

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_layers: int = 14,
        num_critical: int = 2,
        first_cutoff: float = 2,
        first_stopband: float = 2**2.1,
        last_stopband_rel: float = 2**0.3,
        margin_size: int = 10,
        output_scale: float = 0.25,
        num_fp16_res: int = 4,
        **layer_kwargs: Any,
    ) -> None:
        super().__init__()
        if num_layers <= num_critical:
            raise ValueError(f"need num_layers > num_critical, got {num_layers}, {num_critical}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.img_height = self.img_width = img_resolution
        self.num_layers, self.num_ws = num_layers, num_layers + 2
        self.margin_size, self.output_scale = margin_size, output_scale
        plan = layer_plan(
            img_resolution,
            img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            num_layers=num_layers,
            num_critical=num_critical,
            first_cutoff=first_cutoff,
            first_stopband=first_stopband,
            last_stopband_rel=last_stopband_rel,
            margin_size=margin_size,
        )
        rates, sizes, channels = plan.sampling_rates, plan.sizes, plan.channels
        self.input = SynthesisInput(
            w_dim, int(channels[0]), int(sizes[0]), rates[0], plan.cutoffs[0]
        )
        self.layer_names: list[str] = []
        for i in range(num_layers + 1):
            prev = max(i - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim,
                is_torgb=i == num_layers,
                is_critically_sampled=i >= num_layers - num_critical,
                use_fp16=bool(rates[i] * 2**num_fp16_res > img_resolution),
                in_channels=int(channels[prev]),
                out_channels=int(channels[i]),
                in_size=int(sizes[prev]),
                out_size=int(sizes[i]),
                in_sampling_rate=int(rates[prev]),
                out_sampling_rate=int(rates[i]),
                in_cutoff=plan.cutoffs[prev],
                out_cutoff=plan.cutoffs[i],
                in_half_width=plan.half_widths[prev],
                out_half_width=plan.half_widths[i],
                **layer_kwargs,
            )
            name = f"L{i}_{layer.out_size}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)
        self.sampling_rates = [int(r) for r in rates]

    @property
    def feature_sides(self) -> list[int]:
        """The feature-map sides a drag can supervise: each sampling rate of a layer before
        the toRGB (the map is cropped to the image, so its side is the rate)."""
        return sorted(set(self.sampling_rates[: self.num_layers]))

    def feature_layer(self, side: int) -> int:
        """Index ``i`` of the layer ``L{i}`` whose output is the ``side`` x ``side`` map.

        Several layers share a sampling rate; `feature_choice` picks the first or the last
        of them (set it on the class or on one network).

        Raises:
            ValueError: no layer samples at ``side``.
        """
        found = [i for i, r in enumerate(self.sampling_rates[: self.num_layers]) if r == side]
        if not found:
            raise ValueError(
                f"this StyleGAN3 has no layer at {side} x {side}; choose feature_res among "
                f"{self.feature_sides}"
            )
        return found[0] if self.feature_choice == "first" else found[-1]

    def _crop(self, full: Tensor, layer: int) -> Tensor:
        """The part of a layer's output inside the image: ``[N, C, rate, rate]``."""
        rate = self.sampling_rates[layer]
        m = (full.shape[-1] - rate) // 2
        return full[:, :, m : m + rate, m : m + rate]

    def _run(
        self, ws: Tensor, state: Optional[SynthesisState], stop: int, force_fp32: bool
    ) -> SynthesisState:
        """Run layers ``state.layer .. stop - 1`` (from the input when ``state`` is None)."""
        check_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        ws = ws.to(torch.float32)
        if state is None:
            full, done = self.input(ws[:, 0]), 0
        else:
            full, done = state.full, state.layer
        if stop < done:
            raise ValueError(f"cannot go back from layer {done} to layer {stop}")
        for i in range(done, stop):
            full = getattr(self, self.layer_names[i])(full, ws[:, i + 1], force_fp32=force_fp32)
        rate = self.sampling_rates[max(stop - 1, 0)]
        x = self._crop(full, max(stop - 1, 0)) if stop <= self.num_layers else full
        img = full.new_zeros(full.shape[0], 1, rate, rate)
        return SynthesisState(x, img, rate, full, stop)

    @staticmethod
    def _check_noise_mode(noise_mode: str) -> None:
        if noise_mode not in NOISE_MODES:  # StyleGAN3 has no noise; the argument is NVIDIA's
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")

    def _stop(self, until_res: Optional[int], until_layer: Optional[str]) -> int:
        if (until_res is None) == (until_layer is None):
            raise ValueError("give exactly one of until_res and until_layer")
        if until_layer is not None:
            if until_layer not in self.layer_names:
                raise ValueError(f"no layer {until_layer!r}; layers: {self.layer_names}")
            return self.layer_names.index(until_layer) + 1
        return self.feature_layer(until_res) + 1

    def begin(
        self,
        ws: Tensor,
        *,
        until_res: Optional[int] = None,
        until_layer: Optional[str] = None,
        noise_mode: NoiseMode = "const",
        force_fp32: bool = False,
        fused_modconv: Optional[bool] = None,
    ) -> SynthesisState:
        """Run the layers up to the feature layer for side ``until_res`` (or the layer named
        ``until_layer``), nothing past it. ``noise_mode`` and ``fused_modconv`` are accepted
        for StyleGAN2's interface and change nothing.

        Returns:
            The state; ``state.x`` are the features DragGAN supervises and tracks.
        """
        self._check_noise_mode(noise_mode)
        return self._run(ws, None, self._stop(until_res, until_layer), force_fp32)

    def advance(
        self,
        ws: Tensor,
        state: SynthesisState,
        *,
        until_res: Optional[int] = None,
        until_layer: Optional[str] = None,
        noise_mode: NoiseMode = "const",
        force_fp32: bool = False,
        fused_modconv: Optional[bool] = None,
    ) -> SynthesisState:
        """Continue a partial synthesis from ``state`` through a later feature layer."""
        self._check_noise_mode(noise_mode)
        return self._run(ws, state, self._stop(until_res, until_layer), force_fp32)

    def finish(
        self,
        ws: Tensor,
        state: SynthesisState,
        *,
        noise_mode: NoiseMode = "const",
        force_fp32: bool = False,
        fused_modconv: Optional[bool] = None,
    ) -> Tensor:
        """Continue a partial synthesis from ``state`` to the ``[N, C, H, W]`` image."""
        self._check_noise_mode(noise_mode)
        full = self._run(ws, state, self.num_layers + 1, force_fp32).full
        return (full * self.output_scale).to(torch.float32)

    def forward(
        self,
        ws: Tensor,
        noise_mode: NoiseMode = "random",
        force_fp32: bool = False,
        **_ignored: Any,
    ) -> Tensor:
        """ws ``[N, num_ws, w_dim]`` -> image ``[N, img_channels, H, W]`` in about [-1, 1]."""
        self._check_noise_mode(noise_mode)
        full = self._run(ws, None, self.num_layers + 1, force_fp32).full
        return (full * self.output_scale).to(torch.float32)

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
            f"sampling_rates={self.sampling_rates}"
        )


class Generator(MappedGenerator):
    """StyleGAN3 generator: StyleGAN2's ``MappingNetwork``, then `SynthesisNetwork`.

    Args:
        z_dim, c_dim, w_dim, img_resolution, img_channels: as StyleGAN2's.
        mapping_kwargs: MappingNetwork options (StyleGAN3 uses 2 layers by default).
        synthesis_kwargs: SynthesisNetwork and SynthesisLayer options (``channel_base``,
            ``num_layers``, ``conv_kernel=1`` and ``use_radial_filters=True`` for config R).
    """

    family = "stylegan3"

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int = 3,
        mapping_kwargs: Optional[dict] = None,
        synthesis_kwargs: Optional[dict] = None,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.img_height = self.img_width = img_resolution
        self.square = True
        self.mapping_kwargs = {"num_layers": 2, **(mapping_kwargs or {})}
        self.synthesis_kwargs = dict(synthesis_kwargs or {})
        self.synthesis = SynthesisNetwork(
            w_dim, img_resolution, img_channels, **self.synthesis_kwargs
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **self.mapping_kwargs)

    @property
    def config_name(self) -> str:
        """'R' (1x1 convolutions, radial filters) or 'T' (translation equivariant)."""
        radial = self.synthesis_kwargs.get("use_radial_filters", False)
        return "R" if radial and self.synthesis_kwargs.get("conv_kernel", 3) == 1 else "T"

    def extra_repr(self) -> str:
        return (
            f"config={self.config_name}, z_dim={self.z_dim}, c_dim={self.c_dim}, "
            f"w_dim={self.w_dim}, res={self.img_resolution}"
        )
