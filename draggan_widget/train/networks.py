"""StyleGAN2 discriminator ('resnet' architecture) for training the default model.

Only training needs a discriminator, so it lives here and not in ``gan/``; the generator is
``gan.stylegan2.Generator`` itself. The architecture follows StyleGAN2 (config F): from-RGB
once at the top, then per resolution two 3x3 convolutions (the second with FIR blur and
stride-2 downsampling) plus a 1x1 downsampling skip, summed with gain ``sqrt(1/2)``; at 4x4 a
minibatch standard-deviation channel, a 3x3 convolution and two dense layers give one logit.
Every weight uses the equalized learning rate (drawn from N(0, 1), scaled at run time by
``1 / sqrt(fan_in)``) so that Adam treats all layers alike. Names are ours, not NVIDIA's.

`GrowingDiscriminator` and `fade_in_last_torgb` fade a new top block into a trained pair
when a run grows to twice its side (``train/grow.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..gan import ops
from ..gan.stylegan2 import DEFAULT_FILTER, Generator, check_shape

SQRT_HALF = math.sqrt(0.5)


class EqualConv2d(nn.Module):
    """3x3 or 1x1 convolution with equalized lr, optional 2x FIR downsampling and activation.

    Downsampling blurs with the ``[1, 3, 3, 1]`` FIR (padding chosen as NVIDIA's
    ``conv2d_resample``) and then convolves with stride 2, so that the network sees an
    anti-aliased signal, as StyleGAN2's discriminator does.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        down: int = 1,
        gain: float = 1.0,
        resample_filter: Sequence[float] = DEFAULT_FILTER,
    ) -> None:
        super().__init__()
        if down not in (1, 2):
            raise ValueError(f"down must be 1 or 2, got {down}")
        self.in_channels, self.out_channels, self.kernel_size = (
            in_channels,
            out_channels,
            kernel_size,
        )
        self.activation, self.down, self.gain = activation, down, gain
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight * self.weight_gain
        pad = self.kernel_size // 2
        if self.down == 2:
            fk = self.resample_filter.shape[-1]
            if self.kernel_size == 1:  # blur and decimate in one strided depthwise conv
                c = x.shape[1]
                fw = self.resample_filter.flip([0, 1])[None, None].repeat(c, 1, 1, 1)
                x = F.conv2d(x, fw, padding=(fk - 2) // 2, stride=2, groups=c)  # [N, I, H/2, W/2]
                x = F.conv2d(x, w)  # [N, O, H/2, W/2]
            else:
                x = ops.filter2d(x, self.resample_filter, padding=pad + (fk - 1) // 2)
                x = F.conv2d(x, w, stride=2)  # [N, O, H/2, W/2]
        else:
            x = F.conv2d(x, w, padding=pad)  # [N, O, H, W]
        gain = self.gain * (ops.LRELU_GAIN if self.activation == "lrelu" else 1.0)
        return ops.bias_act(x, self.bias, act=self.activation, gain=gain)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, k={self.kernel_size}, "
            f"down={self.down}, activation={self.activation}"
        )


class EqualLinear(nn.Module):
    """Dense layer with equalized lr (the discriminator's epilogue)."""

    def __init__(self, in_features: int, out_features: int, *, activation: str = "linear") -> None:
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.weight_gain = 1 / math.sqrt(in_features)

    def forward(self, x: Tensor) -> Tensor:
        return ops.bias_act(
            x.matmul((self.weight * self.weight_gain).t()), self.bias, act=self.activation
        )

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activation={self.activation}"


class DiscriminatorBlock(nn.Module):
    """One resolution of the residual discriminator: ``res`` -> ``res / 2``."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = EqualConv2d(
            in_channels, out_channels, 3, activation="lrelu", down=2, gain=SQRT_HALF
        )
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, down=2, gain=SQRT_HALF)

    def forward(self, x: Tensor) -> Tensor:
        # [N, I, res, res] -> [N, O, res/2, res/2]; the sum keeps unit variance (two halves).
        return self.skip(x) + self.conv1(self.conv0(x))

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}"


class MinibatchStd(nn.Module):
    """Append the std of each feature over groups of samples, averaged, as extra channels.

    It lets the discriminator see a batch's variety, which is what penalises mode collapse.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        if n % g:
            raise ValueError(f"batch {n} must be a multiple of the mbstd group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # [G, N/G, F, C/F, H, W]
        y = (y - y.mean(dim=0)).square().mean(dim=0)  # variance over each group
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [N/G, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)  # [N, C + F, H, W]

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class Discriminator(nn.Module):
    """StyleGAN2 'resnet' discriminator: image ``[N, C, H, W]`` in [-1, 1] -> logits ``[N, 1]``.

    Args:
        img_resolution: input side, a power of two >= 8.
        img_channels: 3 for RGB.
        channel_base: channels at resolution ``r`` are ``min(channel_base // r, channel_max)``,
            the same rule as the generator, so G and D grow alike.
        channel_max: cap on the channels.
        mbstd_group_size: samples per minibatch-std group (the batch must be a multiple).
        mbstd_num_channels: channels the minibatch-std layer appends.
    """

    def __init__(
        self,
        img_resolution: int,
        img_channels: int = 3,
        *,
        channel_base: int = 32768,
        channel_max: int = 512,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
    ) -> None:
        super().__init__()
        log2 = int(np.log2(img_resolution))
        if img_resolution < 8 or img_resolution != 2**log2:
            raise ValueError(f"img_resolution must be a power of two >= 8, got {img_resolution}")
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.channel_base, self.channel_max = channel_base, channel_max
        self.mbstd_group_size, self.mbstd_num_channels = mbstd_group_size, mbstd_num_channels
        resolutions = [2**i for i in range(log2, 1, -1)]  # img_resolution ... 4
        ch = {r: min(channel_base // r, channel_max) for r in resolutions}
        self.fromrgb = EqualConv2d(img_channels, ch[img_resolution], 1, activation="lrelu")
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(ch[r], ch[r // 2], r) for r in resolutions[:-1]
        )
        c4 = ch[4]
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_num_channels)
        self.conv = EqualConv2d(c4 + mbstd_num_channels, c4, 3, activation="lrelu")
        self.fc = EqualLinear(c4 * 16, c4, activation="lrelu")
        self.out = EqualLinear(c4, 1)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The constructor arguments (saved in checkpoints to rebuild the network)."""
        return {
            "img_resolution": self.img_resolution,
            "img_channels": self.img_channels,
            "channel_base": self.channel_base,
            "channel_max": self.channel_max,
            "mbstd_group_size": self.mbstd_group_size,
            "mbstd_num_channels": self.mbstd_num_channels,
        }

    def forward(self, img: Tensor) -> Tensor:
        check_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        x = self.blocks[0](self.fromrgb(img))  # [N, C, H/2, W/2]
        return self.tail(x)

    def tail(self, x: Tensor) -> Tensor:
        """Everything after the top block: ``[N, C, H/2, W/2]`` features -> logits ``[N, 1]``."""
        for block in self.blocks[1:]:
            x = block(x)  # halves the side down to 4
        x = self.conv(self.mbstd(x))  # [N, C4, 4, 4]
        return self.out(self.fc(x.flatten(1)))  # [N, 1]

    def extra_repr(self) -> str:
        return (
            f"img_resolution={self.img_resolution}, channel_base={self.channel_base}, "
            f"channel_max={self.channel_max}"
        )


class GrowingDiscriminator(Discriminator):
    """A discriminator grown from half its side, whose new top block fades in.

    Progressive growing's fade (Karras et al. 2018): ``fromrgb_prev``, the trained network's
    from-RGB layer, reads the image box-downsampled to the old side; the new from-RGB layer
    and top block read it at full side; their features at the old side are blended,
    ``alpha`` on the new path. At alpha 0 this is the trained discriminator on the
    downsampled image, at 1 the plain `Discriminator` (``fromrgb_prev`` is then skipped).
    The box filter is how the face renderer makes a smaller face (the mean of each block),
    so downsampled real faces are what the trained layers learnt on.

    Args:
        img_resolution: input side (twice the trained network's), a power of two >= 8.
        img_channels: 3 for RGB.
        **kwargs: as `Discriminator`.
    """

    def __init__(self, img_resolution: int, img_channels: int = 3, **kwargs: Any) -> None:
        super().__init__(img_resolution, img_channels, **kwargs)
        old_channels = self.blocks[0].conv1.out_channels
        self.fromrgb_prev = EqualConv2d(img_channels, old_channels, 1, activation="lrelu")
        self.alpha = 1.0  # set by the training loop before each step

    def forward(self, img: Tensor) -> Tensor:
        check_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        x = self.blocks[0](self.fromrgb(img))  # [N, C, H/2, W/2]
        if self.alpha < 1:
            old = self.fromrgb_prev(F.avg_pool2d(img, 2))  # [N, C, H/2, W/2]
            x = old.lerp(x, self.alpha)
        return self.tail(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}"


def fade_in_last_torgb(G: Generator, alpha: Callable[[], float]) -> RemovableHandle:
    """Scale the output of ``G``'s last toRGB layer by ``alpha()`` at every call.

    In the 'skip' generator each block adds its toRGB output to the upsampled image of the
    blocks before it, so at alpha 0 a generator grown by one block draws the old
    generator's image upsampled, and at 1 it is the plain generator. The weights stay
    those of ``Generator`` (a hook has no parameters), so the state dict and the exported
    file are unchanged.

    Returns:
        The hook's handle (``handle.remove()`` detaches it).
    """
    torgb = getattr(G.synthesis, f"b{G.img_resolution}").torgb

    def scale(_module: nn.Module, _inputs: Any, out: Tensor) -> Optional[Tensor]:
        a = alpha()
        return None if a >= 1 else out * a  # None keeps the output as it is

    return torgb.register_forward_hook(scale)
