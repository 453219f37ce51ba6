"""Procedural FID: how close a generator's faces are to the procedural renderer's.

    PYTHONPATH=. python bench/fid.py [--model default] [--n 2000] [--batch 100] [--table]

No ImageNet Inception network can be downloaded here, so the feature space is the landmark
detector's penultimate layer (`LandmarkNet.features`, 256-d), the same cached detector
bench/quality.py trains: a network that has learnt what matters in these faces (where the
eyes, brows, mouth and jaw are) and has never seen a generated image. The score is the
Fréchet distance between Gaussians fitted to the features of N generated images and of N
rendered faces, as in FID, and is read between two anchors measured the same way:

- ``floor``: N other renders against the reference renders, the best any generator can do
  with N images (the distance two samples of the same distribution keep at this N);
- ``ceiling``: the same architecture, untrained (random initialisation), a generator that
  has learnt nothing.

The generator is scored at truncation_psi 1 (the FID convention: the whole distribution)
and 0.7 (what the widget shows), noise_mode 'const', on the same seeded z.

Prints one JSON document: the machine, the configuration (seeds, N, detector) and the
results. ``--table`` adds markdown rows for weights/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from common import emit, machine
from quality_detector import DetectorRecipe, default_cache_dir, load_or_train_detector
from torch import Tensor

from draggan_widget.drag import pick_device
from draggan_widget.gan.stylegan2 import Generator
from draggan_widget.train.faces import render_dataset
from draggan_widget.train.landmarks import (
    FEATURE_DIM,
    INPUT_SIZE,
    LandmarkNet,
    frechet_distance,
)

logger = logging.getLogger("bench.fid")

# Dataset seeds of render_dataset: 0 is the default model's training set, 1 the detector's
# (DetectorRecipe.data_seed) and 2 its held-out set, so the FID's renders use neither.
REFERENCE_SEED = 3
FLOOR_SEED = 4
Z_SEED = 0  # the generated sets' latents, shared by every truncation and by the ceiling
CEILING_SEED = 0  # torch seed of the untrained generator's initialisation
PSIS = (1.0, 0.7)


def embed_renders(detector: LandmarkNet, n: int, *, seed: int) -> np.ndarray:
    """Detector features of faces ``0 .. n-1`` of the render dataset ``seed``, ``[n, D]``.

    Rendered at the detector's own 64 px, as it was trained; generated images of another
    side are area-resized to it by `LandmarkNet.prepare`.
    """
    images, _ = render_dataset(n, size=INPUT_SIZE, seed=seed)
    return detector.embed_images(images)


@torch.no_grad()
def embed_generated(
    G: Generator,
    detector: LandmarkNet,
    n: int,
    *,
    seed: int,
    truncation_psi: float,
    batch: int = 100,
    device: Union[str, torch.device] = "cpu",
) -> np.ndarray:
    """Detector features of ``n`` generated images, ``[n, D]`` float64.

    All ``n`` latents are drawn first, from ``seed``, so the set does not depend on
    ``batch``, and every truncation sees the same z. Images are rounded to uint8 as the
    widget shows them, so they reach the detector by the same path as the renders.
    """
    out = []
    for done, img in generated_batches(
        G, n, seed=seed, truncation_psi=truncation_psi, batch=batch, device=device
    ):
        img = (img.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
        out.append(detector.embed_images(img.permute(0, 2, 3, 1).cpu()))  # [N, H, W, 3]
        logger.info("psi %.2f: %d / %d images", truncation_psi, done, n)
    return np.concatenate(out)


def generated_batches(
    G: Generator,
    n: int,
    *,
    seed: int,
    truncation_psi: float,
    batch: int,
    device: Union[str, torch.device] = "cpu",
) -> Iterator[tuple[int, Tensor]]:
    """``(images so far, [B, 3, H, W] images)`` of ``n`` latents drawn at once from ``seed``
    (const noise, no grad), so a set depends on neither ``batch`` nor ``truncation_psi``."""
    z_all = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    for i in range(0, n, batch):
        with torch.no_grad():
            img = G(
                z_all[i : i + batch].to(device), truncation_psi=truncation_psi, noise_mode="const"
            )
        yield min(i + batch, n), img


def untrained_like(G: Generator, *, seed: int) -> Generator:
    """A freshly initialised generator of ``G``'s architecture (the ceiling), seeded.

    ``init_kwargs`` holds every constructor argument (what the native format saves), so the
    copy has the same mapping and synthesis options; the global RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G0 = Generator(**G.init_kwargs)
    return G0.eval().requires_grad_(False)


def procedural_fid(
    G: Generator,
    detector: LandmarkNet,
    *,
    n: int,
    psis: Sequence[float] = PSIS,
    reference_seed: int = REFERENCE_SEED,
    floor_seed: int = FLOOR_SEED,
    z_seed: int = Z_SEED,
    ceiling_seed: int = CEILING_SEED,
    batch: int = 100,
    device: Union[str, torch.device] = "cpu",
) -> dict[str, Any]:
    """Floor, model and ceiling Fréchet distances to ``n`` reference renders.

    Args:
        G: the generator to score (any resolution; the detector resizes to 64 px).
        detector: the feature network, in eval mode on the CPU.
        n: images per set (reference, floor, each truncation, ceiling).
        psis: truncations of ``G`` to score.
        reference_seed, floor_seed: dataset seeds of the reference and floor renders.
        z_seed: seed of the generated sets' latents.
        ceiling_seed: torch seed of the untrained generator's initialisation.
        batch: generator batch.

    Returns:
        ``{"floor": fd, "model": {"psi=<psi>": fd, ...}, "ceiling": fd}``.

    Raises:
        ValueError: ``n`` under 2 (no covariance) or the two render seeds equal.
    """
    if n < 2:
        raise ValueError(f"need n >= 2 images per set, got n={n}")
    if reference_seed == floor_seed:
        raise ValueError(f"the floor needs other renders than the reference, got {floor_seed=}")
    reference = embed_renders(detector, n, seed=reference_seed)
    floor = frechet_distance(embed_renders(detector, n, seed=floor_seed), reference)
    logger.info("floor (renders vs renders): %.3f", floor)
    G = G.to(device)
    model = {}
    for psi in psis:
        feats = embed_generated(
            G, detector, n, seed=z_seed, truncation_psi=psi, batch=batch, device=device
        )
        model[f"psi={psi:g}"] = frechet_distance(feats, reference)
        logger.info("model at psi %.2f: %.3f", psi, model[f"psi={psi:g}"])
    G0 = untrained_like(G, seed=ceiling_seed).to(device)
    feats = embed_generated(
        G0, detector, n, seed=z_seed, truncation_psi=1.0, batch=batch, device=device
    )
    ceiling = frechet_distance(feats, reference)
    logger.info("ceiling (untrained generator): %.3f", ceiling)
    return {"floor": floor, "model": model, "ceiling": ceiling}


def markdown_rows(report: dict[str, Any]) -> str:
    """The procedural-FID rows for weights/README.md: floor, the model per truncation, ceiling."""
    cfg, res = report["config"], report["results"]
    lines = [
        f"| procedural FID, N = {cfg['n']} | FD |",
        "|---|---:|",
        f"| floor: renders (seed {cfg['floor_seed']}) vs reference renders | {res['floor']:.3f} |",
    ]
    tag = f"{cfg['model']}" + (f" at {cfg['model_kimg']} kimg" if cfg.get("model_kimg") else "")
    for key, value in res["model"].items():
        lines.append(f"| {tag}, {key.replace('psi=', 'psi ')} | {value:.3f} |")
    lines.append(f"| ceiling: same architecture, untrained | {res['ceiling']:.3f} |")
    return "\n".join(lines)


def model_kimg(source: str) -> Optional[str]:
    """Training progress a native weights file records (``draggan_widget.kimg``), if any.

    Interim figures of a model that is still training mean little without it.
    """
    from draggan_widget.gan.formats.native import read_metadata
    from draggan_widget.gan.registry import resolve_source

    path = resolve_source(source)
    if path.suffix != ".safetensors":
        return None
    return read_metadata(path).get("draggan_widget.kimg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="'default', a registry name or a path")
    parser.add_argument("--n", type=int, default=2000, help="images per set")
    parser.add_argument("--batch", type=int, default=100, help="generator batch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", type=Path, default=None, dest="cache_dir")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--table", action="store_true", help="print the markdown rows too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from draggan_widget.gan.formats import load_generator

    device = pick_device(args.device)
    G = load_generator(args.model)
    kimg = model_kimg(args.model)  # now: a training run may export a newer file meanwhile
    recipe = DetectorRecipe()
    detector, detector_info = load_or_train_detector(recipe, args.cache_dir or default_cache_dir())
    t0 = time.perf_counter()
    results = procedural_fid(G, detector, n=args.n, batch=args.batch, device=device)
    report = {
        "machine": machine(device),
        "config": {
            "model": args.model,
            "model_kimg": kimg,
            "resolution": G.img_resolution,
            "n": args.n,
            "batch": args.batch,
            "psis": list(PSIS),
            "noise_mode": "const",
            "reference_seed": REFERENCE_SEED,
            "floor_seed": FLOOR_SEED,
            "z_seed": Z_SEED,
            "ceiling_seed": CEILING_SEED,
            "features": f"LandmarkNet.features ({FEATURE_DIM})",
            "detector": detector_info | {"recipe": dataclasses.asdict(recipe)},
            "seconds": time.perf_counter() - t0,
        },
        "results": results,
    }
    emit(report, args.out, markdown_rows if args.table else None)


if __name__ == "__main__":
    main()
