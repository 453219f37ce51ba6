"""StyleGAN2 generator (the ADA-PyTorch architecture) with NVIDIA's interface and names.

The module tree and every parameter and buffer name equal those of NVIDIA's ``G_ema``, so a
state dict loads without a key map, and users' habits carry over:
``G.mapping(z, c, truncation_psi=0.7)``, ``G.synthesis(ws, noise_mode='const')``.

DragGAN needs the features of one intermediate block with gradients, and the image without
them. ``SynthesisNetwork.begin`` runs the blocks up to a resolution and returns their state;
``SynthesisNetwork.finish`` runs the rest, so no block is computed twice and none is computed
with autograd unless the caller asks for it.

Images need not be square. StyleGAN-Human's variant (``square=False``) draws 2:1 portraits:
its first constant is 4 x 2 and every block of resolution ``res`` works at ``res x res/2``.
As in its code, ``img_resolution`` and a block's ``resolution`` name the longer side (the
height); ``img_height`` and ``img_width`` give both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor, nn

from . import ops

NoiseMode = Literal["const", "random", "none"]
NOISE_MODES = ("const", "random", "none")
DEFAULT_FILTER = (1, 3, 3, 1)


def block_shape(resolution: int, square: bool = True) -> tuple[int, int]:
    """``(height, width)`` of a block's features: square, or StyleGAN-Human's 2:1 portrait."""
    return (resolution, resolution) if square else (resolution, resolution // 2)


def image_shape(G: nn.Module) -> tuple[int, int]:
    """``(height, width)`` of the images a generator draws.

    Any generator with NVIDIA's interface: ours carry ``img_height`` and ``img_width``;
    one that has only ``img_resolution`` draws square images.
    """
    side = int(G.img_resolution)
    return int(getattr(G, "img_height", side)), int(getattr(G, "img_width", side))


def check_shape(x: Tensor, shape: Sequence[Optional[int]], name: str) -> None:
    """Raise ValueError unless ``x`` has ``len(shape)`` dims matching the non-None sizes."""
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        want = ["*" if s is None else s for s in shape]
        raise ValueError(f"{name} must have shape {want}, got {list(x.shape)}")


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalized learning rate (runtime weight scaling)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activation={self.activation}"


class MappingNetwork(nn.Module):
    """z (and class c) -> w, broadcast to ``num_ws`` style vectors, with truncation."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 8,
        embed_features: Optional[int] = None,
        layer_features: Optional[int] = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.998,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim else 0
        layer_features = w_dim if layer_features is None else layer_features
        if c_dim:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        for i in range(num_layers):
            layer = FullyConnectedLayer(
                features[i], features[i + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{i}", layer)
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: Tensor,
        c: Optional[Tensor] = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: Optional[int] = None,
        update_emas: bool = False,
    ) -> Tensor:
        """Map latents to styles.

        Args:
            z: ``[N, z_dim]`` latents.
            c: ``[N, c_dim]`` class labels (one-hot), required when ``c_dim > 0``.
            truncation_psi: 1 = no truncation; 0 = every w is ``w_avg``.
            truncation_cutoff: truncate only the first this-many ws (None = all).
            update_emas: track the running mean of w (training only).

        Returns:
            ``[N, num_ws, w_dim]``.
        """
        check_shape(z, [None, self.z_dim], "z")
        parts = [ops.normalize_2nd_moment(z.to(torch.float32))] if self.z_dim else []
        if self.c_dim:
            if c is None:
                raise ValueError(
                    f"this generator is conditional: pass c of shape [N, {self.c_dim}]"
                )
            check_shape(c, [z.shape[0], self.c_dim], "c")
            parts.append(ops.normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = torch.cat(parts, dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # [N, L, w_dim]
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x[:, :cut] = self.w_avg.lerp(x[:, :cut], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x up), noise, bias and leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: Optional[float] = None,
        channels_last: bool = False,
        square: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.shape = block_shape(resolution, square)
        self.up, self.use_noise, self.activation, self.conv_clamp = (
            up,
            use_noise,
            activation,
            conv_clamp,
        )
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(self.shape))
            self.noise_strength = nn.Parameter(torch.zeros([]))

    def forward(
        self,
        x: Tensor,
        w: Tensor,
        noise_mode: NoiseMode = "random",
        fused_modconv: Optional[bool] = None,
    ) -> Tensor:
        styles = self.affine(w)  # [N, I]
        noise = None
        if self.use_noise and noise_mode == "random":
            shape = (x.shape[0], 1, *self.shape)
            noise = torch.randn(shape, device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = ops.modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            fused=fused_modconv,
        )  # [N, O, *self.shape]
        return ops.bias_act(x, self.bias.to(x.dtype), act=self.activation, clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, res={self.resolution}, up={self.up}"
        )


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: Optional[float] = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: Tensor, w: Tensor, fused_modconv: Optional[bool] = None) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        x = ops.modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused_modconv)
        return ops.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


# Where blocks trained in fp16 (``use_fp16``) run in float16, as NVIDIA's code does: on CUDA
# only, CPUs being slow at it. Tests add "cpu" to check that branch without a GPU.
FP16_DEVICE_TYPES: frozenset[str] = frozenset({"cuda"})


class SynthesisBlock(nn.Module):
    """One resolution: (const | 2x-up conv), conv, and a toRGB added to the upsampled image."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: Optional[float] = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        square: bool = True,
        **layer_kwargs: Any,
    ) -> None:
        super().__init__()
        if architecture != "skip":
            raise ValueError(
                f"only the 'skip' generator architecture is supported, got {architecture!r}"
            )
        self.in_channels, self.resolution, self.use_fp16 = in_channels, resolution, use_fp16
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, *block_shape(resolution, square)))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim,
                resolution,
                up=2,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
                square=square,
                **layer_kwargs,
            )
        self.conv1 = SynthesisLayer(
            out_channels,
            out_channels,
            w_dim,
            resolution,
            conv_clamp=conv_clamp,
            square=square,
            **layer_kwargs,
        )
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(
        self,
        x: Optional[Tensor],
        img: Optional[Tensor],
        ws: Tensor,
        *,
        noise_mode: NoiseMode = "random",
        force_fp32: bool = False,
        fused_modconv: Optional[bool] = None,
    ) -> tuple[Tensor, Tensor]:
        """Run the block.

        Args:
            x: ``[N, in_channels, h/2, w/2]`` features, or None for the first block.
            img: ``[N, img_channels, h/2, w/2]`` image so far, or None.
            ws: ``[N, num_conv + num_torgb, w_dim]``.

        Returns:
            ``(x [N, out_channels, h, w], img [N, img_channels, h, w] float32)``, where
            ``h x w`` is the block's shape (``res x res``, or ``res x res/2`` for a portrait).
        """
        fp16 = self.use_fp16 and not force_fp32 and ws.device.type in FP16_DEVICE_TYPES
        dtype = torch.float16 if fp16 else torch.float32
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        else:
            x = self.conv0(x.to(dtype), next(w_iter), noise_mode, fused_modconv)
        x = self.conv1(x, next(w_iter), noise_mode, fused_modconv)
        y = self.torgb(x, next(w_iter), fused_modconv).to(torch.float32)
        img = y if img is None else ops.upsample2d(img, self.resample_filter) + y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, use_fp16={self.use_fp16}"


class SynthesisState(NamedTuple):
    """Where a partial synthesis stopped: the features and image after block ``res``."""

    x: Tensor  # [N, C, h, w] output features of block `res` (h = res; w = res or res/2)
    img: Tensor  # [N, img_channels, h, w] skip-connected image so far
    res: int


class SynthesisNetwork(nn.Module):
    """ws -> image, one SynthesisBlock per resolution from 4 up to ``img_resolution``.

    ``square=False`` is StyleGAN-Human's layout: ``img_resolution x img_resolution/2`` images.
    """

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        square: bool = True,
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        log2 = int(np.log2(img_resolution))
        if img_resolution < 4 or img_resolution != 2**log2:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.square = square
        self.img_height, self.img_width = block_shape(img_resolution, square)
        self.channel_base, self.channel_max, self.num_fp16_res = (
            channel_base,
            channel_max,
            num_fp16_res,
        )
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0,
                channels[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=res == img_resolution,
                use_fp16=res >= fp16_resolution,
                square=square,
                **block_kwargs,
            )
            self.num_ws += block.num_conv
            setattr(self, f"b{res}", block)
        self.num_ws += 1  # the last block's toRGB
        self.channels = channels

    def _block_ws(self, ws: Tensor) -> dict[int, Tensor]:
        """Each block's slice of ws; a block's toRGB shares its w with the next block's conv0."""
        check_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        out, idx = {}, 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            out[res] = ws.narrow(1, idx, block.num_conv + block.num_torgb)
            idx += block.num_conv
        return out

    def _run(
        self,
        ws: Tensor,
        state: Optional[SynthesisState],
        until_res: int,
        noise_mode: NoiseMode,
        force_fp32: bool,
        fused_modconv: Optional[bool] = None,
    ) -> SynthesisState:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if until_res not in self.block_resolutions:
            raise ValueError(
                f"no block at resolution {until_res}; blocks: {self.block_resolutions}"
            )
        x, img, start = (None, None, 0) if state is None else (state.x, state.img, state.res)
        for res, block_ws in self._block_ws(ws).items():
            if start < res <= until_res:
                block = getattr(self, f"b{res}")
                x, img = block(
                    x,
                    img,
                    block_ws,
                    noise_mode=noise_mode,
                    force_fp32=force_fp32,
                    fused_modconv=fused_modconv,
                )
        return SynthesisState(x, img, until_res)

    def begin(
        self,
        ws: Tensor,
        *,
        until_res: int,
        noise_mode: NoiseMode = "const",
        force_fp32: bool = False,
        fused_modconv: Optional[bool] = None,
    ) -> SynthesisState:
        """Run the blocks up to and including resolution ``until_res``, nothing past it.

        Args:
            ws: ``[N, num_ws, w_dim]`` styles.
            until_res: last block to run (4, 8, ..., img_resolution).
            noise_mode: 'const' (the model's fixed noise), 'random' or 'none'.
            force_fp32: never use fp16, even in blocks trained in fp16 on CUDA.
            fused_modconv: as NVIDIA's flag; None picks the faster form (see ops).

        Returns:
            The block's state; ``state.x`` are the features DragGAN supervises and tracks.
        """
        return self._run(ws, None, until_res, noise_mode, force_fp32, fused_modconv)

    def advance(
        self,
        ws: Tensor,
        state: SynthesisState,
        *,
        until_res: int,
        noise_mode: NoiseMode = "const",
        force_fp32: bool = False,
        fused_modconv: Optional[bool] = None,
    ) -> SynthesisState:
        """Continue a partial synthesis from ``state`` through the block at ``until_res``."""
        return self._run(ws, state, until_res, noise_mode, force_fp32, fused_modconv)

    def finish(
        self,
        ws: Tensor,
        state: SynthesisState,
        *,
        noise_mode: NoiseMode = "const",
        force_fp32: bool = False,
        fused_modconv: Optional[bool] = None,
    ) -> Tensor:
        """Continue a partial synthesis from ``state`` to the final ``[N, C, H, W]`` image."""
        res = self.img_resolution
        return self._run(ws, state, res, noise_mode, force_fp32, fused_modconv).img

    def forward(
        self,
        ws: Tensor,
        noise_mode: NoiseMode = "random",
        force_fp32: bool = False,
        fused_modconv: Optional[bool] = None,
        **_ignored: Any,
    ) -> Tensor:
        """ws ``[N, num_ws, w_dim]`` -> image ``[N, img_channels, H, W]`` in about [-1, 1]."""
        res = self.img_resolution
        return self._run(ws, None, res, noise_mode, force_fp32, fused_modconv).img

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, num_ws={self.num_ws}, "
            f"image={self.img_height}x{self.img_width}, channels={self.channels}"
        )


class MappedGenerator(nn.Module):
    """What every generator here shares outside its synthesis network: the constructor
    arguments NVIDIA's pickles record, and ``G(z, c)`` = synthesis of the mapped ``w``.

    Subclasses set ``z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs,
    synthesis_kwargs``, ``mapping`` and ``synthesis``.
    """

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The constructor arguments: ``type(G)(**G.init_kwargs)`` rebuilds the architecture."""
        return {
            "z_dim": self.z_dim,
            "c_dim": self.c_dim,
            "w_dim": self.w_dim,
            "img_resolution": self.img_resolution,
            "img_channels": self.img_channels,
            "mapping_kwargs": dict(self.mapping_kwargs),
            "synthesis_kwargs": dict(self.synthesis_kwargs),
        }

    def forward(
        self,
        z: Tensor,
        c: Optional[Tensor] = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: Optional[int] = None,
        update_emas: bool = False,
        **synthesis_kwargs: Any,
    ) -> Tensor:
        """z ``[N, z_dim]`` (and c) -> image ``[N, img_channels, H, W]``."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, **synthesis_kwargs)


class Generator(MappedGenerator):
    """StyleGAN2 generator: ``MappingNetwork`` followed by ``SynthesisNetwork``.

    Args:
        z_dim: latent size (0 allowed for purely conditional models).
        c_dim: class-label size, 0 for unconditional models.
        w_dim: style size.
        img_resolution: the image's longer side (its height), a power of two.
        img_channels: 3 for RGB.
        mapping_kwargs: MappingNetwork options (num_layers, lr_multiplier, ...).
        synthesis_kwargs: SynthesisNetwork options (channel_base, channel_max, num_fp16_res,
            conv_clamp, ...).
        square: False for StyleGAN-Human's 2:1 portraits (``img_height = img_resolution``,
            ``img_width = img_resolution / 2``), as its own code names the option.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int = 3,
        mapping_kwargs: Optional[dict] = None,
        synthesis_kwargs: Optional[dict] = None,
        square: bool = True,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.square = bool(square)
        self.img_height, self.img_width = block_shape(img_resolution, self.square)
        self.mapping_kwargs = dict(mapping_kwargs or {})
        self.synthesis_kwargs = dict(synthesis_kwargs or {})
        self.synthesis = SynthesisNetwork(
            w_dim, img_resolution, img_channels, square=self.square, **self.synthesis_kwargs
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **self.mapping_kwargs)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The constructor arguments, enough to rebuild this architecture (saved with weights).

        ``square`` appears only when False, so square generators save what they always did.
        """
        kwargs = super().init_kwargs
        if not self.square:
            kwargs["square"] = False
        return kwargs

    def extra_repr(self) -> str:
        return (
            f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, "
            f"image={self.img_height}x{self.img_width}"
        )
