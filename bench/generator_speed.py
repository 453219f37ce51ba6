"""ms per generator forward (batch 1, no grad, noise 'const'): our fast resampling vs references.

    python bench/generator_speed.py [--res 64 256 512] [--repeats 10] [--device cpu]
    python bench/generator_speed.py --stylegan3 --res 256 512   # StyleGAN3 T and R vs StyleGAN2

One process, one random FFHQ-like generator per resolution, timed five ways by swapping
ops in `draggan_widget.gan.ops` (monkeypatch, same weights, same outputs to 1e-4):

- ``fast``: what ships: ``upsample2d`` and the 2x-up modulated conv's blur as one
  (transposed) depthwise convolution each;
- ``upfirdn_ref``: NVIDIA's reference path on a machine without its CUDA plugin:
  ``upfirdn2d_reference`` (zero insertion, pad, depthwise FIR) for the skip-image upsampling
  and for the blur after the transposed convolution;
- ``zero_insert``: the definition: zero insertion by ``upfirdn2d_reference``, then a plain
  convolution on the 4x larger input, then the FIR;
- ``uncached``: the weights' squared norms (demodulation) and transposed up-convolution
  kernels computed again at every call, instead of once per frozen weight;
- ``uncached_fused``: that, and per-sample modulated weights for a single image (the
  grouped "fused" convolution), which is what the generator did before both changes.

Prints one JSON document: machine, configs, median ms of each, and reference / fast.

``--stylegan3`` times instead, per resolution, a StyleGAN3 of NVIDIA's config T and of
config R (``train.py --cfg=stylegan3-t / -r``: 14 layers, channel_base 32768 / 65536) against
the StyleGAN2 above, same batch, same process, and gives StyleGAN3 / StyleGAN2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Iterator, Sequence
from typing import Callable, Optional
from unittest import mock

import torch
import torch.nn.functional as F
from torch import Tensor

from draggan_widget.gan import ops, stylegan3
from draggan_widget.gan.stylegan2 import Generator

# NVIDIA's configs: 'paper256' (channel_base 16384) up to 256 px, 'stylegan2' (FFHQ 512).
CHANNEL_BASE = {64: 16384, 128: 16384, 256: 16384, 512: 32768, 1024: 32768}
_fast_conv = ops._conv


def ffhq_like(res: int) -> Generator:
    torch.manual_seed(0)
    G = Generator(
        z_dim=512,
        c_dim=0,
        w_dim=512,
        img_resolution=res,
        img_channels=3,
        mapping_kwargs={"num_layers": 8},
        synthesis_kwargs={"channel_base": CHANNEL_BASE[res], "channel_max": 512},
    )
    return G.eval().requires_grad_(False)


# NVIDIA's stylegan3 train.py: config R doubles the channels and uses 1x1 convolutions and
# radial filters; both map with 2 layers.
STYLEGAN3_CONFIGS = {
    "T": {"channel_base": 32768, "channel_max": 512},
    "R": {
        "channel_base": 65536,
        "channel_max": 1024,
        "conv_kernel": 1,
        "use_radial_filters": True,
    },
}


def stylegan3_like(res: int, config: str) -> stylegan3.Generator:
    """A random StyleGAN3 of NVIDIA's config ``'T'`` or ``'R'`` at ``res`` px."""
    torch.manual_seed(0)
    G = stylegan3.Generator(
        z_dim=512,
        c_dim=0,
        w_dim=512,
        img_resolution=res,
        mapping_kwargs={"num_layers": 2},
        synthesis_kwargs=STYLEGAN3_CONFIGS[config],
    )
    return G.eval().requires_grad_(False)


def upsample2d_reference(x: Tensor, f: Tensor) -> Tensor:
    return ops.upfirdn2d_reference(x, f, up=2, padding=[2, 1, 2, 1], gain=4)


def _blur_padding(padding: int, f: Tensor, w: Tensor) -> int:
    return padding + (f.shape[-1] - 2) // 2 - (w.shape[-1] - 1) // 2


def conv_upfirdn_ref(
    x: Tensor, w: Tensor, groups: int, up: int, padding: int, f: Optional[Tensor]
) -> Tensor:
    """As NVIDIA's conv2d_resample for up=2: transposed conv, then upfirdn2d_reference."""
    if up == 1:
        return _fast_conv(x, w, groups, up, padding, f)
    oc, ic, k, _ = w.shape
    wt = w.reshape(groups, oc // groups, ic, k, k).transpose(1, 2).reshape(groups * ic, -1, k, k)
    x = F.conv_transpose2d(x, wt, stride=2, groups=groups)
    p = _blur_padding(padding, f, w)
    return ops.upfirdn2d_reference(x, f, padding=[p, p, p, p], gain=4)


def conv_zero_insert(
    x: Tensor, w: Tensor, groups: int, up: int, padding: int, f: Optional[Tensor]
) -> Tensor:
    """The definition: zero insertion, a plain convolution with w (flipped), the FIR."""
    if up == 1:
        return _fast_conv(x, w, groups, up, padding, f)
    k = w.shape[-1]
    one = torch.ones(1, 1, dtype=x.dtype, device=x.device)
    x = ops.upfirdn2d_reference(x, one, up=2, padding=[k - 1, k - 2, k - 1, k - 2])
    x = F.conv2d(x, w.flip([2, 3]), groups=groups)
    p = _blur_padding(padding, f, w)
    return ops.upfirdn2d_reference(x, f, padding=[p, p, p, p], gain=4)


_modulated_conv2d = ops.modulated_conv2d


def modulated_conv2d_fused(*args: object, fused: Optional[bool] = None, **kwargs: object) -> Tensor:
    """The modulated convolution as it was before: per-sample weights even for one image."""
    return _modulated_conv2d(*args, fused=True if fused is None else fused, **kwargs)


VARIANTS: dict[str, dict[str, Callable]] = {  # attributes of `ops` each variant replaces
    "fast": {},
    "upfirdn_ref": {"upsample2d": upsample2d_reference, "_conv": conv_upfirdn_ref},
    "zero_insert": {"upsample2d": upsample2d_reference, "_conv": conv_zero_insert},
    "uncached": {"_derived": lambda weight, name, make: make()},
    "uncached_fused": {
        "_derived": lambda weight, name, make: make(),
        "modulated_conv2d": modulated_conv2d_fused,
    },
}


@contextlib.contextmanager
def resampling(variant: str) -> Iterator[None]:
    """Swap the ops of ``variant`` into `draggan_widget.gan.ops` (``fast`` leaves them alone)."""
    with contextlib.ExitStack() as stack:
        for name, replacement in VARIANTS[variant].items():
            stack.enter_context(mock.patch.object(ops, name, replacement))
        yield


def interleaved_ms(
    fn: Callable[[], Tensor], variants: Sequence[str], repeats: int, warmup: int, sync: Callable
) -> dict[str, float]:
    """Median ms of ``fn`` under each variant, the variants taking turns within every round,
    so that they share whatever else the machine does alike."""
    times: dict[str, list[float]] = {v: [] for v in variants}
    for round_ in range(warmup + repeats):
        for variant in variants:
            with resampling(variant):
                sync()
                t = time.perf_counter()
                fn()
                sync()
            if round_ >= warmup:
                times[variant].append((time.perf_counter() - t) * 1000)
    return {v: statistics.median(ms) for v, ms in times.items()}


@torch.no_grad()
def bench_one(res: int, device: torch.device, repeats: int) -> dict:
    G = ffhq_like(res).to(device)
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out: dict = {"resolution": res, "channel_base": CHANNEL_BASE[res], "repeats": repeats}
    images = {}
    for variant in VARIANTS:
        with resampling(variant):
            images[variant] = G(z, noise_mode="const")
    ms = interleaved_ms(lambda: G(z, noise_mode="const"), list(VARIANTS), repeats, 2, sync)
    for variant in VARIANTS:
        out[f"{variant}_ms"] = round(ms[variant], 2)
        diff = (images[variant] - images["fast"]).abs().max().item()
        if diff > 1e-3:
            raise AssertionError(f"{variant} differs from fast by {diff} at {res} px")
        if variant != "fast":
            out[f"{variant}_over_fast"] = round(ms[variant] / ms["fast"], 2)
    return out


@torch.no_grad()
def bench_stylegan3(
    generators: dict[str, torch.nn.Module], device: torch.device, repeats: int
) -> dict:
    """Median ms per forward of each generator (batch 1, no grad), taking turns every round,
    and each one's time over the first's (the StyleGAN2 baseline)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fns = {}
    for name, G in generators.items():
        G.to(device)
        z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)).to(device)
        fns[name] = lambda G=G, z=z: G(z, noise_mode="const")
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(2 + repeats):
        for name, fn in fns.items():
            sync()
            t = time.perf_counter()
            fn()
            sync()
            if round_ >= 2:
                times[name].append((time.perf_counter() - t) * 1000)
    ms = {name: round(statistics.median(v), 2) for name, v in times.items()}
    base = next(iter(ms))
    return {
        "resolution": next(iter(generators.values())).img_resolution,
        "repeats": repeats,
        **{f"{name}_ms": v for name, v in ms.items()},
        **{f"{name}_over_{base}": round(v / ms[base], 2) for name, v in ms.items() if name != base},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", nargs="+", type=int, default=[64, 256, 512])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs (3 at 512 px on CPU)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument(
        "--stylegan3", action="store_true", help="StyleGAN3 T and R against StyleGAN2 instead"
    )
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    results = []
    for res in args.res:
        repeats = args.repeats if res < 512 or device.type == "cuda" else min(args.repeats, 3)
        if args.stylegan3:
            models = {"stylegan2": ffhq_like(res)}
            models.update({f"stylegan3_{c.lower()}": stylegan3_like(res, c) for c in "TR"})
            results.append(bench_stylegan3(models, device, repeats))
            continue
        results.append(bench_one(res, device, repeats))
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(),
        },
        "config": {
            "z_dim": 512,
            "w_dim": 512,
            "mapping_layers": 8,
            "channel_max": 512,
            "batch": 1,
            "noise_mode": "const",
            "grad": False,
            "timing": "median after 2 warm-up runs",
            "stylegan3": STYLEGAN3_CONFIGS if args.stylegan3 else None,
        },
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
