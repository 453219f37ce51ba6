"""`DragConfig`: every hyperparameter of a drag, with the paper's defaults and its own checks.

Notebook cells and the widget edit the same object between steps, so each field is checked
on assignment too: a bad value raises at once and the old value stays.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, Optional

from .precision import PRECISIONS

Tracking = Literal["nearest", "subpixel"]
Precision = Literal["auto", "float32", "bfloat16", "float16"]
# Fields that existed and were measured no better than off (bench/README.md, tried and not
# kept), with their neutral values: a session file that sets one to it still loads.
REMOVED_FIELDS: dict[str, Any] = {"slow_down": 0.0, "template_momentum": 0.0, "track_res": None}
# Fields added since session files were first written, with the value that reproduces a file
# saved before them: such a session drags on as it did (a new default would change it).
ADDED_FIELDS: dict[str, Any] = {"hold": 0.0, "warp": 0.0}
PAPER_RES = 512  # the paper's radii are image pixels of a 512-px model
MIN_R1_PX = 1.5  # smallest supervision disc: the 3x3 pixels around a handle
MIN_R2_PX = 3.0  # smallest tracking window: a handle moves about 1 px per step


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _check_settle(value: float) -> None:
    if not (isinstance(value, (int, float)) and 0 < value <= 1):
        raise ValueError(f"settle must be a fraction in (0, 1] of the stop distance, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def _check_feature_res(value: Optional[int], name: str = "feature_res") -> None:
    if value is not None and (not isinstance(value, int) or value < 4 or value & (value - 1)):
        raise ValueError(f"{name} must be None or a power of two >= 4, got {value!r}")


def _check_tracking(value: str) -> None:
    if value not in ("nearest", "subpixel"):
        raise ValueError(f"tracking must be 'nearest' or 'subpixel', got {value!r}")


def _check_precision(value: str) -> None:
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {value!r}")


def _check_unit_interval(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0 <= value <= 1):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def _check_n_opt_ws(value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"n_opt_ws must be an integer >= 1, got {value!r}")


def _check_track_patch(value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or value % 2 == 0:
        raise ValueError(f"track_patch must be an odd integer >= 1, got {value!r}")


def _check_max_steps(value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"max_steps must be an integer >= 1, got {value!r}")


_CHECKS: dict[str, Any] = {
    "lr": lambda v: _positive("lr", v),
    "lambda_mask": lambda v: _non_negative("lambda_mask", v),
    "hold": lambda v: _non_negative("hold", v),
    "warp": lambda v: _non_negative("warp", v),
    "mask_beta": lambda v: _non_negative("mask_beta", v),
    "r1": lambda v: _positive("r1", v),
    "r2": lambda v: _positive("r2", v),
    "feature_res": _check_feature_res,
    "n_opt_ws": _check_n_opt_ws,
    "truncation_psi": lambda v: _check_unit_interval("truncation_psi", v),
    "stop_distance": lambda v: v is None or _positive("stop_distance", v),
    "max_steps": _check_max_steps,
    "tracking": _check_tracking,
    "max_track_move": lambda v: v is None or _positive("max_track_move", v),
    "track_patch": _check_track_patch,
    "settle": _check_settle,
    "anchor": lambda v: _check_unit_interval("anchor", v),
    "precision": _check_precision,
}


@dataclass
class DragConfig:
    """Hyperparameters of a drag. Radii are image pixels of a 512-px model (the paper's unit).

    The defaults are ours (see ``preset``); ``DragConfig.paper()`` is the paper's algorithm,
    kept for A/B comparisons. Copy with a change: ``dataclasses.replace(cfg, r2=16)``.
    """

    lr: float = 1.5e-2
    """Adam step size on the latent (paper: 2e-3 for faces, 1e-3 elsewhere). With `hold`,
    2e-3 lands few drags: the hold resists every step. Chosen on the bundled 64-px model
    (bench/README.md), where it also opened the mouth edit on 20 faces of 36 against 11;
    not measured on the zoo's models (``DragConfig.paper()`` keeps 2e-3)."""
    lambda_mask: float = 60.0
    """Weight of the loss that keeps features outside the editable mask fixed (paper: 20).
    With `warp` moving what lies inside, the latent need not move much, and held harder
    it changes the protected region less: on seed 101's masked drags, with `warp=0.25`,
    150 / 60 kept it at 40.0 / 36.9 dB and landed 0.54 / 0.58 (bench/README.md)."""
    hold: float = 4.0
    """Unmasked drags: weight of the fixed-region term on what lies far from every handle's
    path (free within 0.1 of the side, held beyond 0.25); 0 = off (paper), so that a drag
    may change the whole image. On 120 random drags of the bundled model it keeps the far
    image at 33 dB instead of 18; with `warp`, 0.58 of them land against the paper's 0.05."""
    warp: float = 0.2
    """Local drags (a mask painted, or `hold` > 0 without one): Adam step size, in image px,
    of a warp of the feature block that moves what lies inside the region the drag may
    change (the mask, or what the hold leaves free; `drag.warp`). 0 = off (paper): only the
    latent moves, and under a mask little lands. Chosen on 24 masked random drags of the
    bundled model (seed 101); on 96 drawn after, 0.48 land by the image check with 38 dB
    outside the mask, against 0.04 without (bench/README.md)."""
    mask_image: bool = True
    """The mask term also holds the coarse image the blocks up to the feature block have
    drawn (a 'skip' generator sums every block's RGB), not the features alone (paper: False)."""
    mask_beta: float = 0.1
    """Feature changes outside the mask below this cost quadratically (Huber), so they do
    not stall the drag; 0 = L1 everywhere (paper). On the drag benchmark 0.03 changes the
    rest no more than the paper's L1 and lands nearer; 0.1 lands nearer still but changes the
    rest ~1.3x as much as the paper's (bench/README.md)."""
    r1: float = 3.0
    """Motion-supervision radius around each handle (paper: 3 px at 512)."""
    r2: float = 12.0
    """Point-tracking search radius (paper: 12 px at 512)."""
    feature_res: Optional[int] = None
    """Side of the supervised feature map; None = image side / 4, within [32, 128]."""
    w_plus: bool = True
    """Optimise a separate style per layer (W+) instead of one shared w (W)."""
    n_opt_ws: int = 6
    """Only the first this-many style vectors move (paper: 6, the coarse layers)."""
    truncation_psi: float = 0.7
    """Truncation of the latent drawn from a seed."""
    stop_distance: Optional[float] = None
    """A handle stops within this many px of its target; None = 1 px, 2 px above 5 points."""
    max_steps: int = 300
    """`DragSession.run` gives up after this many steps."""
    seed: int = 0
    """Seed of the image when the session draws its own latent."""
    tracking: Tracking = "subpixel"
    """'nearest': the paper's nearest-neighbour search; 'subpixel': refined by a quadratic fit."""
    max_track_move: Optional[float] = 2.0
    """Tracking may move a handle at most this many px per step (None: anywhere within r2)."""
    track_patch: int = 3
    """Tracking compares this-many x this-many feature cells around each candidate with the
    same patch around the handle at the start (1 = the handle's feature alone, paper), so a
    handle on an edge cannot slide along it."""
    rebalance: bool = True
    """Scale the drag's loss by handles / handles still moving, so the last ones to arrive
    move as fast as all of them did at first (paper: False, the plain sum). On the drag
    benchmark's 216 unmasked drags it makes 6 points more of them arrive as tracked for 2%
    more MD; masked, it changes the rest 6% less (bench/README.md)."""
    settle: float = 0.5
    """A moving handle comes to rest within this fraction of the stop distance, and rests
    until it drifts beyond the stop distance itself (paper: 1, no band: a handle is pulled
    again as soon as tracking puts it outside)."""
    anchor: float = 0.5
    """Motion supervision pulls the content ahead of each handle toward this blend of the
    features behind it now (0, paper) and those it had when the drag started (1), so that
    what moves is what was clicked, not whatever the last step left there."""
    precision: Precision = "auto"
    """Arithmetic of the step: 'auto' takes bfloat16 on CPUs with AVX512-BF16/AMX and on
    Ampere+ GPUs, float16 on older GPUs, else float32 (exact, the same on every machine)."""
    preset: str = "default"
    """Name of the preset these values came from (informational)."""

    def __post_init__(self) -> None:
        for name in _CHECKS:
            _CHECKS[name](getattr(self, name))
        self._check_radii(self.r1, self.r2)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CHECKS:
            _CHECKS[name](value)
        if name in ("r1", "r2") and "r2" in self.__dict__:
            r1 = value if name == "r1" else self.r1
            r2 = value if name == "r2" else self.r2
            self._check_radii(r1, r2)
        if name in ("w_plus", "rebalance", "mask_image") and not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
        if name == "seed" and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"seed must be an integer, got {value!r}")
        super().__setattr__(name, value)

    @staticmethod
    def _check_radii(r1: float, r2: float) -> None:
        if not r1 <= r2:
            raise ValueError(
                f"need r1 <= r2 (supervise inside the tracked area), got r1={r1}, r2={r2}"
            )

    @classmethod
    def paper(cls, **changes: Any) -> DragConfig:
        """The algorithm exactly as the DragGAN paper and its release run it."""
        base = dict(
            lr=2e-3,
            lambda_mask=20.0,
            hold=0.0,
            warp=0.0,
            tracking="nearest",
            max_track_move=None,
            track_patch=1,
            rebalance=False,
            settle=1.0,
            anchor=0.0,
            mask_image=False,
            mask_beta=0.0,
            precision="float32",
        )
        return cls(**{**base, "preset": "paper", **changes})

    def asdict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def radii_px(self, img_resolution: int) -> tuple[float, float]:
        """``(r1, r2)`` in pixels of an ``img_resolution`` image.

        They scale with the image side, but never shrink below what one feature pixel
        needs: at 64 px the paper's r1 would be 0.4 px, a disc with no pixel in it. Nor do
        they grow past the image's longer side: a search window of that radius already
        covers the whole image from any handle, and a larger one only costs time and memory
        (r2 = 4000 on a 64-px model asked for 9 GB in one step).
        """
        scale = img_resolution / PAPER_RES
        r1 = min(max(self.r1 * scale, MIN_R1_PX), img_resolution)
        r2 = min(max(self.r2 * scale, MIN_R2_PX), img_resolution)
        return r1, r2

    def feature_side(self, img_resolution: int) -> int:
        """Side of the feature map the drag supervises, for an ``img_resolution`` model."""
        if self.feature_res is not None:
            if self.feature_res > img_resolution:
                raise ValueError(
                    f"feature_res={self.feature_res} exceeds the image side {img_resolution}"
                )
            return self.feature_res
        return min(max(img_resolution // 4, 32), 128, img_resolution)

    def stop_px(self, n_points: int) -> float:
        """Distance at which a handle counts as arrived (paper: 1 px, 2 px above 5 points)."""
        if self.stop_distance is not None:
            return float(self.stop_distance)
        return 1.0 if n_points <= 5 else 2.0
