"""The landmark detector of bench/quality.py: its recipe, its cache, its own error.

Generated faces have no ground truth, so a `LandmarkNet` trained on the procedural
renderer's ground-truth landmarks finds them. It is trained once, seeded, and cached
(``runs/landmarks/`` or ``$DRAGGAN_WIDGET_HOME/landmarks/``) under a name that changes with
its recipe and with the code of the renderer and of the network; bench/fid.py uses the same
network as its feature space.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from safetensors import safe_open

from draggan_widget.gan.registry import HOME_ENV
from draggan_widget.train import faces, landmarks
from draggan_widget.train.faces import render_dataset
from draggan_widget.train.landmarks import (
    LandmarkNet,
    load_landmark_net,
    save_landmark_net,
    train_landmark_net,
)

logger = logging.getLogger("bench.quality")

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DetectorRecipe:
    """How the landmark detector is trained; the cache file is named after all of it."""

    n_train: int = 12000  # rendered faces to fit
    n_heldout: int = 500  # other renders: the detector's test set and the FD reference
    steps: int = 6000  # 0.23 px held-out error; 3000 faces and 2000 x 8 reached 0.56 px
    batch: int = 16
    seed: int = 0  # the network's initialisation and batch order
    data_seed: int = 1  # dataset seed of the training renders; data_seed + 1 is held out
    size: int = 64

    def cache_name(self) -> str:
        """File name that changes with the recipe, the renderer and the network's code.

        A renderer edit moves the ground-truth landmarks, so an old detector must not be reused.
        """
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode())
        for module in (faces, landmarks):
            digest.update(Path(module.__file__).read_bytes())
        return f"landmark_net-{digest.hexdigest()[:12]}.safetensors"


def default_cache_dir() -> Path:
    """``$DRAGGAN_WIDGET_HOME/landmarks`` when that is set, else ``runs/landmarks`` in the repo."""
    home = os.environ.get(HOME_ENV)
    return (Path(home).expanduser() if home else REPO / "runs") / "landmarks"


def _recipe_of(path: Path) -> str:
    """The cache name recorded in a detector file's metadata ('' when there is none)."""
    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("recipe", "")


def load_or_train_detector(
    recipe: DetectorRecipe, cache_dir: Union[str, Path]
) -> tuple[LandmarkNet, dict[str, Any]]:
    """The cached detector of ``recipe``, trained and written first if there is none.

    Returns:
        The network and a description (path, whether it was trained now, training seconds).
    """
    bundled = REPO / "weights" / "landmarks.safetensors"  # what the canonical edits use
    if bundled.exists() and _recipe_of(bundled) == recipe.cache_name():
        logger.info("landmark detector: %s (bundled, same recipe)", bundled)
        return load_landmark_net(bundled), {"path": str(bundled), "trained_now": False}
    path = Path(cache_dir) / recipe.cache_name()
    if path.exists():
        logger.info("landmark detector: %s", path)
        return load_landmark_net(path), {"path": str(path), "trained_now": False}
    logger.info("training the landmark detector (%d steps); it is cached at %s", recipe.steps, path)
    t0 = time.perf_counter()
    images, marks = render_dataset(recipe.n_train, size=recipe.size, seed=recipe.data_seed)
    net = train_landmark_net(
        images, marks, steps=recipe.steps, batch=recipe.batch, seed=recipe.seed
    )
    seconds = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_landmark_net(net, partial, {"recipe": recipe.cache_name()})
    os.replace(partial, path)  # an interrupted run leaves no half-written detector to reuse
    return net, {"path": str(path), "trained_now": True, "train_s": round(seconds, 1)}


def detector_error(net: LandmarkNet, images: np.ndarray, marks: np.ndarray) -> dict[str, float]:
    """Pixel error of the detector on renders with known landmarks.

    The constant guess (every face's landmarks at the held-out mean) is what a detector that
    sees nothing scores; MD differences smaller than the detector's error are noise.
    """
    err = np.linalg.norm(net.locate(images, images.shape[1]) - marks, axis=-1)
    const = np.linalg.norm(marks.mean(0, keepdims=True) - marks, axis=-1)
    return {
        "mean_px": float(err.mean()),
        "median_px": float(np.median(err)),
        "p90_px": float(np.percentile(err, 90)),
        "constant_guess_px": float(const.mean()),
    }
