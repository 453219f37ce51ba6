"""The default model's canonical edits: close the eyes, open the mouth, turn the head.

The handles are landmarks that the bundled landmark detector (``weights/landmarks.safetensors``,
`LandmarkNet` trained on rendered faces) finds in the generated face, and the targets are
offsets from them in fractions of the image side. Nothing is typed in for one model: the
same edits apply to whatever the default model is after it is trained further.

The eye and mouth edits are masked: discs around their points may change, the rest is held
by the mask term. Unmasked, the 121-kimg model closed the eyes but greyed the hair and
darkened the skin, and the 330-kimg one opened mouths as often but browned or lightened
the hair. The head edit runs unmasked: a head turn is meant to move the whole face. With the
paper's L1 mask term (``mask_beta=0``) masked edits stalled 2-4 px short even on the eyes
(24 kimg); the Huber core lets them arrive.

The mouth edit's face is seed 3, the first face counting from seed 2 whose lips start apart: the
default model parts lips that are apart already but not lips that are closed (0 of the 11
closed mouths among seeds 2-37; ``weights/README.md``, Results).

    python -m draggan_widget.train.edits --out docs        # docs/edit_<name>.gif, one a drag
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..drag import DragConfig, DragSession, StepResult
from ..gan.registry import bundled_path
from ..gan.stylegan2 import Generator
from .faces import LANDMARK_NAMES
from .landmarks import LandmarkNet, load_landmark_net

logger = logging.getLogger(__name__)

Point = tuple[float, float]
DETECTOR_FILE = "landmarks.safetensors"
ARRIVED_PX = 2.0  # an edit has arrived within this of its targets on a 64-px face


def arrival_tolerance(side: int) -> float:
    """Px within which a handle has arrived on a ``side``-px image: `ARRIVED_PX` at 64 px,
    the same fraction of the face at any size (the detector itself sees 64 px)."""
    return ARRIVED_PX * side / 64


@dataclass(frozen=True)
class EditSpec:
    """One edit: which landmarks move, by how much, and which region may change.

    Attributes:
        name: short name, used in file names.
        description: what a person sees happen.
        seed: the seed of the face it is made on.
        moves: ``(landmark name, (dx, dy))`` with the offset in fractions of the image side.
        mask_radius: the editable region is the union of discs of this radius (fraction of
            the side) around the handles and targets; None lets the whole image change.
    """

    name: str
    description: str
    seed: int
    moves: tuple[tuple[str, Point], ...]
    mask_radius: Optional[float] = None


#: Lids down onto the lower lids' height, mouth corners out and up with the lower lip down,
#: the nose tip sideways (which turns the head: the face follows its centre line).
EDITS: tuple[EditSpec, ...] = (
    EditSpec(
        "close_eyes",
        "the upper lids come down: the eyes close",
        1,
        (("left_eye.upper", (0.0, 0.05)), ("right_eye.upper", (0.0, 0.05))),
        mask_radius=0.12,
    ),
    EditSpec(
        "open_mouth",
        "the lower lip drops and the corners rise: an open smile",
        3,
        (
            ("mouth.lower", (0.0, 0.07)),
            ("mouth.left", (-0.03, -0.03)),
            ("mouth.right", (0.03, -0.03)),
        ),
        mask_radius=0.15,
    ),
    EditSpec(
        "turn_head",
        "the nose tip moves sideways: the head turns",
        3,
        (("nose.tip", (0.09, 0.0)),),
    ),
)


@dataclass
class Edit:
    """An `EditSpec` placed on a face: points in image pixels and the editable mask."""

    spec: EditSpec
    handles: list[Point]
    targets: list[Point]
    mask: Optional[np.ndarray]  # [H, W] bool, True = may change


def load_detector() -> LandmarkNet:
    """The landmark detector shipped beside the default model."""
    return load_landmark_net(bundled_path(DETECTOR_FILE))


def _disc_mask(side: int, centres: Sequence[Point], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side] + 0.5
    mask = np.zeros((side, side), dtype=bool)
    for x, y in centres:
        mask |= (xx - x) ** 2 + (yy - y) ** 2 <= radius**2
    return mask


def place(spec: EditSpec, image: np.ndarray, detector: LandmarkNet) -> Edit:
    """Put ``spec`` on the face in ``image`` (uint8 ``H x W x 3``) at its detected landmarks.

    Raises:
        ValueError: a target would leave the image.
    """
    side = image.shape[0]
    found = detector.locate(image[None], side)[0]  # [K, 2] (x, y) px
    handles, targets = [], []
    for name, (dx, dy) in spec.moves:
        x, y = (float(v) for v in found[LANDMARK_NAMES.index(name)])
        tx, ty = x + dx * side, y + dy * side
        if not (0 <= tx < side and 0 <= ty < side):
            raise ValueError(f"{spec.name}: the target of {name} ({tx:.1f}, {ty:.1f}) is outside")
        handles.append((x, y))
        targets.append((tx, ty))
    mask = None
    if spec.mask_radius is not None:
        mask = _disc_mask(side, handles + targets, spec.mask_radius * side)
    return Edit(spec, handles, targets, mask)


def start(
    G: Generator,
    spec: EditSpec,
    detector: LandmarkNet,
    *,
    config: Optional[DragConfig] = None,
    device: Optional[str] = None,
) -> tuple[DragSession, Edit]:
    """A session on ``spec``'s face with its points and mask set, ready to run."""
    session = DragSession(G, seed=spec.seed, config=config, device=device)
    edit = place(spec, session.image(), detector)
    session.set_points(edit.handles, edit.targets)
    session.set_mask(edit.mask)
    return session, edit


def detected_distances(
    detector: LandmarkNet, spec: EditSpec, image: np.ndarray, targets: Sequence[Point]
) -> np.ndarray:
    """Px from each of ``spec``'s landmarks, as the detector finds them in ``image``, to its
    target: the tracker can follow a fading feature and report arrival; this cannot."""
    rows = [LANDMARK_NAMES.index(name) for name, _ in spec.moves]
    found = detector.locate(image[None], image.shape[0])[0][rows]
    return np.linalg.norm(found - np.asarray(targets), axis=1)


def run_edit(
    G: Generator,
    spec: EditSpec,
    detector: LandmarkNet,
    *,
    max_steps: int = 200,
    render: bool = False,
    device: Optional[str] = None,
) -> tuple[DragSession, StepResult]:
    """Run one canonical edit until its handles arrive or ``max_steps`` pass."""
    session, _ = start(G, spec, detector, device=device)
    return session, session.run(max_steps=max_steps, render=render)


def main(argv: Optional[list[str]] = None) -> int:
    """Write each canonical edit of the default model as a GIF, and print how it went."""
    from ..export import save_gif
    from ..gan.formats import load_generator

    parser = argparse.ArgumentParser(prog="python -m draggan_widget.train.edits")
    parser.add_argument("--out", default="docs", help="folder for edit_<name>.gif")
    parser.add_argument("--model", default="default", help="a load_generator source")
    parser.add_argument("--steps", type=int, default=200, help="most steps per edit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    G, detector = load_generator(args.model), load_detector()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for spec in EDITS:
        session, result = run_edit(G, spec, detector, max_steps=args.steps, render=True)
        path = save_gif(session, out / f"edit_{spec.name}.gif", min_side=128)  # 1-2 MB each
        far = max(result.distances)
        detected = detected_distances(detector, spec, session.image(), result.targets)
        logger.info(
            "%s: %s after %d steps, farthest handle %.2f px from its target (detected: "
            "%.2f px on average) -> %s",
            spec.name,
            "arrived" if result.done else "not arrived",
            result.step,
            far,
            float(detected.mean()),
            path,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
