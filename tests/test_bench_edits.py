"""bench/edits.py: the canonical edits placed on other faces, with honest arrival counts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import load_bench
from draggan_widget import DragConfig, load_generator
from draggan_widget.train.edits import EDITS, load_detector
from draggan_widget.train.faces import FaceParams, render_face

edits = load_bench("edits")


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("2-5", [2, 3, 4, 5]), ("7", [7]), ("2,5,9", [2, 5, 9]), ("2-3,9", [2, 3, 9])],
)
def test_parse_seeds_reads_ranges_and_lists(text, seeds):
    assert edits.parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a-b", "5-2", "2-"])
def test_parse_seeds_refuses_what_is_not_a_seed_list(text):
    with pytest.raises(ValueError, match="seed"):
        edits.parse_seeds(text)


def test_lip_gap_is_wide_for_an_open_mouth_and_small_for_a_closed_one():
    detector = load_detector()
    face = FaceParams(eye_open=1.0, gaze_x=0.0, gaze_y=0.0)
    images = {m: render_face(dataclasses.replace(face, mouth_open=m)).image for m in (0.0, 0.8)}
    gaps = {m: edits.lip_gap(detector, np.array(image)) for m, image in images.items()}
    assert gaps[0.0] < 1.0 < 4.0 < gaps[0.8], gaps


def test_a_short_drag_is_counted_as_not_arrived_by_either_measure(one_thread):
    G, detector = load_generator("default"), load_detector()
    spec = next(e for e in EDITS if e.name == "open_mouth")
    row = edits.run_face(G, dataclasses.replace(spec, seed=5), detector, DragConfig(), 3)
    assert row["seed"] == 5 and row["steps"] == 3
    assert len(row["tracked_px"]) == len(row["detected_px"]) == len(spec.moves)
    assert row["start_px"] > 2.5  # the moves are 2.7-4.5 px; three steps cover ~3 px at most
    assert not row["arrived"]
    assert len(row["lip_gap_px"]) == 2


def test_summary_counts_arrivals_by_the_stricter_criterion():
    rows = [
        {"arrived_tracked": True, "arrived": False, "detected_px": [3.0, 1.0], "start_px": 4.0},
        {"arrived_tracked": True, "arrived": True, "detected_px": [1.0, 1.0], "start_px": 3.0},
        {"arrived_tracked": False, "arrived": False, "detected_px": [4.0, 4.0], "start_px": 5.0},
    ]
    summary = edits.summarise(rows)
    assert summary == {
        "faces": 3,
        "arrived_tracked": 2,
        "arrived": 1,
        "detected_mean_px": 2.333,
        "start_mean_px": 4.0,
    }
