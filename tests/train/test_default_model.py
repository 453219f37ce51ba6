"""The bundled default model: loads offline, and its three canonical edits arrive."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO
from draggan_widget import load_generator
from draggan_widget.gan.registry import get_model
from draggan_widget.train.edits import (
    EDITS,
    arrival_tolerance,
    detected_distances,
    load_detector,
    place,
    run_edit,
)

pytestmark = [
    pytest.mark.weights,
    pytest.mark.skipif(
        not (REPO / "weights" / "default.safetensors").exists(),
        reason="needs the bundled default model (weights/default.safetensors)",
    ),
]


@pytest.fixture(scope="module")
def G():
    return load_generator("default")


@pytest.fixture(scope="module")
def detector():
    return load_detector()


def test_default_model_loads_as_the_registry_describes_it(G):
    side = get_model("default").resolution
    assert G.img_resolution == side and G.img_channels == 3
    assert G.num_ws == 2 * side.bit_length() - 4  # two per block from 4 px up, as NVIDIA counts


def test_edits_place_handles_on_the_face_and_targets_inside(G, detector):
    from draggan_widget.drag import DragSession

    side = G.img_resolution
    for spec in EDITS:
        image = DragSession(G, seed=spec.seed, device="cpu").image()
        edit = place(spec, image, detector)
        points = np.array(edit.handles + edit.targets)
        assert ((points >= 0) & (points < side)).all()
        if edit.mask is not None:  # every handle and target lies in the editable region
            for x, y in points:
                assert edit.mask[int(y), int(x)]
        moved = np.array(edit.targets) - np.array(edit.handles)
        want = np.array([offset for _, offset in spec.moves]) * side
        np.testing.assert_allclose(moved, want, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("spec", EDITS, ids=[e.name for e in EDITS])
def test_canonical_edit_arrives_within_200_steps(G, detector, spec):
    """The tracked handles arrive, and the detector finds the landmarks there too: a tracker
    that follows a fading feature reports arrival while the face has not changed."""
    session, result = run_edit(G, spec, detector, max_steps=200, device="cpu")
    assert max(result.distances) <= arrival_tolerance(G.img_resolution), (
        f"{spec.name}: {result.distances} after {result.step}"
    )
    detected = detected_distances(detector, spec, session.image(), result.targets)
    assert detected.max() <= arrival_tolerance(G.img_resolution), (
        f"{spec.name}: the detector finds them {detected} px away"
    )
