"""Fine detail at the model's own size: generated faces' power spectrum against the renders'.

    PYTHONPATH=. python bench/spectrum.py --models default weights/default.safetensors \
        [--side 128] [--n 500] [--table]

The procedural FID (`fid.py`) sees every image at its detector's 64 px, so it cannot tell a
128-px model from a 64-px one scaled up. This can: it compares, band by band, how much of an
image's variation is fine detail. Each image (grey, its mean removed, a Hann window against
the border's jump) gets its 2-D power spectrum, averaged over rings of equal frequency and
over the images. A model is scored, per band of frequency (cycles per pixel at ``--side``),
by its power over the renders' power: 1 is right, under 1 blur, over 1 noise or grid
artifacts; the spectral distance is the mean absolute log10 ratio over all rings. A model
smaller than ``--side`` is scaled up with a bilinear filter (as the widget shows it), so the
64-px model is scored as the user would see it at 128 px. The floor is other renders.

Prints one JSON document: the machine, the configuration and the results.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from common import emit, machine
from fid import FLOOR_SEED, REFERENCE_SEED, Z_SEED, generated_batches

from draggan_widget.gan.stylegan2 import Generator
from draggan_widget.train.faces import render_dataset

logger = logging.getLogger("bench.spectrum")

BANDS = {"low": (0.0, 0.125), "mid": (0.125, 0.25), "high": (0.25, 0.5)}  # cycles per pixel


def radial_power(images: np.ndarray) -> np.ndarray:
    """Mean power per ring of integer radius (0 .. side/2 - 1) of ``[N, S, S, 3]`` uint8 images.

    Rings rather than the whole spectrum: a face's orientation does not matter here, and a
    ring averages enough frequencies to be steady at a few hundred images.
    """
    side = images.shape[1]
    grey = images.astype(np.float64).mean(axis=3)
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    window = np.outer(np.hanning(side), np.hanning(side))
    power = (np.abs(np.fft.fftshift(np.fft.fft2(grey * window), axes=(1, 2))) ** 2).mean(axis=0)
    yy, xx = np.indices(power.shape) - side // 2
    ring = np.hypot(xx, yy).round().astype(int).ravel()
    keep = ring < side // 2
    sums = np.bincount(ring[keep], weights=power.ravel()[keep], minlength=side // 2)
    return sums / np.bincount(ring[keep], minlength=side // 2)


def generated(G: Generator, n: int, side: int, *, batch: int = 50) -> np.ndarray:
    """``n`` images of ``G`` (psi 1, `fid.py`'s latents) as uint8 at ``side`` px."""
    out = []
    for _, img in generated_batches(G, n, seed=Z_SEED, truncation_psi=1.0, batch=batch):
        img = img.float()
        if img.shape[-1] != side:
            img = F.interpolate(img, size=(side, side), mode="bilinear", align_corners=False)
        img = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)
        out.append(img.permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def compare(power: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Power over the reference's, per band, and the spectral distance (mean |log10 ratio|)."""
    side = 2 * len(reference)
    freq = np.arange(len(reference)) / side
    ratio = power[1:] / reference[1:]  # ring 0 is the (removed) mean
    result = {"spectral_distance": round(float(np.abs(np.log10(ratio)).mean()), 4)}
    for name, (lo, hi) in BANDS.items():
        rings = (freq[1:] >= lo) & (freq[1:] < hi)
        result[f"{name}_ratio"] = round(
            float(power[1:][rings].sum() / reference[1:][rings].sum()), 3
        )
    return result


def markdown_rows(report: dict[str, Any]) -> str:
    """One row per model (and the floor): band ratios and the spectral distance."""
    lines = [
        f"| at {report['config']['side']} px, N = {report['config']['n']} | low | mid | high "
        "| spectral distance |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in report["results"].items():
        lines.append(
            f"| {name} | {r['low_ratio']:.3f} | {r['mid_ratio']:.3f} | {r['high_ratio']:.3f} "
            f"| {r['spectral_distance']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    from draggan_widget.gan.formats import load_generator

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["default"], help="load_generator sources")
    parser.add_argument("--side", type=int, default=128, help="compare at this side, px")
    parser.add_argument("--n", type=int, default=500, help="images per set")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--table", action="store_true", help="print the markdown rows too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    reference = radial_power(render_dataset(args.n, size=args.side, seed=REFERENCE_SEED)[0])
    floor = radial_power(render_dataset(args.n, size=args.side, seed=FLOOR_SEED)[0])
    results = {"floor: other renders": compare(floor, reference)}
    for source in args.models:
        G = load_generator(source)
        name = f"{source} ({G.img_resolution} px)"
        results[name] = compare(radial_power(generated(G, args.n, args.side)), reference)
        logger.info("%s: %s", name, results[name])
    report = {
        "machine": machine(torch.device("cpu")),
        "config": {
            "side": args.side,
            "n": args.n,
            "reference_seed": REFERENCE_SEED,
            "floor_seed": FLOOR_SEED,
            "z_seed": Z_SEED,
            "psi": 1.0,
            "noise_mode": "const",
            "upscale": "bilinear",
            "bands_cycles_per_px": BANDS,
        },
        "results": results,
    }
    emit(report, args.out, markdown_rows if args.table else None)


if __name__ == "__main__":
    main()
