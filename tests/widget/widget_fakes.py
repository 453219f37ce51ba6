"""A fake DragSession with the real one's contract, for fast and controllable widget tests.

Not a conftest.py: ``tests/conftest.py`` is imported by name (``from conftest import ...``),
and a second module called ``conftest`` would shadow it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

import numpy as np

from draggan_widget.drag import DragConfig, StepResult
from draggan_widget.drag.session import OUTSIDE_REGION

TIMEOUT = 20.0  # seconds any wait in these tests may take before it counts as a hang


@dataclass
class _Snap:
    step: int
    handles: list
    targets: list


class FakeSession:
    """Moves each handle 1 px per step toward its target; the image encodes the step.

    ``gate``: when set to an Event, every step waits for it (tests decide when a step
    ends); ``started`` is set when a step begins. ``fail_at``: the step that raises.
    """

    def __init__(self, resolution: int = 32, *, num_ws: int = 8, fail_at: Optional[int] = None):
        self.G = SimpleNamespace(num_ws=num_ws, img_resolution=resolution)
        self.device = "fake"
        self.config = DragConfig(max_steps=50)
        self.resolution = resolution
        self.seed: Optional[int] = 0
        self.step_count = 0
        self.fail_at = fail_at
        self.fail_exc: BaseException = RuntimeError("CUDA out of memory (fake)")
        self.gate: Optional[threading.Event] = None
        self.started = threading.Event()
        self.steps_run = 0
        self.lr_seen: list[float] = []  # config.lr as each step read it
        self._handles: list = []
        self._targets: list = []
        self._mask: Optional[np.ndarray] = None
        self._undo: list[_Snap] = []
        self._redo: list[_Snap] = []
        self._in_drag = False
        self.seeds_drawn: list[int] = []

    @property
    def shape(self):
        """``(height, width)``, as the real session's: the fake is square."""
        return (self.resolution, self.resolution)

    @property
    def arithmetic(self):
        """As the real session on a CPU without BF16: 'auto' runs float32."""
        return "float32" if self.config.precision == "auto" else self.config.precision

    # points and mask, checked like the real session
    @property
    def handles(self):
        return list(self._handles)

    @property
    def targets(self):
        return list(self._targets)

    @property
    def mask(self):
        return None if self._mask is None else self._mask.copy()

    def set_points(self, handles, targets):
        for p in [*handles, *targets]:
            if not (0 <= p[0] <= self.resolution and 0 <= p[1] <= self.resolution):
                raise ValueError(f"{p} is off the image")
        if len(handles) != len(targets):
            raise ValueError("unequal counts")
        self._handles = [tuple(map(float, p)) for p in handles]
        self._targets = [tuple(map(float, p)) for p in targets]
        self._in_drag = False

    def stuck_points(self):
        """Handles outside the editable region, as the real session names them."""
        if self._mask is None:
            return []
        side = self.resolution - 1
        return [
            (i, OUTSIDE_REGION)
            for i, (x, y) in enumerate(self._handles)
            if not self._mask[min(int(y), side), min(int(x), side)]
        ]

    def set_mask(self, mask):
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.resolution, self.resolution):
                raise ValueError("wrong shape")
            if not mask.any():
                raise ValueError("all False")
            mask = mask.copy()
        self._mask = mask
        self._in_drag = False

    def set_seed(self, seed):
        self.seed = int(seed)
        self.seeds_drawn.append(self.seed)
        self._handles, self._targets = [], []
        self._undo.clear()
        self._redo.clear()
        self.step_count = 0

    def image(self):
        return np.full((self.resolution, self.resolution, 3), self.step_count % 256, np.uint8)

    def step(self, *, render: bool = True) -> StepResult:
        self.lr_seen.append(self.config.lr)  # a step reads its config when it begins
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(TIMEOUT), "test never released the step"
            self.gate.clear()
        self.steps_run += 1
        if not self._handles:
            raise ValueError("set at least one handle")
        if self.fail_at is not None and self.steps_run == self.fail_at:
            raise self.fail_exc
        if not self._in_drag:
            self._undo.append(_Snap(self.step_count, self.handles, self.targets))
            self._redo.clear()
            self._in_drag = True
        h = np.array(self._handles)
        t = np.array(self._targets)
        d = t - h
        dist = np.linalg.norm(d, axis=1)
        done = bool((dist <= 1).all())
        if not done:
            move = np.where(dist[:, None] > 0, d / np.maximum(dist, 1e-9)[:, None], 0)
            h = h + move
        self._handles = [tuple(p) for p in h.tolist()]
        self.step_count += 1
        image = self.image() if render else None
        dists = np.linalg.norm(t - h, axis=1).tolist()
        return StepResult(self.step_count, self.handles, self.targets, dists, 0.5, done, image, 1.0)

    @property
    def can_undo(self):
        return bool(self._undo)

    @property
    def can_redo(self):
        return bool(self._redo)

    def undo(self):
        if not self._undo:
            return False
        self._redo.append(_Snap(self.step_count, self.handles, self.targets))
        snap = self._undo.pop()
        self.step_count, self._handles, self._targets = snap.step, snap.handles, snap.targets
        self._in_drag = False
        return True

    def redo(self):
        if not self._redo:
            return False
        self._undo.append(_Snap(self.step_count, self.handles, self.targets))
        snap = self._redo.pop()
        self.step_count, self._handles, self._targets = snap.step, snap.handles, snap.targets
        self._in_drag = False
        return True

    def reset(self):
        self._undo.append(_Snap(self.step_count, self.handles, self.targets))
        self.step_count = 0
        self._in_drag = False
