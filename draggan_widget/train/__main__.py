"""Train the default StyleGAN2 on rendered faces, resume a run, export its generator.

    python -m draggan_widget.train --out runs/default --kimg 300
    python -m draggan_widget.train --resume runs/default/latest.pt            # continue
    python -m draggan_widget.train --resume runs/default/latest.pt --kimg 500  # train longer
    python -m draggan_widget.train --resume runs/default/latest.pt --export-only \\
        --export weights/default.safetensors                               # G_ema -> weights
    python -m draggan_widget.train --resume runs/default/latest.pt \\
        --compact checkpoints/default-resume.pt                            # to commit
    python -m draggan_widget.train --grow-from checkpoints/default-resume.pt --res 128 \\
        --fade-kimg 5 --kimg 380 --out runs/grow128                       # 64 -> 128 px

Architecture and optimiser options default to the default model's (see TrainConfig); on
resume they come from the checkpoint and only --kimg, --out, --data and the reporting
periods may change; growing also sets --res (twice the side), --n-images and --fade-kimg.
SIGTERM (``kill PID``) and Ctrl-C save a checkpoint before exiting.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import time
from typing import Any, Optional

import torch
from tqdm import tqdm

from .checkpoint import compact_checkpoint, load_checkpoint
from .grow import grow_checkpoint
from .loop import Progress, TrainConfig, config_from_checkpoint, export_generator, train

logger = logging.getLogger("draggan_widget.train")

# CLI flag -> TrainConfig field, for the options that map one to one.
FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
DTYPES = {"float32": torch.float32, "float16": torch.float16}


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m draggan_widget.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    add = p.add_argument

    def d(name: str) -> str:
        return f"(default {FIELDS[name].default})"

    add("--out", help=f"run directory {d('out')}")
    add("--data", help=".npz faces dataset (default <out>/faces-<n>-<res>.npz, made if missing)")
    add("--n-images", type=int, dest="n_images", help=f"faces to render {d('n_images')}")
    add("--res", type=int, help=f"image side {d('res')}")
    add("--kimg", type=float, help=f"train until this many thousand images {d('kimg')}")
    add("--batch", type=int, help=f"batch size {d('batch')}")
    add("--z-dim", type=int, dest="z_dim", help=d("z_dim"))
    add("--w-dim", type=int, dest="w_dim", help=d("w_dim"))
    add("--map-layers", type=int, dest="map_layers", help=d("map_layers"))
    add("--channel-base", type=int, dest="channel_base", help=d("channel_base"))
    add("--channel-max", type=int, dest="channel_max", help=d("channel_max"))
    add("--d-channel-base", type=int, dest="d_channel_base", help=d("d_channel_base"))
    add("--d-channel-max", type=int, dest="d_channel_max", help=f"{d('d_channel_max')}: as G")
    add("--lr", type=float, help=d("lr"))
    add("--r1-gamma", type=float, dest="r1_gamma", help="default 0.0002 * res^2 / batch")
    add("--pl-weight", type=float, dest="pl_weight", help=f"path-length weight {d('pl_weight')}")
    add(
        "--mixing",
        type=float,
        dest="style_mixing_prob",
        help=f"style mixing {d('style_mixing_prob')}",
    )
    add("--ema-kimg", type=float, dest="ema_kimg", help="EMA half-life (default batch*10/32)")
    add("--no-xflip", action="store_const", const=False, dest="xflip")
    add("--seed", type=int, help=d("seed"))
    add(
        "--fade-kimg",
        type=float,
        dest="fade_kimg",
        help="with --grow-from: fade the new blocks in over this many kimg",
    )
    add(
        "--snap-minutes",
        type=float,
        dest="snap_minutes",
        help=f"checkpoint period {d('snap_minutes')}",
    )
    add("--grid-minutes", type=float, dest="grid_minutes", help=f"grid period {d('grid_minutes')}")
    add("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    add("--resume", help="checkpoint to continue from (a run's latest.pt)")
    add("--grow-from", dest="grow_from", help="checkpoint to grow to --res (twice its side)")
    add("--export", help="write G_ema to this .safetensors when training ends")
    add("--export-dtype", choices=sorted(DTYPES), default="float32")
    add("--export-only", action="store_true", help="with --resume: export, do not train")
    add(
        "--compact",
        help="with --resume: write the lean bfloat16 copy a session commits, do not train",
    )
    return p.parse_args(argv)


def given_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields set on the command line."""
    return {k: v for k, v in vars(args).items() if k in FIELDS and v is not None}


def make_config(args: argparse.Namespace, ckpt: Optional[dict[str, Any]]) -> TrainConfig:
    """The run's config: the checkpoint's (on resume) or the defaults, with the given flags."""
    if ckpt is not None:
        return config_from_checkpoint(ckpt, **given_fields(args))
    return TrainConfig(**given_fields(args))


def load_start(args: argparse.Namespace) -> tuple[Optional[dict[str, Any]], TrainConfig]:
    """The checkpoint to start from (resumed, grown or none) and the run's config."""
    if args.grow_from:
        if args.resume or args.res is None or args.kimg is None:
            raise ValueError("--grow-from needs --res and --kimg, and excludes --resume")
        given = given_fields(args)
        ckpt = grow_checkpoint(load_checkpoint(args.grow_from), res=given.pop("res"), **given)
        return ckpt, TrainConfig(**ckpt["config"])
    ckpt = load_checkpoint(args.resume) if args.resume else None
    return ckpt, make_config(args, ckpt)


class Bar:
    """tqdm over kimg, and a log line a minute (readable in a redirected log file)."""

    def __init__(self, cfg: TrainConfig, start_kimg: float) -> None:
        interactive = sys.stderr.isatty()
        self.bar = tqdm(
            total=cfg.kimg,
            initial=start_kimg,
            unit="kimg",
            dynamic_ncols=interactive,
            mininterval=1 if interactive else 30,
            bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} kimg [{elapsed}<{remaining}{postfix}]",
        )
        self.last_log = 0.0

    def __call__(self, p: Progress) -> None:
        self.bar.update(p.kimg - self.bar.n)
        post = {k: f"{v:.3f}" for k, v in p.stats.items()}
        self.bar.set_postfix(post, img_s=f"{p.img_per_s:.1f}", refresh=False)
        now = time.monotonic()
        if now - self.last_log >= 60:
            logger.info(
                "kimg %.2f step %d  %.1f img/s  %.2f h  %s",
                p.kimg,
                p.step,
                p.img_per_s,
                p.elapsed_s / 3600,
                "  ".join(f"{k} {v:.4f}" for k, v in sorted(p.stats.items())),
            )
            self.last_log = now

    def close(self) -> None:
        self.bar.close()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    torch.set_num_threads(args.threads)
    if args.threads > 1 and "OMP_WAIT_POLICY" not in os.environ:
        logger.warning(
            "OMP_WAIT_POLICY is not set: on a shared CPU, spinning OpenMP threads can run "
            "several times slower; start with OMP_WAIT_POLICY=PASSIVE"
        )
    if args.export_only and not (args.resume and args.export):
        raise SystemExit("error: --export-only needs --resume CHECKPOINT and --export PATH")
    if args.compact and not args.resume:
        raise SystemExit("error: --compact needs --resume CHECKPOINT")
    try:  # a user's mistake gets one line, not a traceback
        ckpt, cfg = load_start(args)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.export_only:
        export_generator(ckpt, args.export, dtype=DTYPES[args.export_dtype])
    if args.compact:
        compact_checkpoint(args.resume, args.compact)
    if args.export_only or args.compact:
        return 0
    logger.info("config: %s", dataclasses.asdict(cfg))
    signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill PID` saves a checkpoint too
    bar = Bar(cfg, ckpt["nimg"] / 1000 if ckpt else 0.0)
    try:
        trainer = train(cfg, resume=ckpt, progress=bar, report_every_s=2.0)
    except KeyboardInterrupt:
        logger.warning(
            "stopped; resume with: python -m draggan_widget.train --resume %s",
            f"{cfg.out}/latest.pt",
        )
        return 130
    finally:
        bar.close()
    if args.export:
        export_generator(trainer.state_dict(), args.export, dtype=DTYPES[args.export_dtype])
    return 0


if __name__ == "__main__":
    sys.exit(main())
