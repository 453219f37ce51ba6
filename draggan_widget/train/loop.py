"""The StyleGAN2 training loop for the default model: phases, EMA, grids, checkpoints.

One step trains on one batch in the phases of NVIDIA's loop: ``Gmain`` (every step),
``Greg`` (path length, every ``pl_interval`` steps, when enabled), ``Dmain`` (every step) and
``Dreg`` (R1, every ``r1_interval`` steps), then updates the EMA of G. Each phase zeroes its
network's gradients, back-propagates and steps its Adam optimiser, whose lr and betas are
corrected for the lazy regularisation as in the StyleGAN2 paper (Appendix B).

A checkpoint (``latest.pt``, replaced atomically) holds everything the next step reads:
G, D, G_ema, both optimisers, the path-length mean, the step count, the torch RNG and the
data sampler's generator, and the config. Resuming from it gives the same parameters, bit
for bit, as a run that never stopped (on the same machine and thread count); the wall-clock
triggers of checkpoints and grids draw no random numbers, so they do not perturb a run.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..atomic_write import write_via_temp
from ..gan.formats.native import save_generator
from ..gan.stylegan2 import Generator
from .checkpoint import load_checkpoint, save_checkpoint
from .loss import StyleGAN2Loss
from .networks import Discriminator, GrowingDiscriminator, fade_in_last_torgb

logger = logging.getLogger(__name__)

CHECKPOINT = "latest.pt"
GRID_SHAPE = (8, 8)  # columns, rows of the sample grid
GRID_SEED = 1234
GRID_TRUNCATION = 0.7
RESUMABLE = ("kimg", "snap_minutes", "grid_minutes", "out", "data")  # may change on resume


@dataclass
class TrainConfig:
    """Everything that defines a training run. Saved in every checkpoint.

    Defaults are the default model's (chosen by measuring img/s on a 2-core CPU; see
    ``weights/README.md``).
    """

    out: str = "runs/default"  # run directory: latest.pt, grids, log
    data: Optional[str] = None  # .npz dataset; None = <out>/faces-<n>-<res>.npz, rendered once
    n_images: int = 50000  # faces rendered when the dataset does not exist yet
    data_seed: int = 0  # renderer seed of the dataset
    res: int = 64  # image side
    kimg: float = 300.0  # train until this many thousand real images were shown to D
    batch: int = 16
    # Generator
    z_dim: int = 256
    w_dim: int = 256
    map_layers: int = 8
    map_lr_mult: float = 0.01  # the mapping's lr multiplier (StyleGAN's 100x smaller lr)
    w_avg_beta: float = 0.995  # decay of the tracked mean w (the truncation centre)
    channel_base: int = 4096  # channels at res r: min(channel_base // r, channel_max)
    channel_max: int = 128
    # Discriminator (None = same as G). Half G's base: D costs 2/3 of a step at equal size.
    d_channel_base: Optional[int] = 2048
    d_channel_max: Optional[int] = None
    mbstd_group: int = 4
    # Optimisation
    lr: float = 0.0025
    beta2: float = 0.99
    r1_gamma: Optional[float] = None  # None = NVIDIA's heuristic 0.0002 * res^2 / batch
    r1_interval: int = 16
    pl_weight: float = 0.0  # path-length penalty, 0 = off
    pl_interval: int = 4
    style_mixing_prob: float = 0.9
    ema_kimg: Optional[float] = None  # EMA half-life; None = batch * 10 / 32 (NVIDIA's)
    ema_rampup: Optional[float] = 0.05  # half-life <= this fraction of the images seen
    xflip: bool = True  # mirror half of the reals (the faces are near-symmetric)
    seed: int = 0
    # Growth (train/grow.py): the run started from a trained run at res / 2 at this kimg,
    # and the new top blocks of G and D fade in over fade_kimg. None = trained at res.
    grown_at_kimg: Optional[float] = None
    fade_kimg: float = 0.0
    # Reporting
    snap_minutes: float = 5.0  # checkpoint period (wall clock)
    grid_minutes: float = 10.0  # sample-grid period (wall clock)

    def __post_init__(self) -> None:
        if self.res < 8 or self.res & (self.res - 1):
            raise ValueError(f"res must be a power of two >= 8, got {self.res}")
        if self.batch < 1 or self.batch % min(self.mbstd_group, self.batch):
            raise ValueError(
                f"batch must be a positive multiple of mbstd_group={self.mbstd_group}, "
                f"got {self.batch}"
            )
        if self.kimg < 0 or self.lr <= 0 or self.r1_interval < 1 or self.pl_interval < 1:
            raise ValueError("need kimg >= 0, lr > 0, r1_interval >= 1 and pl_interval >= 1")
        if self.fade_kimg < 0:
            raise ValueError(f"fade_kimg must be >= 0, got {self.fade_kimg}")

    @property
    def gamma(self) -> float:
        """The R1 weight in use."""
        return 0.0002 * self.res**2 / self.batch if self.r1_gamma is None else self.r1_gamma

    def fade_alpha(self, nimg: int) -> float:
        """Weight of the grown top blocks after ``nimg`` images: 0 -> 1 over ``fade_kimg``.

        1 for a run that did not grow, and once its fade is over.
        """
        if self.grown_at_kimg is None or self.fade_kimg <= 0:
            return 1.0
        done = (nimg - round(self.grown_at_kimg * 1000)) / (self.fade_kimg * 1000)
        return min(max(done, 0.0), 1.0)

    @property
    def data_path(self) -> Path:
        """Where the dataset is read from (and rendered to when missing)."""
        if self.data is not None:
            return Path(self.data)
        return Path(self.out) / f"faces-{self.n_images}-{self.res}.npz"


@dataclass
class Progress:
    """What the loop reports after each step (running means over the last report period)."""

    step: int
    kimg: float
    total_kimg: float
    img_per_s: float
    stats: dict[str, float]  # loss_G, loss_D, r1, pl, D_real, D_fake (logits)
    elapsed_s: float  # training time, summed over resumed runs


# --------------------------------------------------------------------------------- networks


def build_networks(cfg: TrainConfig) -> tuple[Generator, Discriminator]:
    """A freshly initialised G and D for ``cfg`` (seeded by the caller's torch RNG)."""
    G = Generator(
        z_dim=cfg.z_dim,
        c_dim=0,
        w_dim=cfg.w_dim,
        img_resolution=cfg.res,
        img_channels=3,
        mapping_kwargs={
            "num_layers": cfg.map_layers,
            "lr_multiplier": cfg.map_lr_mult,
            "w_avg_beta": cfg.w_avg_beta,
        },
        synthesis_kwargs={"channel_base": cfg.channel_base, "channel_max": cfg.channel_max},
    )
    D_class = Discriminator if cfg.grown_at_kimg is None else GrowingDiscriminator
    D = D_class(
        cfg.res,
        3,
        channel_base=cfg.d_channel_base or cfg.channel_base,
        channel_max=cfg.d_channel_max or cfg.channel_max,
        mbstd_group_size=cfg.mbstd_group,
    )
    return G, D


def lazy_adam(params: Iterator[Tensor], cfg: TrainConfig, interval: int) -> torch.optim.Adam:
    """Adam with lr and betas corrected for a regulariser applied every ``interval`` steps.

    With lazy regularisation the optimiser takes ``interval + 1`` steps per ``interval``
    batches; scaling lr and the betas by ``interval / (interval + 1)`` keeps the effective
    step size and momentum horizon those of plain training (StyleGAN2, Appendix B).
    """
    ratio = interval / (interval + 1) if interval > 0 else 1.0  # 0 = no lazy regulariser
    return torch.optim.Adam(params, lr=cfg.lr * ratio, betas=(0.0, cfg.beta2**ratio), eps=1e-8)


def build_optimizers(
    G: Generator, D: Discriminator, cfg: TrainConfig
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """G's and D's Adam, each corrected for its lazy regulariser (path length, R1)."""
    opt_G = lazy_adam(G.parameters(), cfg, cfg.pl_interval if cfg.pl_weight > 0 else 0)
    return opt_G, lazy_adam(D.parameters(), cfg, cfg.r1_interval)


@torch.no_grad()
def update_ema(G_ema: Generator, G: Generator, beta: float) -> None:
    """``G_ema <- beta * G_ema + (1 - beta) * G`` for parameters; buffers (w_avg) are copied."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.lerp_(p, 1 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def ema_beta(cfg: TrainConfig, nimg: int) -> float:
    """The EMA decay for one step after ``nimg`` images, from the half-life and its ramp-up."""
    ema_nimg = (cfg.batch * 10 / 32 if cfg.ema_kimg is None else cfg.ema_kimg) * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, nimg * cfg.ema_rampup)
    return 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))


# ------------------------------------------------------------------------------------ data


def load_images(cfg: TrainConfig) -> np.ndarray:
    """The training images ``[N, res, res, 3]`` uint8, rendering the dataset once if needed.

    Rendering 50k faces takes a few minutes on two processes, far less than one training
    hour, and a cached array makes every run (and every resume) see exactly the same data;
    rendering on the fly would take a quarter of a core away from training.
    """
    path = cfg.data_path
    if not path.exists():
        from . import faces  # the renderer; imported here so the loop runs on any image array

        logger.info("rendering %d faces at %d px to %s", cfg.n_images, cfg.res, path)
        t = time.perf_counter()
        workers = max(1, min(2, os.cpu_count() or 1))
        faces.save_dataset(path, cfg.n_images, size=cfg.res, seed=cfg.data_seed, workers=workers)
        # The renderer still evolves; keep the source that drew this dataset next to it.
        shutil.copyfile(faces.__file__, path.with_name(path.stem + "-renderer.py"))
        logger.info("rendered in %.0f s", time.perf_counter() - t)
    # Only the images: G training needs no landmarks, so a dataset whose landmark set an
    # updated renderer no longer matches (which faces.load_dataset refuses) still trains.
    with np.load(path) as data:
        images = data["images"]
    if images.ndim != 4 or images.shape[1:] != (cfg.res, cfg.res, 3) or images.dtype != np.uint8:
        raise ValueError(
            f"{path}: expected uint8 images [N, {cfg.res}, {cfg.res}, 3], got "
            f"{images.dtype} {list(images.shape)}; delete it or pass --data for this --res"
        )
    return images


class RealSampler:
    """Random batches of real images in [-1, 1], with optional x-flip, from its own RNG.

    A dedicated ``torch.Generator`` keeps the data order independent of everything else
    that draws random numbers, and its state goes into the checkpoint.
    """

    def __init__(self, images: np.ndarray, *, batch: int, xflip: bool, seed: int) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images))  # [N, H, W, 3] uint8
        self.batch, self.xflip = batch, xflip
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> Tensor:
        """``[batch, 3, H, W]`` float32 in [-1, 1]."""
        idx = torch.randint(len(self.images), [self.batch], generator=self.generator)
        x = self.images[idx].permute(0, 3, 1, 2).float() / 127.5 - 1
        if self.xflip:
            flip = torch.rand([self.batch], generator=self.generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x


# ----------------------------------------------------------------------------- checkpoints


def config_from_checkpoint(ckpt: dict[str, Any], **overrides: Any) -> TrainConfig:
    """The run's config, with the fields a resume may change (``RESUMABLE``) replaced.

    Raises:
        ValueError: an override of a field that would make the resumed run another run.
    """
    cfg = TrainConfig(**ckpt["config"])
    bad = {k: v for k, v in overrides.items() if k not in RESUMABLE and getattr(cfg, k) != v}
    if bad:
        raise ValueError(
            f"cannot change {sorted(bad)} when resuming (the checkpoint has "
            f"{ {k: getattr(cfg, k) for k in bad} }); start a new run in another --out"
        )
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if k in RESUMABLE})


def export_generator(
    ckpt: Union[str, Path, dict[str, Any]],
    path: Union[str, Path],
    *,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write the checkpoint's G_ema as a native ``.safetensors`` generator.

    Args:
        ckpt: a checkpoint path or an already loaded checkpoint.
        path: destination, e.g. ``weights/default.safetensors``.
        dtype: storage dtype of the floating tensors.

    Returns:
        The path written.
    """
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    alpha = TrainConfig(**ckpt["config"]).fade_alpha(ckpt["nimg"])
    if alpha < 1:
        logger.warning(
            "exporting at %.1f kimg, before the grown block has faded in (alpha %.2f): "
            "the file draws the full block, unlike the run's grids; train past the fade",
            ckpt["nimg"] / 1000,
            alpha,
        )
    G = Generator(**ckpt["G_kwargs"])
    G.load_state_dict(ckpt["G_ema"])
    meta = {
        "draggan_widget.kimg": f"{ckpt['nimg'] / 1000:.1f}",
        "draggan_widget.train_hours": f"{ckpt['elapsed_s'] / 3600:.2f}",
        "draggan_widget.train_config": str(ckpt["config"]),
    }
    out = save_generator(G, path, dtype=dtype, metadata=meta)
    logger.info("exported G_ema (%.1f kimg) to %s", ckpt["nimg"] / 1000, out)
    return out


# ----------------------------------------------------------------------------------- grids


@torch.no_grad()
def save_grid(G: Generator, path: Union[str, Path], *, seed: int = GRID_SEED) -> Path:
    """Write an 8 x 8 PNG of ``G``'s images for fixed latents, truncation 0.7, const noise.

    Fixed seeds make successive grids of a run comparable image by image; the grid draws
    from its own ``torch.Generator``, so writing one does not disturb training.
    """
    cols, rows = GRID_SHAPE
    z = torch.randn([cols * rows, G.z_dim], generator=torch.Generator().manual_seed(seed))
    ws = G.mapping(z, None, truncation_psi=GRID_TRUNCATION)
    img = G.synthesis(ws, noise_mode="const")  # [N, 3, H, W]
    return save_image_grid(img, path, cols=cols)


def save_image_grid(img: Tensor, path: Union[str, Path], *, cols: int) -> Path:
    """Tile ``[N, 3, H, W]`` images in [-1, 1] into one PNG, ``cols`` per row."""
    n, c, h, w = img.shape
    rows = math.ceil(n / cols)
    pad = img.new_zeros([rows * cols - n, c, h, w])
    x = ((torch.cat([img, pad]) + 1) * 127.5).clamp(0, 255).to(torch.uint8)
    x = x.reshape(rows, cols, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    image = Image.fromarray(x.numpy())
    return write_via_temp(path, image.save, suffix=".tmp.png")  # PIL reads the suffix


# ------------------------------------------------------------------------------------ loop


class Trainer:
    """The networks, optimisers and counters of one run, and the step that advances them.

    Args:
        cfg: the run's config.
        images: ``[N, res, res, 3]`` uint8 training images.
        resume: a checkpoint to continue from (its state replaces the fresh one).
    """

    def __init__(
        self, cfg: TrainConfig, images: np.ndarray, *, resume: Optional[dict[str, Any]] = None
    ) -> None:
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.G, self.D = build_networks(cfg)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.loss = StyleGAN2Loss(
            self.G,
            self.D,
            r1_gamma=cfg.gamma,
            style_mixing_prob=cfg.style_mixing_prob,
            pl_weight=cfg.pl_weight,
        )
        self.opt_G, self.opt_D = build_optimizers(self.G, self.D, cfg)
        self.sampler = RealSampler(images, batch=cfg.batch, xflip=cfg.xflip, seed=cfg.seed + 1)
        self.step_count, self.nimg, self.elapsed_s = 0, 0, 0.0
        if cfg.grown_at_kimg is not None:  # after the deepcopy: G_ema needs its own hook
            for g in (self.G, self.G_ema):
                fade_in_last_torgb(g, lambda: self.alpha)
        if resume is not None:
            self._load_state(resume)

    @property
    def alpha(self) -> float:
        """Weight of the grown top blocks now (1 when the run did not grow)."""
        return self.cfg.fade_alpha(self.nimg)

    # -- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (see the module docstring)."""
        return {
            "config": asdict(self.cfg),
            "G_kwargs": self.G.init_kwargs,
            "D_kwargs": self.D.init_kwargs,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "pl_mean": self.loss.pl_mean.clone(),
            "step": self.step_count,
            "nimg": self.nimg,
            "elapsed_s": self.elapsed_s,
            "rng_torch": torch.get_rng_state(),
            "rng_data": self.sampler.generator.get_state(),
        }

    def _load_state(self, ckpt: dict[str, Any]) -> None:
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        self.G_ema.load_state_dict(ckpt["G_ema"])
        # Adam updates its moments in place, and loading keeps float32 tensors as given:
        # copies leave the caller's checkpoint as it was (it may start another trainer).
        self.opt_G.load_state_dict(copy.deepcopy(ckpt["opt_G"]))
        self.opt_D.load_state_dict(copy.deepcopy(ckpt["opt_D"]))
        self.loss.pl_mean = ckpt["pl_mean"].clone()
        self.step_count, self.nimg = int(ckpt["step"]), int(ckpt["nimg"])
        self.elapsed_s = float(ckpt["elapsed_s"])
        torch.set_rng_state(ckpt["rng_torch"])
        self.sampler.generator.set_state(ckpt["rng_data"])

    # -- one step
    def step(self) -> dict[str, float]:
        """Train on one batch (all due phases) and update the EMA; returns the losses."""
        cfg, loss, stats = self.cfg, self.loss, {}
        real = self.sampler.next()
        z_g, z_d = torch.randn([2, cfg.batch, cfg.z_dim]).unbind(0)
        if isinstance(self.D, GrowingDiscriminator):
            self.D.alpha = stats["alpha"] = self.alpha

        self._phase(self.G, self.opt_G)  # Gmain
        loss_g = loss.generator_loss(z_g)
        loss_g.backward()
        self.opt_G.step()
        stats["loss_G"] = loss_g.item()

        if cfg.pl_weight > 0 and self.step_count % cfg.pl_interval == 0:  # Greg
            self._phase(self.G, self.opt_G)
            pl = loss.path_length_penalty(torch.randn([cfg.batch, cfg.z_dim]))
            (pl * cfg.pl_interval).backward()
            self.opt_G.step()
            stats["pl"] = pl.item()

        self._phase(self.D, self.opt_D)  # Dmain
        loss_fake, loss_real = loss.discriminator_loss(real, z_d)
        (loss_fake + loss_real).backward()
        self.opt_D.step()
        stats["loss_D"] = (loss_fake + loss_real).item()

        if self.step_count % cfg.r1_interval == 0:  # Dreg
            self._phase(self.D, self.opt_D)
            r1 = loss.r1_penalty(real)
            (r1 * cfg.r1_interval).backward()
            self.opt_D.step()
            stats["r1"] = r1.item()

        self.step_count += 1
        self.nimg += cfg.batch
        update_ema(self.G_ema, self.G, ema_beta(cfg, self.nimg))
        return stats

    def _phase(self, net: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        """Only ``net`` gets parameter gradients: the other network is a fixed function."""
        self.G.requires_grad_(net is self.G)
        self.D.requires_grad_(net is self.D)
        opt.zero_grad(set_to_none=True)


def train(
    cfg: TrainConfig,
    *,
    images: Optional[np.ndarray] = None,
    resume: Optional[Union[str, Path, dict[str, Any]]] = None,
    max_steps: Optional[int] = None,
    progress: Optional[Callable[[Progress], None]] = None,
    report_every_s: float = 1.0,
) -> Trainer:
    """Train until ``cfg.kimg`` (or ``max_steps`` more steps), checkpointing on the way.

    Writes to ``cfg.out``: ``latest.pt`` every ``snap_minutes`` and at the end (also when
    interrupted with Ctrl-C), ``grid-<kimg>.png`` every ``grid_minutes`` and at the end,
    and, in a directory without a checkpoint yet, ``reals.png`` and a grid at the start.

    Args:
        cfg: the run's config (on resume, the checkpoint's with the allowed overrides).
        images: ``[N, res, res, 3]`` uint8; None = the faces dataset (rendered if missing).
        resume: a checkpoint (path or loaded) to continue from.
        max_steps: stop after this many steps of this call (tests, benchmarks).
        progress: called with a `Progress` about every ``report_every_s`` seconds.
        report_every_s: period of the progress reports.

    Returns:
        The trainer, holding the final networks.
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    new_dir = not (out / CHECKPOINT).exists()  # a new run, or a resume or growth elsewhere
    if isinstance(resume, (str, Path)):
        resume = load_checkpoint(resume)
    if images is None:
        images = load_images(cfg)
    trainer = Trainer(cfg, images, resume=resume)
    logger.info(
        "%s at %.1f kimg: G %.2fM params, D %.2fM params, %d images, R1 gamma %.4g",
        "resuming" if resume else "starting",
        trainer.nimg / 1000,
        sum(p.numel() for p in trainer.G.parameters()) / 1e6,
        sum(p.numel() for p in trainer.D.parameters()) / 1e6,
        len(images),
        cfg.gamma,
    )
    if new_dir:
        save_image_grid(_first_reals(images), out / "reals.png", cols=GRID_SHAPE[0])
    total_nimg = int(cfg.kimg * 1000)
    start = last_snap = last_grid = last_report = time.perf_counter()
    if new_dir:
        _write_grid(trainer, out)
    acc: dict[str, list[float]] = {}
    report_nimg, steps_done = trainer.nimg, 0
    try:
        while trainer.nimg < total_nimg and (max_steps is None or steps_done < max_steps):
            t0 = time.perf_counter()
            for k, v in trainer.step().items():
                acc.setdefault(k, []).append(v)
            steps_done += 1
            now = time.perf_counter()
            trainer.elapsed_s += now - t0
            if progress is not None and now - last_report >= report_every_s:
                rate = (trainer.nimg - report_nimg) / (now - last_report)
                stats = {k: float(np.mean(v)) for k, v in acc.items()}
                progress(
                    Progress(
                        trainer.step_count,
                        trainer.nimg / 1000,
                        cfg.kimg,
                        rate,
                        stats,
                        trainer.elapsed_s,
                    )
                )
                acc, report_nimg, last_report = {}, trainer.nimg, now
            if now - last_snap >= cfg.snap_minutes * 60:
                save_checkpoint(out / CHECKPOINT, trainer.state_dict())
                last_snap = now
            if now - last_grid >= cfg.grid_minutes * 60:
                _write_grid(trainer, out)
                last_grid = now
    except KeyboardInterrupt:
        logger.warning("interrupted: saving the checkpoint before exiting")
        save_checkpoint(out / CHECKPOINT, trainer.state_dict())
        raise
    save_checkpoint(out / CHECKPOINT, trainer.state_dict())
    _write_grid(trainer, out)
    logger.info(
        "stopped at %.1f kimg after %.0f s this call (%.2f h in all)",
        trainer.nimg / 1000,
        time.perf_counter() - start,
        trainer.elapsed_s / 3600,
    )
    return trainer


def _first_reals(images: np.ndarray) -> Tensor:
    """The first 64 training images as ``[64, 3, H, W]`` in [-1, 1] (for ``reals.png``)."""
    x = torch.from_numpy(np.ascontiguousarray(images[:64]))
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1


def _write_grid(trainer: Trainer, out: Path) -> None:
    path = save_grid(trainer.G_ema, out / f"grid-{trainer.nimg / 1000:08.3f}kimg.png")
    logger.info("wrote %s", path)
