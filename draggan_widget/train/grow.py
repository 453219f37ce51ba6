"""Grow a trained run to twice its side: keep every trained layer, add a top block, fade it in.

    python -m draggan_widget.train --grow-from checkpoints/default-resume.pt --res 128 \\
        --fade-kimg 5 --kimg 380 --out runs/grow128

Training at 128 px from scratch would take about 11 hours here; the 64-px model already
knows the faces, so the 128-px run starts from it, as progressive growing does (Karras et
al. 2018), on the StyleGAN2 architectures:

- G ('skip'): the 128-px generator has the same mapping and blocks 4..64 (the channel rule
  gives them the same sizes) and one more block, whose toRGB output is added to the
  upsampled 64-px image. Scaling that output by ``alpha`` (`fade_in_last_torgb`) makes the
  grown G draw the old image upsampled at alpha 0, and be the plain `Generator` at 1.
- D ('resnet'): a new from-RGB layer and a 128 -> 64 block in front of the trained blocks;
  the trained from-RGB layer reads the image box-downsampled to 64 px, and the two paths'
  64-px features are blended with ``alpha`` (`GrowingDiscriminator`).

``alpha`` goes from 0 to 1 over ``fade_kimg`` thousand images from the moment of growth
(`TrainConfig.fade_alpha`). The grown run goes on from the trained one's counters, RNG
states and Adam moments; the new parameters' moments start fresh. The result is an ordinary
checkpoint: ``--resume`` continues it, ``--export-only`` writes a plain 128-px generator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from .loop import RESUMABLE, TrainConfig, build_networks, build_optimizers

# Config fields a growth may set besides the side; the rest is the trained run's.
GROWABLE = (*RESUMABLE, "n_images", "fade_kimg")

Rename = Callable[[str], Optional[str]]


def grow_checkpoint(ckpt: Mapping[str, Any], *, res: int, **overrides: Any) -> dict[str, Any]:
    """A checkpoint of the run ``ckpt`` grown to side ``res``, ready to resume.

    Args:
        ckpt: a loaded checkpoint of a run at ``res / 2`` (``load_checkpoint``).
        res: the new side, twice the checkpoint's.
        **overrides: config fields in `GROWABLE` (``kimg`` must exceed the checkpoint's
            images; ``fade_kimg`` is the fade's length).

    Returns:
        The grown run's checkpoint: `Trainer` resumes it like any other.

    Raises:
        ValueError: ``res`` is not twice the checkpoint's side, the checkpoint is still
            fading in an earlier growth, ``kimg`` is not past its images, or an override is
            not in `GROWABLE`.
    """
    old_cfg = TrainConfig(**ckpt["config"])
    nimg = int(ckpt["nimg"])
    cfg = _grown_config(old_cfg, nimg, res, overrides)
    old_G, old_D = build_networks(old_cfg)  # for the trained parameters' names and order
    with torch.random.fork_rng(devices=[]):  # new layers drawn without touching the run's RNG
        torch.manual_seed(cfg.seed + nimg)
        G, D = build_networks(cfg)
    fresh_G, fresh_D = G.state_dict(), D.state_dict()
    opt_G, opt_D = build_optimizers(G, D, cfg)
    return {
        **ckpt,
        "config": asdict(cfg),
        "G_kwargs": G.init_kwargs,
        "D_kwargs": D.init_kwargs,
        "G": _graft(fresh_G, ckpt["G"], _same_name),
        "G_ema": _graft(fresh_G, ckpt["G_ema"], _same_name),  # new block: EMA starts at G
        "D": _graft(fresh_D, ckpt["D"], grown_d_name),
        "opt_G": _graft_adam(ckpt["opt_G"], old_G, G, opt_G, _same_name),
        "opt_D": _graft_adam(ckpt["opt_D"], old_D, D, opt_D, grown_d_name),
    }


def grown_d_name(name: str) -> Optional[str]:
    """Where a trained discriminator's tensor goes in the grown one (None: dropped).

    The trained from-RGB layer becomes ``fromrgb_prev``, block ``i`` becomes ``i + 1``
    behind the new top block, and a finished fade's spare ``fromrgb_prev`` is dropped.
    """
    head, _, rest = name.partition(".")
    if head == "fromrgb_prev":
        return None
    if head == "fromrgb":
        return f"fromrgb_prev.{rest}"
    if head == "blocks":
        index, _, rest = rest.partition(".")
        return f"blocks.{int(index) + 1}.{rest}"
    return name


def _same_name(name: str) -> str:
    return name


def _grown_config(
    old: TrainConfig, nimg: int, res: int, overrides: Mapping[str, Any]
) -> TrainConfig:
    if res != 2 * old.res:
        raise ValueError(
            f"a run grows by one block at a time: the checkpoint is {old.res} px, so pass "
            f"--res {2 * old.res}"
        )
    if old.fade_alpha(nimg) < 1:
        raise ValueError(
            f"the checkpoint is still fading in its own growth (alpha "
            f"{old.fade_alpha(nimg):.2f}); resume it past "
            f"{old.grown_at_kimg + old.fade_kimg:g} kimg before growing it again"
        )
    bad = sorted(k for k, v in overrides.items() if k not in GROWABLE and getattr(old, k) != v)
    if bad:
        raise ValueError(
            f"cannot change {bad} when growing a run (only {list(GROWABLE)}); "
            "the trained layers keep their architecture"
        )
    # The trained run's dataset has the old side: a new one is rendered unless --data says.
    changes = {"data": None, **overrides, "res": res, "grown_at_kimg": nimg / 1000}
    cfg = dataclasses.replace(old, **changes)
    if cfg.kimg <= nimg / 1000:
        raise ValueError(
            f"the checkpoint has seen {nimg / 1000:g} kimg: pass a larger --kimg (where "
            "the grown run stops)"
        )
    return cfg


def _graft(fresh: Mapping[str, Tensor], trained: Mapping[str, Tensor], rename: Rename) -> dict:
    """``fresh`` with every trained tensor put in its (renamed) place, in the fresh dtype."""
    out = dict(fresh)
    for name, value in trained.items():
        new = rename(name)
        if new is None:
            continue
        if new not in fresh or fresh[new].shape != value.shape:
            want = tuple(fresh[new].shape) if new in fresh else "no such tensor"
            raise ValueError(
                f"the checkpoint's {name} {tuple(value.shape)} does not fit the grown "
                f"network ({new}: {want}); grow a checkpoint written by this trainer"
            )
        out[new] = value.to(fresh[new].dtype)
    return out


def _graft_adam(
    state: Mapping[str, Any],
    old_net: nn.Module,
    new_net: nn.Module,
    new_opt: torch.optim.Optimizer,
    rename: Rename,
) -> dict[str, Any]:
    """The trained Adam moments under the grown network's parameter indices.

    An optimiser's state is keyed by the parameter's position, which growth shifts (the
    new block sits before the mapping in G and before the trained blocks in D), so the
    moments travel by name. New parameters get none: Adam starts them fresh.
    """
    old_names = [name for name, _ in old_net.named_parameters()]
    new_index = {name: i for i, (name, _) in enumerate(new_net.named_parameters())}
    moments = {}
    for index, value in state["state"].items():
        new = rename(old_names[int(index)])
        if new is not None:
            moments[new_index[new]] = value
    return {"state": moments, "param_groups": new_opt.state_dict()["param_groups"]}
