"""The face renderer: deterministic, landmarks on the features, attributes move what they say."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from draggan_widget.train.faces import (
    _JAW_DROP,
    _UNIT,
    LANDMARK_NAMES,
    FaceParams,
    face_seed,
    flatten_landmarks,
    load_dataset,
    render_dataset,
    render_face,
    sample_face,
    save_dataset,
    unflatten_landmarks,
)

FRONTAL = FaceParams(eye_open=1.0, gaze_x=0.0, gaze_y=0.0)


def face_with(size: int = 64, **attrs) -> dict[str, np.ndarray]:
    """Landmarks of the default face with some attributes changed."""
    return render_face(dataclasses.replace(FRONTAL, **attrs), size=size).landmarks


def centre(points: np.ndarray) -> np.ndarray:
    return points.mean(axis=0)


def test_sample_face_is_deterministic_per_seed():
    a, b = sample_face(7), sample_face(7)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(flatten_landmarks(a.landmarks), flatten_landmarks(b.landmarks))


def test_different_seeds_give_different_faces():
    images = [sample_face(seed).image for seed in range(4)]
    for i in range(4):
        for j in range(i):
            assert np.abs(images[i].astype(int) - images[j]).mean() > 5


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_image_and_landmarks_have_the_documented_shapes(size):
    face = sample_face(3, size=size)
    assert face.image.shape == (size, size, 3) and face.image.dtype == np.uint8
    flat = flatten_landmarks(face.landmarks)
    assert flat.shape == (len(LANDMARK_NAMES), 2) and flat.dtype == np.float32


def test_landmarks_scale_with_the_output_size():
    """Pixel-edge convention: the same face at twice the size has landmarks at twice the xy."""
    small = flatten_landmarks(sample_face(5, size=64).landmarks)
    large = flatten_landmarks(sample_face(5, size=128).landmarks)
    np.testing.assert_allclose(large, 2 * small, atol=1e-3)


def test_landmarks_lie_inside_the_image_in_anatomical_order():
    for seed in range(40):
        marks = sample_face(seed).landmarks
        flat = flatten_landmarks(marks)
        assert (flat > 0).all() and (flat < 64).all(), seed
        left_eye, right_eye = centre(marks["left_eye"]), centre(marks["right_eye"])
        assert left_eye[0] < right_eye[0]
        nose, mouth, chin = marks["nose"][0], centre(marks["mouth"]), marks["chin"][0]
        for brow, eye in ((marks["left_brow"], left_eye), (marks["right_brow"], right_eye)):
            assert centre(brow)[1] < eye[1]
        assert max(left_eye[1], right_eye[1]) < nose[1] < mouth[1] < chin[1]
        assert marks["mouth"][0, 0] < marks["mouth"][2, 0]  # left corner left of right corner
        outline = marks["outline"]
        assert outline[0, 0] < outline[3, 0] and outline[7, 0] > outline[4, 0]


def test_pupil_landmarks_sit_on_dark_pupils():
    for seed in range(10):
        params = dataclasses.replace(
            FaceParams.sample(np.random.default_rng(seed)), eye_open=1.0, iris_color=(90, 160, 230)
        )
        face = render_face(params, size=256)
        for name in ("left_pupil", "right_pupil"):
            x, y = face.landmarks[name][0]
            assert face.image[int(y), int(x)].max() < 60, (seed, name)


@pytest.mark.parametrize("yaw, roll", [(0.0, 0.0), (1.0, 0.2), (-0.6, -0.1)])
def test_closed_eyes_have_upper_and_lower_lid_together(yaw, roll):
    marks = face_with(eye_open=0.0, yaw=yaw, roll=roll)
    for eye in ("left_eye", "right_eye"):
        upper, lower = marks[eye][1], marks[eye][3]
        assert np.linalg.norm(upper - lower) < 1.0
    opened = face_with(eye_open=1.0, yaw=yaw, roll=roll)["left_eye"]
    assert np.linalg.norm(opened[1] - opened[3]) > 3.0


def test_turn_moves_the_nose_tip_towards_the_narrowing_cheek():
    xs = [face_with(yaw=yaw)["nose"][0, 0] for yaw in (-1.0, 0.0, 1.0)]
    assert xs[0] < xs[1] - 3 and xs[2] > xs[1] + 3
    for yaw in (-1.0, 1.0):
        marks = face_with(yaw=yaw)
        nose_x, outline = marks["nose"][0, 0], marks["outline"]
        right_cheek, left_cheek = outline[7, 0] - nose_x, nose_x - outline[0, 0]
        assert (right_cheek < left_cheek) == (yaw > 0)


def test_opening_the_mouth_parts_the_lips_and_shows_teeth():
    closed = render_face(dataclasses.replace(FRONTAL, mouth_open=0.0), size=128)
    opened = render_face(dataclasses.replace(FRONTAL, mouth_open=0.8), size=128)

    def lip_gap(face) -> float:
        mouth = face.landmarks["mouth"]
        return float(mouth[3, 1] - mouth[1, 1])

    def teeth_pixels(face) -> int:
        (x0, _), (x1, _) = face.landmarks["mouth"][[0, 2]]
        y0, y1 = face.landmarks["mouth"][[1, 3], 1]
        box = face.image[int(y0) - 2 : int(y1) + 3, int(x0) : int(x1) + 1].astype(int)
        return int((box.min(axis=-1) > 225).sum())

    assert lip_gap(closed) < 0.5 and lip_gap(opened) > 8
    assert teeth_pixels(closed) == 0 and teeth_pixels(opened) > 20


def test_an_open_mouth_drops_the_chin_and_leaves_the_upper_face():
    """The jaw carries the lower face: opening is a change of the face's shape, not a detail.
    It hinges at the mouth line, so the corners of a smiling mouth stay where they were."""
    closed, opened = face_with(size=128, mouth_open=0.0), face_with(size=128, mouth_open=1.0)
    drop = _JAW_DROP * _UNIT * 128  # in pixels, at scale 1
    assert opened["chin"][0, 1] - closed["chin"][0, 1] == pytest.approx(drop, abs=0.05)
    assert opened["mouth"][3, 1] - closed["mouth"][3, 1] > drop + 5
    for group in ("left_eye", "right_eye", "left_brow", "right_brow", "nose"):
        np.testing.assert_allclose(opened[group], closed[group], atol=0.01)
    np.testing.assert_allclose(opened["mouth"][[0, 2]], closed["mouth"][[0, 2]], atol=0.01)
    assert np.abs(opened["outline"][[0, 7]] - closed["outline"][[0, 7]]).max() < 0.5


def test_mouth_opening_is_sampled_as_a_continuum_down_to_closed():
    """No share of exactly closed mouths: a mode of them would be flat for a drag to leave."""
    rng = np.random.default_rng(0)
    opening = np.array([FaceParams.sample(rng).mouth_open for _ in range(2000)])
    assert (opening > 0).all() and opening.max() < 1
    assert 0.08 < (opening < 0.1).mean() < 0.12 and 0.45 < (opening < 0.5).mean() < 0.55


@pytest.mark.parametrize("size", [0, 7, -64, 64.0, True, "64"])
def test_malformed_size_is_refused(size):
    with pytest.raises(ValueError, match="size must be an integer of at least 16"):
        render_face(FRONTAL, size=size)


def test_face_params_refuse_values_outside_their_range():
    with pytest.raises(ValueError, match=r"eye_open must be in \[0.0, 1.0\], got 1.5"):
        FaceParams(eye_open=1.5)
    params = FaceParams()
    with pytest.raises(ValueError, match="yaw"):
        params.yaw = -2.0
    with pytest.raises(ValueError, match="skin_color must be 3 ints"):
        dataclasses.replace(params, skin_color=(300, 0, 0))


def test_flatten_and_unflatten_are_inverse():
    marks = sample_face(2).landmarks
    flat = flatten_landmarks(marks)
    again = unflatten_landmarks(flat)
    assert list(again) == list(marks)
    for group in marks:
        np.testing.assert_array_equal(again[group], marks[group])
    assert len({name.split(".")[0] for name in LANDMARK_NAMES}) == len(marks)


def test_dataset_faces_can_be_rendered_again_one_by_one(tmp_path):
    images, marks = render_dataset(6, size=32, seed=3)
    assert images.shape == (6, 32, 32, 3) and marks.shape == (6, len(LANDMARK_NAMES), 2)
    for i in (0, 4):
        face = sample_face(face_seed(3, i), size=32)
        np.testing.assert_array_equal(images[i], face.image)
        np.testing.assert_array_equal(marks[i], flatten_landmarks(face.landmarks))
    assert np.abs(images[0].astype(int) - render_dataset(1, size=32, seed=4)[0][0]).mean() > 5

    parallel = render_dataset(6, size=32, seed=3, workers=2)
    np.testing.assert_array_equal(parallel[0], images)

    path = tmp_path / "faces.npz"
    save_dataset(path, 6, size=32, seed=3)
    loaded = load_dataset(path)
    np.testing.assert_array_equal(loaded[0], images)
    np.testing.assert_array_equal(loaded[1], marks)


def test_load_dataset_refuses_other_files(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, images=np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="not a faces dataset"):
        load_dataset(path)
    np.savez(path, images=np.zeros((1, 32, 32, 3), np.uint8), landmark_names=np.array(["a"]))
    with pytest.raises(ValueError, match="other landmarks"):
        load_dataset(path)
