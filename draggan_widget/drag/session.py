"""`DragSession`: the state of one image being edited, and the DragGAN step.

A session owns the latent, the points, the mask and the undo history. ``step()`` runs one
motion-supervision step and one tracking step; ``run()`` repeats it. It knows nothing of
threads or widgets: the widget's runner, notebooks, tests and benchmarks all drive it the
same way. Every public method holds one lock, so a worker thread stepping and a UI thread
reading never see half an update.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, NamedTuple, Optional, Union

import numpy as np
import torch
from torch import Tensor

from ..gan.stylegan2 import Generator, SynthesisState, image_shape
from .config import DragConfig
from .precision import autocast, loss_scale, resolve_precision
from .supervision import (
    disc_offsets,
    downsample_mask,
    fixed_region_loss,
    held_region,
    motion_loss,
    path_distance,
    rebalance_scale,
    sample_features,
    shift_vectors,
)
from .tracking import patch_offsets, track_points
from .warp import smooth_field, warp_state

Point = tuple[float, float]
OUTSIDE_REGION = "is outside the painted region: it cannot move unless the region includes it"
ON_TARGET = "is already on its target: there is nothing to drag"
HOLD_NEAR, HOLD_FAR = 0.1, 0.25  # `DragConfig.hold`: free within, held beyond (of the side)
PointsLike = Sequence[Sequence[float]]


@dataclass
class StepResult:
    """What one step did: where the handles are now and how far they still have to go."""

    step: int
    points: list[Point]  # tracked handle positions (x, y), in the image the step saw
    targets: list[Point]
    distances: list[float]  # px from each handle to its target
    loss: float
    done: bool  # every handle within the stop distance (see `settle`); the latent did not move
    image: Optional[np.ndarray] = None  # uint8 H x W x 3, when the step was asked to render
    ms: float = 0.0


class _Supervised(NamedTuple):
    """What `_supervise` computed for one step; `step` commits it, or drops it on error."""

    loss: float
    done: bool  # every handle rests: no update this step
    state: SynthesisState  # the features the step supervised, for the frame
    ws: Tensor
    arrived: Tensor  # [K] bool
    points: list[Point]  # the tracked handles, read back to the host
    distances: list[float]  # px from each tracked handle to its target


@dataclass
class _Snapshot:
    """What undo restores: the latent and the points (the mask is the user's, kept as is)."""

    ws: Tensor
    handles: list[Point]
    targets: list[Point]
    origins: list[Point]  # where each handle was placed, before drags moved it
    feature_warp: Optional[Tensor]


class _DragKey(NamedTuple):
    """The settings a drag's variables and reference features are built from.

    A config edit that changes any of them starts a new drag; the others (lr, radii, ...)
    apply at the next step.
    """

    w_plus: bool
    warp: bool  # a local drag (masked, or held) also optimises a feature warp
    n_opt: int  # style vectors optimised
    feature_side: int  # supervised and tracked feature map
    track_patch: int  # feature cells a side the tracker compares
    precision: str  # resolved: 'float32', 'bfloat16' or 'float16', never 'auto'

    @classmethod
    def of(cls, cfg: DragConfig, G: Generator, device: torch.device, *, masked: bool) -> _DragKey:
        res = G.img_resolution
        n_opt = min(cfg.n_opt_ws, G.num_ws)
        precision = resolve_precision(cfg.precision, device)
        side = cfg.feature_side(res)
        warp = cfg.warp > 0 and (masked or cfg.hold > 0)
        return cls(cfg.w_plus, warp, n_opt, side, cfg.track_patch, precision)

    def patch(self, img_resolution: int, device: torch.device) -> Optional[Tensor]:
        """The tracker's `patch_offsets`, or None when it compares single features."""
        if self.track_patch == 1:
            return None
        return patch_offsets(self.track_patch, img_resolution / self.feature_side, device=device)


@dataclass
class _Drag:
    """The optimisation of the drag in progress, built at its first step."""

    param: Tensor  # [1, n, w_dim] (W+) or [1, 1, w_dim] (W), requires grad
    fixed: Tensor  # [1, L - n, w_dim] styles that do not move
    key: _DragKey  # what the variables and reference features were built from
    feat0: Tensor  # [1, C, h, w] features when the drag started
    img0: Tensor  # [1, 3, h, w] the image drawn up to the feature block, at the start
    editable: Tensor  # [1, 1, h, w] what the fixed-region term leaves free (`_editable`)
    templates: Tensor  # [K, C] each handle's tracked feature when the drag started
    optimizer: torch.optim.Optimizer
    arrived: Tensor  # [K] bool: handles that reached their target and rest (see `settle`)
    start: Tensor  # [K, 2] the handles when the drag started (see `anchor`)
    base_warp: Optional[Tensor]  # [1, 2, h, w] the session's feature warp when it started
    warp: Optional[Tensor]  # [1, 2, h, w] the warp variable of a local drag, requires grad
    warp_region: Optional[Tensor]  # [1, 1, h, w] where the warp variable may move things
    trace: list[StepResult] = field(default_factory=list)
    frame_stride: int = 1  # the trace keeps the frame of every frame_stride-th step

    def ws(self) -> Tensor:
        k = self.key
        head = self.param if k.w_plus else self.param.expand(-1, k.n_opt, -1)
        return torch.cat([head, self.fixed], dim=1)

    def feature_warp(self) -> Optional[Tensor]:
        """The warp the features are drawn with: the session's, plus this drag's."""
        if self.warp is None:
            return self.base_warp
        moved = smooth_field(self.warp) * self.warp_region
        return moved if self.base_warp is None else self.base_warp + moved

    def variables(self) -> list[Tensor]:
        """What the optimiser moves: the latent's part, and the warp variable if any."""
        return [self.param] if self.warp is None else [self.param, self.warp]


def pick_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """The given device, else CUDA, else Apple's MPS, else the CPU."""
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device='cuda' was asked for, but PyTorch sees no CUDA GPU here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def to_uint8(img: Tensor) -> np.ndarray:
    """``[1, 3, H, W]`` in [-1, 1] -> ``H x W x 3`` uint8, rounded as NVIDIA's tools do."""
    img = (img[0].detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return img.permute(1, 2, 0).cpu().numpy()


class DragSession:
    """Drag points on one generated image.

    Attributes:
        frame_budget: bytes of rendered frames the `trace` may hold (default 256 MiB: 85
            frames at 1024 px, all of a 1000-step drag at 256 px); None keeps every frame.

    Args:
        G: a StyleGAN2 generator (see `load_generator`).
        seed: draw the latent from this seed (default ``config.seed``).
        w: or start from this latent: ``[w_dim]``, ``[1, w_dim]``, ``[num_ws, w_dim]`` or
            ``[1, num_ws, w_dim]``.
        config: hyperparameters; edited in place between steps if you like.
        device: None picks CUDA, then MPS, then CPU. The generator is moved there.
        c: class label ``[1, c_dim]`` for conditional generators (default: class 0).
        feature_warp: start from this feature warp too (`feature_warp`), as a saved
            session does; needs ``w``.
    """

    frame_budget: Optional[int] = 256 << 20

    def __init__(
        self,
        G: Generator,
        *,
        seed: Optional[int] = None,
        w: Optional[Tensor] = None,
        config: Optional[DragConfig] = None,
        device: Union[str, torch.device, None] = None,
        c: Optional[Tensor] = None,
        feature_warp: Optional[Tensor] = None,
    ) -> None:
        self.config = config if config is not None else DragConfig()
        self.device = pick_device(device)
        self.G = G.to(self.device).eval().requires_grad_(False)
        self.resolution: int = G.img_resolution  # the longer side: radii scale with it
        self.height, self.width = image_shape(G)
        self._c = self._label(c)
        self._lock = threading.RLock()
        self._mask: Optional[np.ndarray] = None
        self._undo: list[_Snapshot] = []
        self._redo: list[_Snapshot] = []
        self._drag: Optional[_Drag] = None
        self._handles: list[Point] = []
        self._targets: list[Point] = []
        self._origins: list[Point] = []  # where each handle was placed (see `reset`)
        self.step_count = 0
        self.seed: Optional[int] = None
        if w is None:
            if feature_warp is not None:
                raise ValueError("a feature_warp belongs to a latent: pass w as well")
            self.seed = self.config.seed if seed is None else seed
            self._ws = self._ws_from_seed(self.seed)
        else:
            self._ws = self._check_latent(w)
        self._ws_initial = self._ws.clone()
        self._warp = None if feature_warp is None else self._check_warp(feature_warp)
        self._warp_initial = self._warp

    # ----------------------------------------------------------------- latents

    def _label(self, c: Optional[Tensor]) -> Optional[Tensor]:
        if self.G.c_dim == 0:
            return None
        if c is None:
            c = torch.zeros(1, self.G.c_dim)
            c[0, 0] = 1
        if tuple(c.shape) != (1, self.G.c_dim):
            raise ValueError(f"c must have shape [1, {self.G.c_dim}], got {list(c.shape)}")
        return c.to(self.device)

    def _ws_from_seed(self, seed: int) -> Tensor:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(1, self.G.z_dim, generator=gen).to(self.device)
        with torch.no_grad():
            return self.G.mapping(z, self._c, truncation_psi=self.config.truncation_psi)

    def _check_latent(self, w: Tensor) -> Tensor:
        L, D = self.G.num_ws, self.G.w_dim
        w = torch.as_tensor(w, dtype=torch.float32)
        if w.shape == (D,) or w.shape == (1, D):
            w = w.reshape(1, 1, D).repeat(1, L, 1)
        elif w.shape == (L, D):
            w = w[None]
        if tuple(w.shape) != (1, L, D):
            raise ValueError(
                f"latent must have shape [{D}], [1, {D}], [{L}, {D}] or [1, {L}, {D}] "
                f"for this generator, got {list(w.shape)}"
            )
        if not torch.isfinite(w).all():
            raise ValueError("latent contains NaN or infinity")
        return w.detach().clone().to(self.device)

    def _check_warp(self, field: Tensor) -> Tensor:
        """A feature warp checked against this generator: ``[1, 2, h, w]`` at one of its
        feature blocks, finite."""
        field = torch.as_tensor(field, dtype=torch.float32)
        if field.ndim != 4 or tuple(field.shape[:2]) != (1, 2):
            raise ValueError(f"a feature warp must be [1, 2, h, w], got {list(field.shape)}")
        if not torch.isfinite(field).all():
            raise ValueError("the feature warp contains NaN or infinity")
        field = field.to(self.device)
        try:
            with torch.no_grad():
                block = self.G.synthesis.begin(self._ws, until_res=field.shape[-2]).x
        except ValueError as exc:
            message = f"the feature warp fits no feature block of this generator: {exc}"
            raise ValueError(message) from exc
        if block.shape[-2:] != field.shape[-2:]:
            raise ValueError(
                f"a feature warp of {list(field.shape[-2:])} cells does not fit this "
                f"generator's block of {list(block.shape[-2:])}"
            )
        return field.clone()

    @property
    def ws(self) -> Tensor:
        """The current latent, ``[1, num_ws, w_dim]`` (a copy)."""
        with self._lock:
            return self._ws.clone()

    @property
    def feature_warp(self) -> Optional[Tensor]:
        """What local drags moved with the feature warp (`DragConfig.warp`): ``[1, 2, h, w]``
        image px at the block of side ``h``, the value shown at ``p`` taken from ``p + field``;
        None where no drag warped (a copy). The image is the latent's, drawn through it."""
        with self._lock:
            return None if self._warp is None else self._warp.clone()

    def set_seed(self, seed: int) -> None:
        """Start over from a new image: the seed's latent, no points, no history."""
        with self._lock:
            ws = self._ws_from_seed(seed)
            self._start_over(ws)
            self.seed = int(seed)

    def set_latent(self, w: Tensor) -> None:
        """Start over from a given latent (e.g. a projected photo): no points, no history."""
        with self._lock:
            self._start_over(self._check_latent(w))
            self.seed = None

    def _start_over(self, ws: Tensor) -> None:
        self._ws, self._ws_initial = ws, ws.clone()
        self._warp = self._warp_initial = None
        self._handles, self._targets, self._origins = [], [], []
        self._undo.clear()
        self._redo.clear()
        self._drag = None
        self.step_count = 0

    # ------------------------------------------------------------ points, mask

    @property
    def handles(self) -> list[Point]:
        with self._lock:
            return list(self._handles)

    @property
    def targets(self) -> list[Point]:
        with self._lock:
            return list(self._targets)

    @property
    def mask(self) -> Optional[np.ndarray]:
        """``H x W`` bool, True where the image may change; None = everywhere."""
        with self._lock:
            return None if self._mask is None else self._mask.copy()

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the image, as numpy's ``image.shape[:2]``."""
        return self.height, self.width

    def _check_points(self, points: PointsLike, what: str) -> list[Point]:
        arr = np.asarray(points, dtype=np.float64)
        if arr.size == 0:
            return []
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"{what} must be a list of (x, y) pairs, got shape {list(arr.shape)}")
        upper = np.array([self.width, self.height])
        bad = ~np.isfinite(arr).all(axis=1) | (arr < 0).any(axis=1) | (arr > upper).any(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{what}[{i}] = {tuple(arr[i])} is off the image; x must lie in "
                f"[0, {self.width}] and y in [0, {self.height}]"
            )
        return [(float(x), float(y)) for x, y in arr]

    def set_points(self, handles: PointsLike, targets: PointsLike) -> None:
        """Set handle points and their targets, ``(x, y)`` in image pixels.

        A handle passed back exactly where a drag left it keeps the place it was first put
        at (what `reset` returns it to); any other handle is placed where it is given.

        Warns:
            UserWarning: once per call, naming every handle that cannot move (`stuck_points`).

        Raises:
            ValueError: unequal counts, a point off the image; the session is unchanged.
        """
        h = self._check_points(handles, "handles")
        t = self._check_points(targets, "targets")
        if len(h) != len(t):
            raise ValueError(
                f"need one target per handle, got {len(h)} handles and {len(t)} targets"
            )
        with self._lock:
            placed = dict(zip(self._handles, self._origins))
            self._handles, self._targets = h, t
            self._origins = [placed.get(p, p) for p in h]
            self._drag = None
            self._warn_stuck()

    def set_mask(self, mask: Optional[np.ndarray]) -> None:
        """Restrict the change to a region: ``H x W`` bool or 0/1 array, True = may change.

        Warns:
            UserWarning: once per call, when a handle lies outside the region (see
                `stuck_points`): it could not move.

        Raises:
            ValueError: wrong shape, or no pixel may change; the session is unchanged.
        """
        if mask is not None:
            arr = np.asarray(mask)
            if arr.shape != self.shape:
                raise ValueError(
                    f"mask must have the image's shape (height, width) = {self.shape}, "
                    f"got {arr.shape}"
                )
            arr = arr.astype(bool) if arr.dtype == bool else np.asarray(arr, dtype=np.float64) > 0.5
            if not arr.any():
                raise ValueError(
                    "the mask marks no pixel as editable; nothing could move (use None for all)"
                )
            mask = arr.copy()
        with self._lock:
            self._mask = mask
            self._drag = None
            self._warn_stuck()

    def stuck_points(self) -> list[tuple[int, str]]:
        """The handles a drag cannot move, and why, in words: ``[(index, reason), ...]``.

        A handle outside the painted editable region is held where it is by the mask term;
        either way a drag would run to ``max_steps`` without a visible change. Handles already
        within the stop distance of their targets count only when every handle is: one such
        handle among moving ones pins its point, a usual DragGAN move (hold the upper lip
        while the lower one drops).
        """
        with self._lock:
            mask, handles, targets = self._mask, self._handles, self._targets
            stop = self.config.stop_px(max(len(handles), 1))
        outside = [
            i
            for i, (hx, hy) in enumerate(handles)
            if mask is not None and not _in_region(mask, hx, hy)
        ]
        on_target = [
            i
            for i, ((hx, hy), (tx, ty)) in enumerate(zip(handles, targets))
            if np.hypot(tx - hx, ty - hy) <= stop and i not in outside
        ]
        pinned_only = bool(on_target) and len(on_target) + len(outside) == len(handles)
        stuck = [(i, OUTSIDE_REGION) for i in outside]
        stuck += [(i, ON_TARGET) for i in on_target] if pinned_only else []
        return sorted(stuck)

    def _warn_stuck(self) -> None:
        stuck = self.stuck_points()
        if stuck:
            text = "; ".join(f"handle {i + 1} {why}" for i, why in stuck)
            warnings.warn(text, UserWarning, stacklevel=3)

    # -------------------------------------------------------------------- step

    @property
    def arithmetic(self) -> str:
        """What the config's precision runs as on this session's device ('auto' resolved)."""
        return resolve_precision(self.config.precision, self.device)

    def _precision(self) -> AbstractContextManager[object]:
        """The step's arithmetic: autocast to the resolved low precision, none in float32."""
        return autocast(self.arithmetic, self.device)

    def _features(
        self, ws: Tensor, side: int, feature_warp: Optional[Tensor] = None
    ) -> SynthesisState:
        """Synthesis up to the feature block, in the configured precision; float32 out.

        The reference features and every step's use the same precision, so the fixed-region
        loss compares like with like. A ``feature_warp`` applies at its own block, which must
        not come after the feature block (`_check_warp_block`).
        """
        at = side if feature_warp is None else feature_warp.shape[-2]
        with self._precision():
            state = self.G.synthesis.begin(ws, until_res=at, noise_mode="const", force_fp32=True)
        # _replace, not a new SynthesisState: a StyleGAN3 state carries more fields
        state = state._replace(x=state.x.float(), img=state.img.float())
        if feature_warp is None:
            return state
        state = warp_state(state, feature_warp, self.shape)
        if side == at:
            return state
        with self._precision():
            state = self.G.synthesis.advance(ws, state, until_res=side, force_fp32=True)
        return state._replace(x=state.x.float(), img=state.img.float())

    def _check_warp_block(self, side: int) -> None:
        """A drag supervising the ``side`` block must see the session's warp: the warp's
        block may not come after it (a drag's own warp variable lives at the same block).

        Raises:
            ValueError: the session's warp lies past the feature block ``side``.
        """
        at = side if self._warp is None else self._warp.shape[-2]
        if at > side:
            raise ValueError(
                f"this image holds a feature warp at the {at}-px block, after the {side}-px "
                f"block that feature_res={self.config.feature_res} supervises, which cannot "
                f"see it: set feature_res to {at} or more, or reset"
            )

    def _start_drag(self) -> _Drag:
        cfg = self.config
        key = _DragKey.of(cfg, self.G, self.device, masked=self._mask is not None)
        ws, base_warp = self._ws, self._warp
        self._check_warp_block(key.feature_side)
        with torch.no_grad():
            state = self._features(ws, key.feature_side, base_warp)
            handles = torch.tensor(self._handles, dtype=torch.float32, device=self.device)
            templates = self._sample_templates(
                state.x, handles, key.patch(self.resolution, self.device)
            )
        n_opt = key.n_opt
        param = (ws[:, :n_opt] if key.w_plus else ws[:, :1]).clone().requires_grad_(True)
        editable = self._editable(handles, state.x.shape[-2:])
        groups: list[dict[str, Any]] = [{"params": [param], "lr": cfg.lr}]
        warp = region = None
        if key.warp:  # its block is the feature block unless an earlier warp's lies before
            hw = state.x.shape[-2:] if base_warp is None else base_warp.shape[-2:]
            warp = torch.zeros(1, 2, *hw, device=self.device, requires_grad=True)
            region = editable if hw == editable.shape[-2:] else self._editable(handles, hw)
            groups.append({"params": [warp], "lr": cfg.warp})
        optimizer = torch.optim.Adam(groups)
        arrived = torch.zeros(len(handles), dtype=torch.bool, device=self.device)
        fixed = ws[:, n_opt:].clone()
        return _Drag(
            *(param, fixed, key, state.x, state.img, editable, templates, optimizer, arrived),
            *(handles, base_warp, warp, region),
        )

    def _editable(self, handles: Tensor, hw: tuple[int, int]) -> Tensor:
        """``[1, 1, h, w]`` what may change: the painted mask, else the region around the
        handles' paths that `DragConfig.hold` leaves free. Points and mask are fixed for a
        drag (setting either starts a new one), so this is made once, not every step."""
        if self._mask is not None:
            return downsample_mask(torch.from_numpy(self._mask).to(self.device), hw)
        targets = torch.tensor(self._targets, dtype=torch.float32, device=self.device)
        side = max(self.shape)
        distance = path_distance(handles, targets, self.shape, hw)
        return held_region(distance, HOLD_NEAR * side, HOLD_FAR * side)

    def _drag_for_step(self) -> tuple[_Drag, bool]:
        """The drag in progress, or a new one after any edit; True when it is new."""
        cfg = self.config
        drag = self._drag
        is_new = drag is None or drag.key != _DragKey.of(
            cfg, self.G, self.device, masked=self._mask is not None
        )
        if is_new:  # the first step, or the optimised variables or their features changed
            drag = self._start_drag()
        return drag, is_new

    def step(self, *, render: bool = True) -> StepResult:
        """One tracking step and one motion-supervision step.

        The returned points and image are those of the latent the step started from (the
        image the handles were tracked in); the latent then takes one Adam step, unless
        every handle has arrived.

        Args:
            render: also synthesise the image (skip it when only positions matter).

        Raises:
            ValueError: no points are set.
            FloatingPointError: the loss or gradient is not finite (lower ``lr``).
            In every case the session is left exactly as it was.
        """
        with self._lock, torch.inference_mode(False):  # a caller's inference_mode has no grad
            if not self._handles:
                raise ValueError("set at least one handle and target with set_points() first")
            t0 = time.perf_counter()
            cfg = self.config
            drag, is_new = self._drag_for_step()
            sup = self._supervise(drag, cfg)
            image = None
            if render:  # the frame, in the step's precision; image() is always float32
                with torch.no_grad(), self._precision():
                    ws = sup.ws.detach()
                    image = to_uint8(self.G.synthesis.finish(ws, sup.state, force_fp32=True))
            if not sup.done:
                for group, lr in zip(drag.optimizer.param_groups, (cfg.lr, cfg.warp)):
                    group["lr"] = lr
                drag.optimizer.step()
            if is_new:  # an undo point: the state before this drag
                self._undo.append(self._snapshot())
                self._redo.clear()
            drag.arrived = sup.arrived
            self._drag = drag
            self._ws = drag.ws().detach().clone()
            warp = drag.feature_warp()
            self._warp = None if warp is None else warp.detach()  # never written in place
            self._handles = list(sup.points)
            self.step_count += 1
            result = StepResult(
                self.step_count,
                list(self._handles),
                list(self._targets),
                list(sup.distances),
                sup.loss,
                sup.done,
                image,
                (time.perf_counter() - t0) * 1000,
            )
            self._record(drag, result)
            return result

    def _record(self, drag: _Drag, result: StepResult) -> None:
        """Add ``result`` to the drag's trace, its frame only while the frames fit
        `frame_budget`.

        A step's frame is 3 MiB at 1024 px, so a 1000-step drag would hold 3 GB. When the
        kept frames pass the budget, every other one is dropped (its step stays in the trace,
        without the image) and from then on only every ``frame_stride``-th step keeps its
        frame: the frames stay evenly spread over the whole drag, as `export.save_gif`
        needs. At least two are kept. The caller's ``result`` keeps its image.
        """
        index = len(drag.trace)
        if result.image is not None and index % drag.frame_stride:
            result = replace(result, image=None)
        drag.trace.append(result)
        if result.image is None or self.frame_budget is None:
            return
        kept = sum(r.image is not None for r in drag.trace)
        while kept > 2 and kept * result.image.nbytes > self.frame_budget:
            drag.frame_stride *= 2
            drag.trace = [
                replace(r, image=None) if i % drag.frame_stride and r.image is not None else r
                for i, r in enumerate(drag.trace)
            ]
            kept = sum(r.image is not None for r in drag.trace)

    def _supervise(self, drag: _Drag, cfg: DragConfig) -> _Supervised:
        """Forward to the feature block, track, and back-propagate the loss (no update yet).

        The loss is formed and back-propagated even when every handle has arrived (its motion
        term is then zero and the update is skipped), so that the step reads the device once:
        the points, distances, arrivals, loss and the gradient's finiteness in one copy. On a
        GPU each read is a sync that stalls the queue.
        """
        size = self.shape
        r1, r2 = cfg.radii_px(self.resolution)
        handles = torch.tensor(self._handles, dtype=torch.float32, device=self.device)
        targets = torch.tensor(self._targets, dtype=torch.float32, device=self.device)
        drag.optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            ws = drag.ws()
            state = self._features(ws, drag.key.feature_side, drag.feature_warp())
            with torch.no_grad():
                handles, _ = track_points(
                    state.x,
                    drag.templates,
                    handles,
                    radius=r2,
                    img_size=size,
                    subpixel=cfg.tracking == "subpixel",
                    max_move=cfg.max_track_move,
                    patch=drag.key.patch(self.resolution, self.device),
                )
            dist = (targets - handles).norm(dim=1)
            arrived = self._arrived(drag.arrived, dist, cfg)
            loss = self._loss(drag, cfg, state, handles, targets, ~arrived, r1)
            factor = loss_scale(drag.key.precision)
            if factor is None:
                loss.backward()
            else:  # float16: scaled so that small gradients do not flush to zero
                (loss * factor).backward()
                for variable in drag.variables():
                    variable.grad.div_(factor)
        finite = torch.isfinite(loss)
        for variable in drag.variables():
            finite = finite & torch.isfinite(variable.grad).all()
        k = len(handles)
        flat = torch.cat(
            [handles.reshape(-1), dist, arrived.float(), loss.detach().reshape(1), finite[None]]
        ).tolist()  # the step's one read of the device
        if not flat[-1]:
            drag.optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(
                f"the drag loss ({flat[-2]}) or its gradient is not finite; lower lr (now {cfg.lr})"
            )
        points = [(flat[2 * i], flat[2 * i + 1]) for i in range(k)]
        done = all(flat[3 * k : 4 * k])
        state = state._replace(x=state.x.detach(), img=state.img.detach())
        return _Supervised(flat[-2], done, state, ws, arrived, points, flat[2 * k : 3 * k])

    def _loss(
        self,
        drag: _Drag,
        cfg: DragConfig,
        state: SynthesisState,
        handles: Tensor,
        targets: Tensor,
        active: Tensor,
        r1: float,
    ) -> Tensor:
        """Motion supervision of the active handles, plus the fixed-region term under a mask
        (or `DragConfig.hold`)."""
        feat, size = state.x, self.shape
        offsets = disc_offsets(r1, device=self.device)
        loss = motion_loss(
            *(feat, handles, shift_vectors(handles, targets), offsets),
            img_size=size,
            active=active,
            anchor=self._anchor(drag, offsets, cfg),
            anchor_weight=cfg.anchor,
        )
        weight = cfg.lambda_mask if self._mask is not None else cfg.hold
        if weight > 0:
            fixed = fixed_region_loss(feat, drag.feat0, drag.editable, beta=cfg.mask_beta)
            if cfg.mask_image:
                fixed = fixed + fixed_region_loss(
                    state.img, drag.img0, drag.editable, beta=cfg.mask_beta
                )
            loss = loss + weight * fixed
        if cfg.rebalance:
            loss = loss * rebalance_scale(active)
        return loss

    def _anchor(self, drag: _Drag, offsets: Tensor, cfg: DragConfig) -> Optional[Tensor]:
        """``[K, M, C]`` the supervision discs as they were when the drag started (see
        `DragConfig.anchor`); sampled each step, since ``r1`` may change between steps."""
        if cfg.anchor == 0:
            return None
        start = drag.start[:, None, :] + offsets[None]
        return sample_features(drag.feat0, start, self.shape)

    def _arrived(self, before: Tensor, dist: Tensor, cfg: DragConfig) -> Tensor:
        """Which handles rest: those within ``settle`` of the stop distance, and those that
        rested before and are still within the stop distance.

        Tracking wobbles by a fraction of a pixel; with no band an arrived handle steps out,
        is pulled back, and takes the latent (and the other handles) with it. Sub-pixel
        tracking also approaches the stop distance smoothly, so without the band a handle
        would stop at its edge. The band lies inside the stop distance, so a finished drag
        has every handle within it.
        """
        stop = cfg.stop_px(len(dist))
        return (dist <= cfg.settle * stop) | (before & (dist <= stop))

    def _sample_templates(self, feat: Tensor, handles: Tensor, patch: Optional[Tensor]) -> Tensor:
        """What the tracker looks for: ``[K, C]`` features at the handles, or their patches."""
        points = handles if patch is None else handles[:, None, :] + patch[None]
        return sample_features(feat, points, self.shape)

    def run(
        self,
        max_steps: Optional[int] = None,
        callback: Optional[Callable[[StepResult], Optional[bool]]] = None,
        *,
        render: bool = False,
    ) -> StepResult:
        """Step until every handle arrives, ``max_steps`` (default ``config.max_steps``) pass,
        or ``callback(result)`` returns False.

        Returns:
            The last step's result.
        """
        limit = self.config.max_steps if max_steps is None else max_steps
        if limit < 1:
            raise ValueError(f"max_steps must be >= 1, got {limit}")
        result = self.step(render=render)
        for _ in range(limit - 1):
            if result.done or (callback is not None and callback(result) is False):
                return result
            result = self.step(render=render)
        if callback is not None and not result.done:
            callback(result)
        return result

    @property
    def trace(self) -> list[StepResult]:
        """The results of the steps of the current (or last) drag, in order.

        Rendered frames are kept within `frame_budget`: in a long drag only every k-th
        step's result still holds its image (evenly spaced from the first step).
        """
        with self._lock:
            return [] if self._drag is None else list(self._drag.trace)

    # ------------------------------------------------------------------ images

    def image(self) -> np.ndarray:
        """The current latent's image, uint8 ``H x W x 3``."""
        with self._lock, torch.no_grad():
            if self._warp is None:
                img = self.G.synthesis(self._ws, noise_mode="const", force_fp32=True)
                return to_uint8(img)
            synthesis = self.G.synthesis
            state = synthesis.begin(self._ws, until_res=self._warp.shape[-2], force_fp32=True)
            state = warp_state(state, self._warp, self.shape)
            return to_uint8(synthesis.finish(self._ws, state, force_fp32=True))

    # ----------------------------------------------------------------- history

    @property
    def can_undo(self) -> bool:
        with self._lock:
            return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        with self._lock:
            return bool(self._redo)

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(
            *(self._ws.clone(), list(self._handles), list(self._targets), list(self._origins)),
            self._warp,  # never written in place: a step makes a new one
        )

    def _restore(self, snap: _Snapshot) -> None:
        self._ws = snap.ws.clone()
        self._handles, self._targets = list(snap.handles), list(snap.targets)
        self._origins = list(snap.origins)
        self._warp = snap.feature_warp
        self._drag = None

    def undo(self) -> bool:
        """Go back to before the last drag (latent and points). False if there is none."""
        with self._lock:
            if not self._undo:
                return False
            self._redo.append(self._snapshot())
            self._restore(self._undo.pop())
            return True

    def redo(self) -> bool:
        """Re-apply the drag that `undo` took back. False if there is none."""
        with self._lock:
            if not self._redo:
                return False
            self._undo.append(self._snapshot())
            self._restore(self._redo.pop())
            return True

    def reset(self) -> None:
        """Back to the starting latent and a step count of 0, keeping the current pairs.

        Each handle goes back to where it was placed, before drags moved it, so that Start
        runs the same drag again; pairs removed since stay removed, pairs added stay.
        Undoable: the state before the reset goes on the undo stack.
        """
        with self._lock:
            self._undo.append(self._snapshot())
            self._redo.clear()
            origins = list(self._origins)
            initial = (self._ws_initial, origins, list(self._targets), origins)
            self._restore(_Snapshot(*initial, self._warp_initial))
            self.step_count = 0


def _in_region(mask: np.ndarray, x: float, y: float) -> bool:
    """Whether image point ``(x, y)`` lies on an editable pixel of ``mask`` (``H x W`` bool)."""
    h, w = mask.shape
    return bool(mask[min(int(y), h - 1), min(int(x), w - 1)])
