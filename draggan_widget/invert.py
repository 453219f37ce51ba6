"""Real photos into the generator: projection into W, then W+, and pivotal tuning (PTI).

The path of a photo to the drag::

    ws, report = project(G, "photo.jpg")      # the latent whose image is closest to the photo
    G_tuned = pti(G, ws, report.target)        # optional: tune a copy of G around that latent
    session = DragSession(G_tuned, w=ws)       # drag the photo

`edit_photo` runs the first two on an upload's bytes, with a progress callback, for the
widget's upload button. Reading the photo into the model's frame (what is accepted, the
crop and resize, the notes on what was done) is `photo_input`'s; `prepare_image`,
`PreparedImage` and `ImageInput` are imported from there and re-exported here.

Noise. `DragSession` synthesises with ``noise_mode='const'``, so projection keeps each layer's
constant noise as it is and optimises only the latent. NVIDIA's projector also optimises the
per-layer noise maps (and regularises them); we do not, because (1) noise maps are fixed in
image space: detail fitted into them would stay where it is while the drag moves the
content, and leave a ghost behind; (2) tuned noise would have to travel with the latent as
a changed copy of G, which PTI already provides, with the detail in weights that move with
the features; (3) an image the generator made was made with its constant noise, so nothing
is lost there.
With no noise variables there is nothing for NVIDIA's noise regulariser to act on; instead
the W+ stage is pulled towards a single w (the spread of the per-layer styles is penalised),
which keeps the latent where the generator was trained and the drag well behaved.

Losses work offline: mean squared error plus a multi-scale structural term (1 - SSIM averaged
over scales). A perceptual loss, e.g. ``lpips.LPIPS(net='vgg')``, is added when supplied.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from .gan.stylegan2 import Generator, image_shape
from .photo_input import ImageInput, PreparedImage, prepare_image

logger = logging.getLogger(__name__)

__all__ = [
    "ImageLoss",
    "PreparedImage",
    "Progress",
    "ProjectionReport",
    "edit_photo",
    "image_loss",
    "prepare_image",
    "project",
    "psnr",
    "pti",
    "ssim",
]

PerceptualLoss = Callable[[Tensor, Tensor], Tensor]
"""``loss(image, target)`` on ``[N, 3, H, W]`` images in [-1, 1]; any shape, it is averaged."""

N_W_SAMPLES = 2000  # latents drawn to estimate the mean and spread of W (NVIDIA: 10000)
INIT_BATCH = 16  # candidate starts rendered at once
MAX_SCALES = 5  # scales of the structural loss (MS-SSIM's five)
MIN_SCALE_SIDE = 16  # the structural loss stops halving below this side
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # Wang et al.'s Gaussian window
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # their stabilisers, for images in [0, 1]


class Progress(NamedTuple):
    """Where a projection or tuning is: passed to the ``progress`` callback after each step."""

    stage: str  # "w", "w+" or "pti"
    step: int  # 1-based, within the stage
    total: int  # steps of the stage
    psnr: float  # dB, of the image this step optimised


ProgressCallback = Callable[[Progress], Optional[bool]]
"""Called after every step; returning False stops the run (the result so far is kept)."""


@dataclass
class ProjectionReport:
    """How a projection (and tuning) went: per-step quality and what was done to the input.

    The per-step lists have one entry per optimisation step, of the image that step optimised
    (in the W stage that image includes the exploration noise on the latent). ``stage_psnr``
    and ``stage_ssim`` are of the clean uint8 image at the end of each stage, as the drag will
    show it.
    """

    target: np.ndarray  # uint8 H x W x 3, the prepared photo the latent was fitted to
    notes: list[str]  # what was done to the input (crop, resize, alpha, EXIF rotation)
    stages: list[str] = field(default_factory=list)  # per step: "w", "w+" or "pti"
    psnr: list[float] = field(default_factory=list)  # dB per step
    ssim: list[float] = field(default_factory=list)  # per step, full-resolution SSIM
    loss: list[float] = field(default_factory=list)  # per step, the optimised loss
    stage_psnr: dict[str, float] = field(default_factory=dict)  # dB at the end of each stage
    stage_ssim: dict[str, float] = field(default_factory=dict)
    stopped: bool = False  # a progress callback returned False
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for a status bar: the quality after each stage, and the input notes."""
        parts = [f"{s}: {p:.1f} dB" for s, p in self.stage_psnr.items()]
        text = "PSNR " + ", ".join(parts) if parts else "no steps run"
        if self.stopped:
            text += " (stopped early)"
        return "; ".join([text, *self.notes])


# ---------------------------------------------------------------------------- image losses


def _to_tensor(image: np.ndarray, device: torch.device) -> Tensor:
    """uint8 ``H x W x 3`` -> ``[1, 3, H, W]`` in [-1, 1], the inverse of the session's rounding."""
    t = torch.from_numpy(image).to(device=device, dtype=torch.float32)
    return ((t - 127.5) / 127.5).permute(2, 0, 1)[None]


def _quantise(img: Tensor) -> Tensor:
    """``[N, 3, H, W]`` in [-1, 1] -> the uint8 levels the session shows, in [0, 1]."""
    return (img * 127.5 + 128).clamp(0, 255).floor() / 255


def _gaussian(size: int, sigma: float, device: torch.device) -> Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()  # [size]


def _ssim_map(x: Tensor, y: Tensor) -> Tensor:
    """SSIM of ``[N, C, H, W]`` images in [0, 1]; Gaussian window, valid region, ``[N]``."""
    side = min(x.shape[-2:])
    size = min(SSIM_WINDOW, side - (1 - side % 2))  # odd, fits the image
    g = _gaussian(size, SSIM_SIGMA, x.device)
    c = x.shape[1]
    gh = g.view(1, 1, 1, size).repeat(c, 1, 1, 1)
    gv = g.view(1, 1, size, 1).repeat(c, 1, 1, 1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t, gh, groups=c), gv, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    num = (2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)
    den = (mx**2 + my**2 + SSIM_C1) * (vx + vy + SSIM_C2)
    return (num / den).mean(dim=(1, 2, 3))


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Structural similarity (Wang et al. 2004, 11-px Gaussian window) per image.

    Args:
        x, y: ``[N, 3, H, W]`` in [-1, 1].

    Returns:
        ``[N]``, 1 for identical images.
    """
    return _ssim_map((x + 1) / 2, (y + 1) / 2)


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, for ``[N, 3, H, W]`` images in [-1, 1]."""
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3)) / 4  # as if in [0, 1]
    return 10 * torch.log10(1 / mse.clamp_min(1e-12))


class ImageLoss(NamedTuple):
    """The reconstruction loss and the measures that fall out of it."""

    total: Tensor  # scalar, what is minimised
    mse: Tensor  # scalar, mean squared error in [-1, 1] units
    ssim: Tensor  # scalar, full-resolution SSIM


def image_loss(
    x: Tensor,
    y: Tensor,
    *,
    structural_weight: float = 0.1,
    perceptual: Optional[PerceptualLoss] = None,
    perceptual_weight: float = 1.0,
) -> ImageLoss:
    """Pixel + multi-scale structural (+ perceptual) distance between two images.

    ``x`` is compared as it will be shown, clipped to [-1, 1]: generators overshoot the
    range, and an overshooting pixel that shows the target's white is right, not wrong. (A
    straight-through clip, which lets the gradient of clipped pixels pass, diverged in W+ on
    the 64-px benchmark generator.) Squared error is what PSNR measures, but on its own it
    settles for blur; the structural
    term (1 - SSIM, averaged over up to five halvings of the image, down to 16 px) rewards
    matching edges and texture at every scale. Averaging rather than MS-SSIM's weighted
    product keeps the gradient well defined when an SSIM is negative early on.

    Args:
        x: ``[N, 3, H, W]`` generated images in [-1, 1].
        y: ``[N, 3, H, W]`` targets in [-1, 1].
        structural_weight: weight of the structural term.
        perceptual: an optional learned distance such as ``lpips.LPIPS(net='vgg')``.
        perceptual_weight: its weight.

    Returns:
        The total and its parts (the SSIM of the first scale comes for free).
    """
    x = x.clamp(-1, 1)  # as shown: a pixel past white that should be white is right
    mse = F.mse_loss(x, y)
    a, b = (x + 1) / 2, (y + 1) / 2
    scores = [_ssim_map(a, b).mean()]
    while len(scores) < MAX_SCALES and min(a.shape[-2:]) >= 2 * MIN_SCALE_SIDE:
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        scores.append(_ssim_map(a, b).mean())
    total = mse + structural_weight * (1 - torch.stack(scores).mean())
    if perceptual is not None:
        total = total + perceptual_weight * perceptual(x, y).mean()
    return ImageLoss(total, mse.detach(), scores[0].detach())


# ----------------------------------------------------------------------------- projection


def _device(G: Generator) -> torch.device:
    return G.mapping.w_avg.device


def _label(G: Generator, c: Optional[Tensor]) -> Optional[Tensor]:
    """The class label for conditional generators: as given, else class 0 (as DragSession)."""
    if G.c_dim == 0:
        return None
    if c is None:
        c = torch.zeros(1, G.c_dim)
        c[0, 0] = 1
    if tuple(c.shape) != (1, G.c_dim):
        raise ValueError(f"c must have shape [1, {G.c_dim}], got {list(c.shape)}")
    return c.to(_device(G))


class _WStats(NamedTuple):
    samples: Tensor  # [S, 1, w_dim] latents drawn from the mapping
    mean: Tensor  # [1, 1, w_dim]
    std: float  # RMS distance of a w from the mean (NVIDIA's w_std)


def _w_stats(G: Generator, c: Optional[Tensor], seed: int) -> _WStats:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(N_W_SAMPLES, G.z_dim, generator=gen).to(_device(G))
    labels = None if c is None else c.expand(N_W_SAMPLES, -1)
    with torch.no_grad():
        w = G.mapping(z, labels)[:, :1]  # [S, 1, w_dim]
    mean = w.mean(dim=0, keepdim=True)
    return _WStats(w, mean, float(((w - mean) ** 2).sum(dim=-1).mean().sqrt()))


def _best_start(G: Generator, stats: _WStats, n: int, loss_of: Callable) -> Tensor:
    """The mean w or one of ``n - 1`` sampled ws, whichever renders closest to the target.

    Gradient descent in W finds the nearest basin, not the best one; a few hundred forward
    passes (no gradients) buy a start in a good basin for the price of a few steps.
    """
    if n == 1:
        return stats.mean.clone()
    cands = torch.cat([stats.mean, stats.samples[: n - 1]])  # [n, 1, w_dim]
    losses = []
    with torch.no_grad():
        for w in cands.split(INIT_BATCH):
            imgs = _render(G, w.expand(-1, G.num_ws, -1))
            losses.extend(float(loss_of(img[None]).total) for img in imgs)
    return cands[int(np.argmin(losses))][None].clone()


def _lr_at(t: float, lr: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """NVIDIA's projector schedule: linear warm-up, cosine ramp-down over the last quarter."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return lr * ramp * min(1.0, (t + 1e-8) / rampup)


def _render(G: Generator, ws: Tensor) -> Tensor:
    return G.synthesis(ws, noise_mode="const", force_fp32=True)


def _measure(G: Generator, ws: Tensor, target: Tensor) -> tuple[float, float]:
    """PSNR and SSIM of the clean image as the session shows it (uint8 levels)."""
    with torch.no_grad():
        img = _quantise(_render(G, ws)) * 2 - 1
        return float(psnr(img, target)), float(ssim(img, target))


class _Steps:
    """The shared bookkeeping of a stage: tqdm bar, report, progress callback, stop flag."""

    def __init__(
        self,
        stage: str,
        total: int,
        report: ProjectionReport,
        bar: bool,
        progress: Optional[ProgressCallback],
    ) -> None:
        self.stage, self.total, self.report, self.progress = stage, total, report, progress
        desc = {"w": "project W", "w+": "project W+", "pti": "tune (PTI)"}[stage]
        self.bar = tqdm(total=total, desc=desc, disable=not bar, leave=False)

    def __iter__(self) -> Iterator[int]:
        try:
            for i in range(self.total):
                yield i
                if self.report.stopped:
                    return
        finally:
            self.bar.close()

    def record(self, i: int, loss: ImageLoss) -> None:
        value = float(10 * torch.log10(4 / loss.mse.clamp_min(1e-12)))
        r = self.report
        r.stages.append(self.stage)
        r.psnr.append(value)
        r.ssim.append(float(loss.ssim))
        r.loss.append(float(loss.total.detach()))
        self.bar.update(1)
        self.bar.set_postfix(psnr=f"{value:.2f}")
        if (
            self.progress is not None
            and self.progress(Progress(self.stage, i + 1, self.total, value)) is False
        ):
            r.stopped = True
            logger.info("%s stopped by the progress callback at step %d", self.stage, i + 1)


def _check_steps(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


def project(
    G: Generator,
    image: ImageInput,
    *,
    steps: int = 1000,
    w_plus: bool = True,
    w_fraction: float = 0.5,
    lr: float = 0.1,
    lr_plus: float = 0.01,
    latent_noise: float = 0.05,
    n_init: int = 64,
    spread_weight: float = 0.01,
    structural_weight: float = 0.1,
    perceptual: Optional[PerceptualLoss] = None,
    perceptual_weight: float = 1.0,
    c: Optional[Tensor] = None,
    seed: int = 0,
    bar: bool = True,
    progress: Optional[ProgressCallback] = None,
) -> tuple[Tensor, ProjectionReport]:
    """Find the latent whose image is closest to a photo: first in W, then refined in W+.

    W (one style for every layer) is where the generator was trained, so a W fit is smooth
    and edits well, but it cannot match details of a photo the model never made; W+ (a style
    per layer) then closes the gap, held near the W solution by a penalty on the spread of
    the styles. The W stage starts from the best of a few sampled ws, uses NVIDIA's step-size
    ramps and jitters the latent with decaying noise to escape poor local minima. The
    generator's constant noise is kept (see the module docstring), so the result drags
    exactly as it projects.

    Args:
        G: the generator, on the device to compute on. Its ``requires_grad`` is turned off
            (as `DragSession` does), so no gradient collects in its weights.
        image: a path, image-file bytes, a PIL image or an array (see `prepare_image`).
        steps: optimisation steps in all (NVIDIA's projector: 1000).
        w_plus: refine in W+ after W; False returns a W latent (every style equal).
        w_fraction: share of ``steps`` spent in W when ``w_plus``.
        lr: peak Adam step size in W (NVIDIA: 0.1).
        lr_plus: peak Adam step size in W+, where small moves suffice.
        latent_noise: initial jitter of w, in units of the spread of W (NVIDIA: 0.05).
        n_init: start from the best of the mean w and ``n_init - 1`` sampled ws (1 = the
            mean, as NVIDIA's projector).
        spread_weight: penalty on W+ styles straying from their mean, relative to the spread
            of W (0 = free W+).
        structural_weight: weight of the multi-scale structural term (see `image_loss`).
        perceptual: optional learned distance, e.g. ``lpips.LPIPS(net='vgg')``.
        perceptual_weight: its weight.
        c: class label ``[1, c_dim]`` for conditional generators (default: class 0).
        seed: seeds the sampling of W and the jitter.
        bar: show a tqdm progress bar.
        progress: called with a `Progress` after every step; return False to stop.

    Returns:
        ``ws`` ``[1, num_ws, w_dim]`` (pass it to ``DragSession(G, w=ws)``), and the report.

    Raises:
        FileNotFoundError, ValueError, TypeError: the image cannot be read (see
            `prepare_image`), or a bad option.
    """
    _check_steps("steps", steps)
    if not 1 <= n_init <= N_W_SAMPLES:
        raise ValueError(f"n_init must be in [1, {N_W_SAMPLES}], got {n_init!r}")
    if not 0 <= w_fraction <= 1:
        raise ValueError(f"w_fraction must be in [0, 1], got {w_fraction!r}")
    t0 = time.perf_counter()
    prepared = prepare_image(image, image_shape(G))
    report = ProjectionReport(prepared.image, list(prepared.notes))
    device = _device(G)
    target = _to_tensor(prepared.image, device)
    c = _label(G, c)
    stats = _w_stats(G, c, seed)
    w_std = stats.std
    gen = torch.Generator(device=device).manual_seed(seed)
    n_w = round(steps * w_fraction) if w_plus else steps

    def loss_of(img: Tensor) -> ImageLoss:
        return image_loss(
            img,
            target,
            structural_weight=structural_weight,
            perceptual=perceptual,
            perceptual_weight=perceptual_weight,
        )

    G.requires_grad_(False)
    w = _best_start(G, stats, n_init, loss_of).requires_grad_(True)  # [1, 1, w_dim]
    opt = torch.optim.Adam([w], lr=lr, betas=(0.9, 0.999))
    run = _Steps("w", n_w, report, bar, progress)
    for i in run:
        t = i / n_w
        opt.param_groups[0]["lr"] = _lr_at(t, lr)
        jitter = w_std * latent_noise * max(0.0, 1 - t / 0.75) ** 2
        noisy = w + torch.randn(w.shape, generator=gen, device=device) * jitter
        loss = loss_of(_render(G, noisy.expand(-1, G.num_ws, -1)))
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()
        run.record(i, loss)
    ws = w.detach().expand(-1, G.num_ws, -1).clone()  # [1, L, w_dim]
    if n_w:
        report.stage_psnr["w"], report.stage_ssim["w"] = _measure(G, ws, target)

    n_plus = steps - n_w
    if n_plus and not report.stopped:
        ws.requires_grad_(True)
        opt = torch.optim.Adam([ws], lr=lr_plus, betas=(0.9, 0.999))
        run = _Steps("w+", n_plus, report, bar, progress)
        for i in run:
            opt.param_groups[0]["lr"] = _lr_at(i / n_plus, lr_plus)
            loss = loss_of(_render(G, ws))
            spread = ((ws - ws.mean(dim=1, keepdim=True)) ** 2).sum(dim=-1).mean() / w_std**2
            opt.zero_grad(set_to_none=True)
            (loss.total + spread_weight * spread).backward()
            opt.step()
            run.record(i, loss)
        ws = ws.detach()
        report.stage_psnr["w+"], report.stage_ssim["w+"] = _measure(G, ws, target)
    report.seconds = time.perf_counter() - t0
    logger.info("projection: %s (%.1f s)", report.summary(), report.seconds)
    return ws, report


# ------------------------------------------------------------------------ pivotal tuning


def pti(
    G: Generator,
    ws: Tensor,
    image: ImageInput,
    *,
    steps: int = 350,
    lr: float = 3e-4,
    locality_weight: float = 0.1,
    locality_radius: float = 1.0,
    structural_weight: float = 0.1,
    perceptual: Optional[PerceptualLoss] = None,
    perceptual_weight: float = 1.0,
    c: Optional[Tensor] = None,
    seed: int = 0,
    bar: bool = True,
    progress: Optional[ProgressCallback] = None,
    report: Optional[ProjectionReport] = None,
) -> Generator:
    """Pivotal tuning (Roich et al. 2022): fine-tune a copy of G so ``ws`` renders the photo.

    Projection leaves a gap of detail the generator cannot express; tuning the synthesis
    weights around the pivot latent closes it, so the drag starts from the photo itself. The
    locality regulariser keeps the tuned copy equal to the original away from the pivot: at
    each step a latent is drawn ``locality_radius`` (in units of the spread of W) from the
    pivot towards a random w, and the two generators' images there are pulled together.
    Without it the copy forgets the rest of its latent space, and the drag, which walks
    away from the pivot, would leave the photo's look behind.

    Args:
        G: the generator; its weights are left unchanged (``requires_grad`` is turned off).
        ws: the pivot, ``[1, num_ws, w_dim]`` (from `project`).
        image: the photo (path, bytes, PIL image or array; e.g. ``report.target``).
        steps: tuning steps (PTI: 350).
        lr: peak Adam step size on the weights (PTI: 3e-4).
        locality_weight: weight of the locality term (PTI: 0.1 for each of L2 and LPIPS).
        locality_radius: distance of the regularising latents from the pivot, in units of
            the RMS distance of a w from the mean w.
        structural_weight: see `image_loss`.
        perceptual: optional learned distance, e.g. ``lpips.LPIPS(net='vgg')``.
        perceptual_weight: its weight.
        c: class label ``[1, c_dim]`` for conditional generators (default: class 0).
        seed: seeds the regularising latents.
        bar: show a tqdm progress bar.
        progress: called with a `Progress` after every step; return False to stop.
        report: a `project` report to extend with the stage ``"pti"`` (per-step PSNR/SSIM).

    Returns:
        The tuned copy, in eval mode with ``requires_grad`` off, ready for `DragSession`.

    Raises:
        ValueError: ``ws`` of the wrong shape, or an image that cannot be read.
    """
    _check_steps("steps", steps)
    if tuple(ws.shape) != (1, G.num_ws, G.w_dim):
        raise ValueError(f"ws must have shape [1, {G.num_ws}, {G.w_dim}], got {list(ws.shape)}")
    t0 = time.perf_counter()
    prepared = prepare_image(image, image_shape(G))
    if report is None:
        report = ProjectionReport(prepared.image, list(prepared.notes))
    device = _device(G)
    target = _to_tensor(prepared.image, device)
    pivot = ws.detach().to(device)
    c = _label(G, c)
    w_std = _w_stats(G, c, seed).std
    gen = torch.Generator().manual_seed(seed)

    G.requires_grad_(False)
    tuned = copy.deepcopy(G).eval()
    params = list(tuned.synthesis.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    run = _Steps("pti", steps, report, bar, progress)
    for i in run:
        opt.param_groups[0]["lr"] = _lr_at(i / steps, lr)
        loss = image_loss(
            _render(tuned, pivot),
            target,
            structural_weight=structural_weight,
            perceptual=perceptual,
            perceptual_weight=perceptual_weight,
        )
        total = loss.total
        if locality_weight > 0:
            z = torch.randn(1, G.z_dim, generator=gen).to(device)
            with torch.no_grad():
                w_z = G.mapping(z, c)  # [1, L, w_dim]
                away = w_z - pivot
                w_r = pivot + away / away.norm(dim=-1, keepdim=True) * w_std * locality_radius
                reference = _render(G, w_r)
            local = image_loss(
                _render(tuned, w_r),
                reference,
                structural_weight=structural_weight,
                perceptual=perceptual,
                perceptual_weight=perceptual_weight,
            )
            total = total + locality_weight * local.total
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        run.record(i, loss)
    tuned.requires_grad_(False)
    if steps:
        report.stage_psnr["pti"], report.stage_ssim["pti"] = _measure(tuned, pivot, target)
    report.seconds += time.perf_counter() - t0
    logger.info("pivotal tuning: %s", report.summary())
    return tuned


# --------------------------------------------------------------------------------- widget


def edit_photo(
    G: Generator,
    data: ImageInput,
    *,
    steps: int = 1000,
    pti_steps: int = 350,
    w_plus: bool = True,
    perceptual: Optional[PerceptualLoss] = None,
    seed: int = 0,
    bar: bool = False,
    progress: Optional[ProgressCallback] = None,
) -> tuple[Generator, Tensor, ProjectionReport]:
    """Everything the widget's upload button does: project the photo, then tune (optional).

    Args:
        G: the generator the widget shows.
        data: the uploaded file's bytes (``FileUpload.value[0]['content']``), or a path, a
            PIL image or an array.
        steps: projection steps (see `project`).
        pti_steps: pivotal-tuning steps; 0 skips tuning and returns ``G`` itself.
        w_plus: refine the projection in W+.
        perceptual: optional learned distance, e.g. ``lpips.LPIPS(net='vgg')``.
        seed: seeds the projection and the tuning.
        bar: also show tqdm bars (the widget shows ``progress`` instead).
        progress: called after every step with a `Progress`; return False to stop (cancel).
            A stop during projection skips the tuning.

    Returns:
        ``(G_edit, ws, report)``: the generator to drag on (a tuned copy, or ``G``), the
        latent ``[1, num_ws, w_dim]``, and the report (``report.summary()`` for the status
        line, ``report.notes`` for what was done to the photo).

    Raises:
        ValueError: the data is not an image (nothing else was done).
    """
    _check_steps("pti_steps", pti_steps)
    ws, report = project(
        G,
        data,
        steps=steps,
        w_plus=w_plus,
        perceptual=perceptual,
        seed=seed,
        bar=bar,
        progress=progress,
    )
    if pti_steps == 0 or report.stopped:
        return G, ws, report
    tuned = pti(
        G,
        ws,
        report.target,
        steps=pti_steps,
        perceptual=perceptual,
        seed=seed,
        bar=bar,
        progress=progress,
        report=report,
    )
    return tuned, ws, report
