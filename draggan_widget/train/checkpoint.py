"""Training checkpoints: written atomically, read without running code, compacted for git.

A run's ``latest.pt`` holds everything its next step reads, in float32. The copy a session
commits (``compact_checkpoint``) holds only what resuming needs, in bfloat16:

- the three networks (G, D, G_ema), cast to bfloat16;
- Adam's second moments, factored as Adafactor factors them (Shazeer & Stern, 2018): a
  matrix's moments become their row sums and column sums, and resuming rebuilds each entry
  as row x column / total. A conv weight ``[out, in, k, k]`` is a matrix ``out x in*k*k``;
- no first moments where beta1 is 0, as StyleGAN2's is: each step overwrites the first
  moment with the gradient before reading it (``_first_moment_unread``).

For the 64-px model that is 11.1 MB instead of 24.1 MB. ``load_checkpoint`` rebuilds the full
moments, so the loop resumes from either form alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import torch
from torch import Tensor

from ..atomic_write import write_via_temp

NETWORKS = ("G", "D", "G_ema")
OPTIMIZERS = ("opt_G", "opt_D")
ROWS, COLS, SHAPE = "exp_avg_sq_rows", "exp_avg_sq_cols", "exp_avg_sq_shape"  # factored


def save_checkpoint(path: Union[str, Path], state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` to a temporary file, then rename it over ``path``.

    The rename is atomic, so a run killed mid-write leaves the previous checkpoint intact.
    """
    return write_via_temp(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Union[str, Path]) -> dict[str, Any]:
    """Read a checkpoint (tensors and plain data only, no code), full or compacted."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; pass the latest.pt of a run")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    for name in OPTIMIZERS:
        if name in ckpt:
            _unfold_moments(ckpt[name])
    return ckpt


def compact_checkpoint(src: Union[str, Path], dst: Union[str, Path]) -> Path:
    """Copy a checkpoint with only what resuming needs, in bfloat16 (module docstring).

    bfloat16 keeps float32's range, so Adam's tiny second moments do not underflow as they
    would in float16; resuming casts everything back to float32.
    """
    ckpt = load_checkpoint(src)
    small = {name: _bfloat16(ckpt[name]) for name in NETWORKS}
    for name in OPTIMIZERS:
        small[name] = _fold_moments(ckpt[name])
    return save_checkpoint(dst, {**ckpt, **small})  # scalars such as pl_mean stay exact


def factor(moment: Tensor) -> tuple[Tensor, Tensor]:
    """Row and column sums of a non-negative tensor seen as a matrix (first dim x the rest)."""
    matrix = moment.float().reshape(moment.shape[0], -1)
    return matrix.sum(1), matrix.sum(0)


def unfactor(rows: Tensor, cols: Tensor, shape: torch.Size) -> Tensor:
    """The rank-one matrix with these row and column sums, in ``shape`` (Adafactor's estimate)."""
    rows, cols = rows.float(), cols.float()
    total = rows.sum().clamp_min(torch.finfo(torch.float32).tiny)
    return (rows[:, None] * cols[None, :] / total).reshape(shape)


def _bfloat16(value: Any) -> Any:
    if isinstance(value, Tensor) and value.is_floating_point():
        return value.to(torch.bfloat16)
    if isinstance(value, dict):
        return {k: _bfloat16(v) for k, v in value.items()}
    return value


def _first_moment_unread(opt_state: dict[str, Any]) -> set[int]:
    """Indices of the parameters whose optimiser has beta1 = 0."""
    return {i for g in opt_state["param_groups"] if g["betas"][0] == 0 for i in g["params"]}


def _fold_moments(opt_state: dict[str, Any]) -> dict[str, Any]:
    """An Adam state dict with factored second moments and no unread first moments."""
    unread = _first_moment_unread(opt_state)
    state = {}
    for index, moments in opt_state["state"].items():
        kept = {"step": moments["step"]}
        if index not in unread:
            kept["exp_avg"] = moments["exp_avg"].to(torch.bfloat16)
        second = moments["exp_avg_sq"]
        if second.dim() >= 2:
            rows, cols = factor(second)
            kept[ROWS], kept[COLS] = rows.to(torch.bfloat16), cols.to(torch.bfloat16)
            kept[SHAPE] = list(second.shape)
        else:  # a bias or a scalar: as small as its factors would be
            kept["exp_avg_sq"] = second.to(torch.bfloat16)
        state[index] = kept
    return {"state": state, "param_groups": opt_state["param_groups"]}


def _unfold_moments(opt_state: dict[str, Any]) -> None:
    """Rebuild, in place and in float32, the full Adam moments of a compacted state dict."""
    for moments in opt_state["state"].values():
        if ROWS in moments:
            rows, cols, shape = moments.pop(ROWS), moments.pop(COLS), moments.pop(SHAPE)
            moments["exp_avg_sq"] = unfactor(rows, cols, torch.Size(shape))
        for key in ("exp_avg", "exp_avg_sq"):
            if key in moments:
                moments[key] = moments[key].float()
        if "exp_avg" not in moments:
            moments["exp_avg"] = torch.zeros_like(moments["exp_avg_sq"])
