"""Procedural cartoon faces: the training set of the bundled default StyleGAN2.

Every face is drawn from a `FaceParams`, a flat record of continuous attributes (head
position, size, roll and turn, eye openness, gaze, brows, mouth, nose, ears, hair, colours),
each sampled independently, so a generator trained on the faces learns exactly the factors
that DragGAN edits move. The renderer also returns where the features landed, as named
landmark groups, for the landmark detector and the drag-quality benchmark.

Geometry lives in *face units*: ``u`` to the image right, ``v`` down, origin between the
eyes, the face's half-width about 1, the chin at ``v = 1.45``. The turn rotates a simple
head model (each horizontal slice of the face is the front half of an ellipse around an
upright axis), so the features slide towards the side the head turns to while the cheek on
that side narrows and the far cheek widens. Then roll, scale and position map face units to
pixels. Shapes are drawn with Pillow at ``supersample`` times the output side and box-filtered
down, which anti-aliases every edge.

Points are ``(x, y)`` in output pixels with the origin at the image's top-left corner (the
centre of the top-left pixel is ``(0.5, 0.5)``). "Left" and "right" are image sides.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Union

import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

Color = tuple[int, int, int]

#: Landmark groups in their stable order, and the names of the points in each group.
LANDMARK_GROUPS: dict[str, tuple[str, ...]] = {
    "left_eye": ("outer", "upper", "inner", "lower"),
    "right_eye": ("outer", "upper", "inner", "lower"),
    "left_pupil": ("centre",),
    "right_pupil": ("centre",),
    "left_brow": ("outer", "middle", "inner"),
    "right_brow": ("outer", "middle", "inner"),
    "nose": ("tip",),
    "mouth": ("left", "upper", "right", "lower"),
    "chin": ("tip",),
    # The jaw line between the ears: 4 points down the left side, then 4 up the right side;
    # the chin lies between outline.3 and outline.4.
    "outline": tuple(str(i) for i in range(8)),
}
#: ``"group.point"`` for each row of `flatten_landmarks`.
LANDMARK_NAMES: tuple[str, ...] = tuple(
    f"{group}.{point}" for group, points in LANDMARK_GROUPS.items() for point in points
)

MIN_SIZE = 16
_V_TOP, _V_MID, _V_CHIN = -1.35, 0.15, 1.45  # top of the head, widest slice, chin
_DEPTH = 0.9  # how far the front of the face lies before the turning axis, in face units
_MAX_YAW = 0.5  # radians at yaw = +-1
_EYE_LINE = 0.41  # eye line, fraction of the image side from the top
_UNIT = 0.29  # face half-width, fraction of the image side at scale 1
_V_MOUTH = 1.0  # mouth line
_JAW_SPAN = 0.3  # an open jaw moves the face below the mouth line by its full drop from here
_JAW_DROP = 0.2  # how far a wide-open mouth drops the chin, face units


def _attr(lo: float, hi: float, default: float) -> Any:
    return field(default=default, metadata={"range": (lo, hi)})


@dataclass
class FaceParams:
    """The attributes of one face. Ranges are inclusive; values outside raise `ValueError`.

    Unit-less attributes run from 0 (least) to 1 (most), or from -1 to 1 where they have a
    direction. Colours are RGB triples of ints in ``[0, 255]``.
    """

    x_shift: float = _attr(-0.04, 0.04, 0.0)  # head offset to the right, fraction of the side
    y_shift: float = _attr(-0.04, 0.04, 0.0)  # head offset downwards, fraction of the side
    scale: float = _attr(0.9, 1.1, 1.0)  # head size
    roll: float = _attr(-0.2, 0.2, 0.0)  # in-plane tilt, radians, + = clockwise on screen
    yaw: float = _attr(-1.0, 1.0, 0.0)  # turn: + moves the features towards the image right
    face_width: float = _attr(0.0, 1.0, 0.5)  # narrow .. wide head
    jaw: float = _attr(0.0, 1.0, 0.5)  # pointed chin .. square jaw
    ear_size: float = _attr(0.0, 1.0, 0.5)
    eye_open: float = _attr(0.0, 1.0, 0.7)  # 0 = closed (a line) .. 1 = wide open
    eye_size: float = _attr(0.0, 1.0, 0.5)
    eye_spacing: float = _attr(0.0, 1.0, 0.5)
    gaze_x: float = _attr(-1.0, 1.0, 0.0)  # pupils towards the image left .. right
    gaze_y: float = _attr(-1.0, 1.0, 0.0)  # pupils up .. down
    brow_height: float = _attr(0.0, 1.0, 0.5)  # lowered .. raised
    brow_tilt: float = _attr(-1.0, 1.0, 0.0)  # inner ends down (angry) .. up (worried)
    brow_thickness: float = _attr(0.0, 1.0, 0.5)
    nose_length: float = _attr(0.0, 1.0, 0.5)
    nose_width: float = _attr(0.0, 1.0, 0.5)
    mouth_width: float = _attr(0.0, 1.0, 0.5)
    smile: float = _attr(-1.0, 1.0, 0.3)  # frown .. smile (curvature of the mouth)
    mouth_open: float = _attr(0.0, 1.0, 0.0)  # closed .. wide open (teeth and tongue show)
    hair_length: float = _attr(0.0, 1.0, 0.3)  # cropped .. past the shoulders
    hair_volume: float = _attr(0.0, 1.0, 0.5)  # flat .. bushy
    hairline: float = _attr(0.0, 1.0, 0.5)  # high forehead .. fringe down to the brows
    hair_part: float = _attr(-1.0, 1.0, 0.0)  # fringe lower on the image left .. right
    skin_color: Color = (224, 172, 135)
    hair_color: Color = (90, 60, 40)
    iris_color: Color = (90, 60, 40)
    shirt_color: Color = (60, 90, 150)
    background_top: Color = (170, 190, 210)
    background_bottom: Color = (170, 190, 210)  # equal to ``background_top``: a plain backdrop

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, _checked(name, value))

    @classmethod
    def sample(cls, rng: np.random.Generator) -> FaceParams:
        """Draw every attribute independently: uniform over its range, colours from palettes.

        The eyes have their own law: closed in 10% of the faces, and otherwise ``eye_open``
        leans towards open (``sqrt`` of a uniform in ``[0.1, 1]``). ``mouth_open`` is uniform
        like the rest: when a third of the mouths were exactly closed, the model learned a
        flat region of closed mouths from which no gradient led out, and a drag could not
        part the lips. The background is a vertical gradient in 60% of the faces.

        Args:
            rng: the only source of randomness.

        Returns:
            A new `FaceParams`.
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if "range" in f.metadata:
                values[f.name] = float(rng.uniform(*f.metadata["range"]))
        values["eye_open"] = float(rng.uniform(0.1, 1.0) ** 0.5) if rng.random() > 0.1 else 0.0
        bg_top = _hsv(rng.random(), rng.uniform(0.05, 0.5), rng.uniform(0.45, 0.95))
        gradient = rng.random() < 0.6
        bg_bottom = _hsv(rng.random(), rng.uniform(0.05, 0.5), rng.uniform(0.3, 0.9))
        return cls(
            **values,
            skin_color=_pick(rng, _SKIN, smooth=True),
            hair_color=_pick(rng, _HAIR_VIVID if rng.random() < 0.08 else _HAIR),
            iris_color=_pick(rng, _IRIS),
            shirt_color=_hsv(rng.random(), rng.uniform(0.1, 0.8), rng.uniform(0.2, 0.9)),
            background_top=bg_top,
            background_bottom=bg_bottom if gradient else bg_top,
        )


_RANGES = {f.name: f.metadata["range"] for f in dataclasses.fields(FaceParams) if f.metadata}
_COLORS = {f.name for f in dataclasses.fields(FaceParams) if not f.metadata}


def _checked(name: str, value: Any) -> Any:
    if name in _RANGES:
        lo, hi = _RANGES[name]
        if not lo <= value <= hi:
            raise ValueError(f"FaceParams.{name} must be in [{lo}, {hi}], got {value!r}")
        return float(value)
    if name in _COLORS:
        rgb = tuple(value)
        ints = all(isinstance(c, (int, np.integer)) for c in rgb)
        if len(rgb) != 3 or not ints or not all(0 <= c <= 255 for c in rgb):
            raise ValueError(f"FaceParams.{name} must be 3 ints in [0, 255], got {value!r}")
        return tuple(int(c) for c in rgb)
    return value


# Palettes: skin tones are interpolated along the list, the others jittered around an entry.
_SKIN = np.array(
    [(255, 226, 204), (241, 199, 170), (226, 175, 138), (198, 140, 100), (160, 105, 72)]
    + [(105, 68, 48)],
    float,
)
_HAIR = np.array(
    [(28, 24, 24), (60, 40, 30), (100, 66, 42), (140, 82, 45), (166, 76, 40), (205, 170, 105)]
    + [(230, 205, 150), (150, 150, 150), (225, 222, 215)],
    float,
)
_HAIR_VIVID = np.array([(60, 90, 200), (200, 70, 150), (60, 160, 120), (150, 80, 200)], float)
_IRIS = np.array([(70, 45, 30), (110, 75, 40), (60, 110, 170), (80, 130, 90), (110, 115, 120)])


def _pick(rng: np.random.Generator, palette: np.ndarray, *, smooth: bool = False) -> Color:
    if smooth:
        t = rng.uniform(0, len(palette) - 1)
        i = min(int(t), len(palette) - 2)
        rgb = palette[i] + (t - i) * (palette[i + 1] - palette[i])
    else:
        rgb = palette[rng.integers(len(palette))] * rng.uniform(0.85, 1.15)
    return tuple(int(c) for c in np.clip(rgb + rng.normal(0, 6, 3), 0, 255))


def _hsv(h: float, s: float, v: float) -> Color:
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h, s, v))


def _shade(rgb: Color, k: float) -> Color:
    return tuple(int(min(255, c * k)) for c in rgb)


def _mix(a: Color, b: Color, t: float) -> Color:
    return tuple(int(x + t * (y - x)) for x, y in zip(a, b))


class RenderedFace(NamedTuple):
    """A rendered face and where its features are."""

    image: np.ndarray  # [H, W, 3] uint8
    landmarks: dict[str, np.ndarray]  # group -> [K, 2] float32 (x, y) in output pixels


class _Head:
    """The geometry of one face: face units ``(u, v)`` to canvas ``(x, y)``.

    Each horizontal slice ``v`` of the face is the front half of an ellipse, centred ``zc``
    before the turning axis, ``w`` wide and ``dd`` deep. A turn by ``phi`` sends a point
    ``(u, z)`` to ``x = u cos(phi) + z sin(phi)``.
    """

    def __init__(self, p: FaceParams, side: int) -> None:
        self.fw = 0.88 + 0.22 * p.face_width
        self.n = 2.0 + 1.5 * p.jaw  # superellipse exponent of the jaw
        self.taper = 0.3 * (1.0 - p.jaw)
        phi = _MAX_YAW * p.yaw
        self.cos, self.sin = np.cos(phi), np.sin(phi)
        self.unit = _UNIT * side * p.scale
        self.origin = np.array([0.5 + p.x_shift, _EYE_LINE + p.y_shift]) * side
        self.roll = (np.cos(p.roll), np.sin(p.roll))
        self.pivot = (0.0, 0.6)  # roll about the middle of the face
        self.jaw_drop = _JAW_DROP * p.mouth_open

    def profile(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Half-width ``w``, centre depth ``zc`` and half-depth ``dd`` of the slices ``v``."""
        r = np.minimum(np.maximum((_V_MID - v) / (_V_MID - _V_TOP), 0.0), 1.0)
        s = np.minimum(np.maximum((v - _V_MID) / (_V_CHIN - _V_MID), 0.0), 1.0)
        round_ = np.sqrt(1.0 - r * r)  # forehead and cranium; 1 below the widest slice
        ss = s * s
        jaw = (1.0 - s**self.n) ** (1.0 / self.n) * (1.0 - self.taper * ss)  # 1 above it
        zc = (0.7 * _DEPTH) * ss
        return self.fw * round_ * jaw, zc, _DEPTH * round_ - zc

    def to_canvas(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Turned face units ``x, v`` -> canvas ``[N, 2]`` after roll, scale and shift."""
        (cr, sr), (px, py) = self.roll, self.pivot
        x, v = x - px, self.open_jaw(v) - py
        out = np.empty((len(x), 2))
        out[:, 0] = (x * cr - v * sr + px) * self.unit + self.origin[0]
        out[:, 1] = (x * sr + v * cr + py) * self.unit + self.origin[1]
        return out

    def open_jaw(self, v: np.ndarray) -> np.ndarray:
        """Slices ``v`` moved down by the open jaw: nothing above the mouth line, the full
        drop from ``_JAW_SPAN`` below it, smoothly between.

        An open mouth drops the chin as a real jaw does, so that the opening changes the
        shape of the whole lower face: a coarse feature that a model draws with its coarse
        styles, which are the ones a drag optimises.
        """
        s = np.minimum(np.maximum((v - _V_MOUTH) / _JAW_SPAN, 0.0), 1.0)
        return v + self.jaw_drop * s * s * (3.0 - 2.0 * s)

    def surface(
        self, u: np.ndarray, v: np.ndarray, lift: Union[float, np.ndarray] = 0.0
    ) -> np.ndarray:
        """Canvas points of the face surface at ``(u, v)``, raised ``lift`` off it."""
        u, v = np.asarray(u, float) * self.fw, np.asarray(v, float)
        w, zc, dd = self.profile(v)
        ratio = np.minimum(np.maximum(u / np.maximum(w, 1e-6), -1.0), 1.0)
        z = zc + dd * np.sqrt(1.0 - ratio * ratio) + lift
        return self.to_canvas(u * self.cos + z * self.sin, v)

    def silhouette(
        self, w: np.ndarray, zc: np.ndarray, dd: np.ndarray, v: np.ndarray, side: int
    ) -> np.ndarray:
        """Canvas points of the turned outline of slices ``(w, zc, dd)`` on one image side."""
        near = np.sqrt((w * self.cos) ** 2 + (dd * self.sin) ** 2)
        far = w * self.cos
        x = zc * self.sin + side * (near if side * self.sin > 0 else far)
        return self.to_canvas(x, v)

    def outline(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Slices of the head outline at angles ``t`` in ``[-pi/2, pi/2]`` (top to chin)."""
        up = t < 0
        st, ct = np.abs(np.sin(t)), np.cos(t)
        s = st ** (2.0 / self.n)  # superellipse jaw, sampled evenly along its arc
        v = np.where(up, _V_MID - st * (_V_MID - _V_TOP), _V_MID + s * (_V_CHIN - _V_MID))
        w, zc, dd = self.profile(v)
        jaw = self.fw * ct ** (2.0 / self.n) * (1.0 - self.taper * s * s)
        return np.where(up, w, jaw), zc, dd, v


def _ellipse(
    cx: float, cy: float, rx: float, ry: float, n: int = 24, start: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """``u, v`` of ``n`` points around an ellipse (not closed)."""
    cos, sin = _circle(n, start)
    return cx + rx * cos, cy + ry * sin


@functools.cache
def _circle(n: int, start: float) -> tuple[np.ndarray, np.ndarray]:
    a = start + np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.cos(a), np.sin(a)


class _Painter:
    """Pillow drawing on the supersampled canvas, with canvas coordinates in pixel units."""

    def __init__(self, image: Image.Image, scale: float) -> None:
        self.draw = ImageDraw.Draw(image)
        self.scale = scale  # canvas pixels per face unit

    def poly(self, xy: np.ndarray, fill: Color) -> None:
        self.draw.polygon((xy - 0.5).ravel().tolist(), fill=fill)

    def line(self, xy: np.ndarray, fill: Color, width: float) -> None:
        """A polyline ``width`` face units thick."""
        px = max(1, round(width * self.scale))
        self.draw.line((xy - 0.5).ravel().tolist(), fill=fill, width=px, joint="curve")


def _check_size(size: Any, supersample: Any) -> None:
    for name, value, low in (("size", size, MIN_SIZE), ("supersample", supersample, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}")


def render_face(params: FaceParams, *, size: int = 64, supersample: int = 4) -> RenderedFace:
    """Draw one face.

    Args:
        params: the face's attributes.
        size: output side in pixels (at least 16).
        supersample: the canvas is ``size * supersample`` pixels wide and box-filtered down.

    Returns:
        The ``[size, size, 3]`` uint8 image and its landmarks (see `LANDMARK_GROUPS`), each
        group ``[K, 2]`` float32 ``(x, y)`` in output pixels.

    Raises:
        ValueError: if ``size`` or ``supersample`` is not an integer in range.
    """
    _check_size(size, supersample)
    p = params
    side = size * supersample
    head = _Head(p, side)
    canvas = _background(p, side)
    pen = _Painter(canvas, head.unit)
    marks: dict[str, np.ndarray] = {}

    _draw_hair_back(pen, head, p)
    _draw_body(pen, head, p)
    _draw_ears(pen, head, p)
    marks.update(_draw_face(pen, head, p.skin_color))
    for side_sign, name in ((-1, "left"), (1, "right")):
        marks.update(_draw_eye(pen, head, p, side_sign, name))
    for side_sign, name in ((-1, "left"), (1, "right")):
        marks[f"{name}_brow"] = _draw_brow(pen, head, p, side_sign)
    marks["nose"] = _draw_nose(pen, head, p)
    marks["mouth"] = _draw_mouth(pen, head, p)
    _draw_hair_cap(pen, head, p)

    image = np.asarray(canvas.reduce(supersample))  # box filter: the mean of each block
    landmarks = {g: (marks[g] / supersample).astype(np.float32) for g in LANDMARK_GROUPS}
    return RenderedFace(image, landmarks)


def _background(p: FaceParams, side: int) -> Image.Image:
    if p.background_top == p.background_bottom:
        return Image.new("RGB", (side, side), p.background_top)
    top, bottom = np.array(p.background_top, float), np.array(p.background_bottom, float)
    t = np.linspace(0.0, 1.0, side)[:, None]
    column = (top + t * (bottom - top)).astype(np.uint8)[:, None]  # [side, 1, 3]
    return Image.fromarray(column).resize((side, side), Image.Resampling.NEAREST)


def _hair_outer(head: _Head, p: FaceParams) -> np.ndarray:
    """Canvas outline of the hair around the cranium, from the left sideburn over the top to
    the right one (the sideburns end at the widest slice of the face)."""
    grow = 0.06 + 0.3 * p.hair_volume
    t = np.linspace(-np.pi / 2, 0.0, 14)
    w, zc, dd, v = head.outline(t)
    out = grow * np.cos(t) * (0.3 + 0.7 * np.minimum(1.0, 2.0 * np.abs(np.sin(t))))
    v = v + 1.2 * grow * np.sin(t)  # hugs the head at the sideburns, bushy above
    left = head.silhouette(w + out, zc, dd + out, v, -1)
    right = head.silhouette(w + out, zc, dd + out, v, 1)
    return np.concatenate([left[::-1], right])


def _draw_hair_back(pen: _Painter, head: _Head, p: FaceParams) -> None:
    if p.hair_length < 0.3:  # short hair: the cap is all there is
        return
    arc = _hair_outer(head, p)
    drop = (p.hair_length - 0.3) * 3.0 * head.unit  # canvas pixels below the sideburns
    flare = (0.05 + 0.1 * p.hair_volume) * head.unit
    k = np.linspace(0.0, 1.0, 6)
    side = np.stack([flare * np.sin(np.pi * k) - 2 * flare * k**4, drop * k], axis=-1)
    right, left = arc[-1] + side, arc[0] + side * [-1.0, 1.0]
    pen.poly(np.concatenate([arc, right, left[::-1]]), _shade(p.hair_color, 0.85))


def _draw_body(pen: _Painter, head: _Head, p: FaceParams) -> None:
    u = head.unit
    cx = head.to_canvas(np.array([0.0]), np.array([1.0]))[0, 0]
    top = head.origin[1] + 1.8 * u
    bottom = head.origin[1] + 5.0 * u
    a = np.linspace(np.pi, 2 * np.pi, 17)
    shoulders = np.stack([cx + 2.1 * u * np.cos(a), top + 0.9 * u + 0.9 * u * np.sin(a)], -1)
    shirt = np.concatenate([shoulders, [(cx + 2.1 * u, bottom), (cx - 2.1 * u, bottom)]])
    pen.poly(shirt, p.shirt_color)
    nw = 0.42 * head.fw * u
    neck_top = head.origin[1] + 0.8 * u
    b = np.linspace(0.0, np.pi, 9)
    neckline = np.stack([cx + nw * np.cos(b), top + 0.25 * u + 0.35 * u * np.sin(b)], -1)
    neck = np.concatenate([[(cx - nw, neck_top), (cx + nw, neck_top)], neckline])
    pen.poly(neck, _shade(p.skin_color, 0.82))


def _draw_ears(pen: _Painter, head: _Head, p: FaceParams) -> None:
    rx, ry = 0.12 + 0.08 * p.ear_size, 0.2 + 0.1 * p.ear_size
    w = head.profile(np.array([0.1]))[0][0] / head.fw
    for s in (-1, 1):
        u, v = _ellipse(s * (w + 0.6 * rx), 0.12, rx, ry)
        pen.poly(head.surface(u, v), _shade(p.skin_color, 0.93))
        u, v = _ellipse(s * (w + 0.55 * rx), 0.14, 0.5 * rx, 0.6 * ry)
        pen.poly(head.surface(u, v), _shade(p.skin_color, 0.75))


def _draw_face(pen: _Painter, head: _Head, skin: Color) -> dict[str, np.ndarray]:
    t = np.linspace(-np.pi / 2, np.pi / 2, 33)
    w, zc, dd, v = head.outline(t)
    left, right = head.silhouette(w, zc, dd, v, -1), head.silhouette(w, zc, dd, v, 1)
    pen.poly(np.concatenate([right, left[::-1]]), skin)
    tk = np.array([0.0, 0.3, 0.56, 0.8]) * np.pi / 2
    w, zc, dd, v = head.outline(tk)
    jaw_left, jaw_right = head.silhouette(w, zc, dd, v, -1), head.silhouette(w, zc, dd, v, 1)
    return {
        "outline": np.concatenate([jaw_left, jaw_right[::-1]]),
        "chin": head.surface(np.array([0.0]), np.array([_V_CHIN])),
    }


def _draw_eye(
    pen: _Painter, head: _Head, p: FaceParams, s: int, name: str
) -> dict[str, np.ndarray]:
    ex = s * _eye_x(p)
    a = 0.19 + 0.07 * p.eye_size  # half-width
    hu = (0.16 + 0.06 * p.eye_size) * p.eye_open  # upper lid above the eye line
    hl = 0.65 * hu  # lower lid below it
    sag = 0.05 * (1.0 - p.eye_open)  # a closed eye is a downward arc

    def lids(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bulge = np.maximum(1.0 - ((u - ex) / a) ** 2, 0.0)
        return sag * bulge - hu * bulge**0.6, sag * bulge + hl * bulge**0.8

    def clipped(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Canvas points of a shape cut to the eye opening (exact while it is inside in u)."""
        top, bottom = lids(u)
        return head.surface(u, np.minimum(np.maximum(v, top), bottom))

    u = ex + s * a * np.linspace(1.0, -1.0, 15)  # outer corner .. inner corner
    upper_v, lower_v = lids(u)
    upper, lower = head.surface(u, upper_v), head.surface(u, lower_v)
    pen.poly(np.concatenate([upper, lower[::-1]]), (246, 246, 242))

    r = 0.5 * a  # iris radius
    iu = ex + p.gaze_x * (a - r) * 0.9
    iv = sag + 0.3 * (hl - hu) + p.gaze_y * 0.3 * (hu + hl)
    pen.poly(clipped(*_ellipse(iu, iv, r, r)), p.iris_color)
    pen.poly(clipped(*_ellipse(iu, iv, 0.45 * r, 0.45 * r, 16)), (20, 16, 16))
    pen.poly(clipped(*_ellipse(iu - 0.3 * r, iv - 0.35 * r, 0.2 * r, 0.2 * r, 10)), (255,) * 3)

    lash = (35, 25, 25)
    pen.line(upper, lash, 0.05)
    if p.eye_open > 0:
        pen.line(lower, _mix(p.skin_color, lash, 0.5), 0.025)
    mid = len(u) // 2
    return {
        f"{name}_eye": np.stack([upper[0], upper[mid], upper[-1], lower[mid]]),
        f"{name}_pupil": head.surface(np.array([iu]), np.array([iv])),
    }


def _eye_x(p: FaceParams) -> float:
    """Distance of each eye's centre from the midline, face units."""
    return 0.33 + 0.1 * p.eye_spacing


def _draw_brow(pen: _Painter, head: _Head, p: FaceParams, s: int) -> np.ndarray:
    ex = s * _eye_x(p)
    t = np.linspace(-1.0, 1.0, 9)  # outer end .. inner end
    u = ex + s * 0.04 - s * 0.27 * t
    v = -(0.34 + 0.16 * p.brow_height) - 0.06 * (1 - t * t) - 0.12 * p.brow_tilt * (t + 1) / 2
    half = (0.025 + 0.03 * p.brow_thickness) * (0.75 + 0.25 * t)
    top, bottom = head.surface(u, v - half), head.surface(u, v + half)
    colour = _mix(_shade(p.hair_color, 0.6), (50, 35, 30), 0.35)  # dark enough on blondes
    pen.poly(np.concatenate([top, bottom[::-1]]), colour)
    return head.surface(u[[0, 4, 8]], v[[0, 4, 8]])


def _draw_nose(pen: _Painter, head: _Head, p: FaceParams) -> np.ndarray:
    vn = 0.42 + 0.18 * p.nose_length
    lift = 0.2 + 0.15 * p.nose_length
    rx = 0.08 + 0.06 * p.nose_width
    shadow = _shade(p.skin_color, 0.82)
    bridge_v = np.linspace(0.05, vn - 0.05, 6)
    bridge_u = 0.05 + (rx - 0.02) * ((bridge_v - 0.05) / (vn - 0.1)) ** 2
    pen.line(head.surface(bridge_u, bridge_v, lift * bridge_v / vn), shadow, 0.03)
    u, v = _ellipse(0.0, vn - 0.02, rx, 0.07, 20)
    pen.poly(head.surface(u, v, lift * 0.8), _shade(p.skin_color, 0.92))
    for s in (-1, 1):
        u, v = _ellipse(s * 0.5 * rx, vn + 0.03, 0.035, 0.022, 10)
        pen.poly(head.surface(u, v, lift * 0.7), _shade(p.skin_color, 0.5))
    return head.surface(np.array([0.0]), np.array([vn]), lift)


def _draw_mouth(pen: _Painter, head: _Head, p: FaceParams) -> np.ndarray:
    vm = _V_MOUTH
    mw = 0.28 + 0.2 * p.mouth_width
    t = np.linspace(-1.0, 1.0, 17)
    u = mw * t
    centre = vm + 0.2 * p.smile * (1 / 3 - t * t)
    gap = 0.5 * p.mouth_open * np.sqrt(1.0 - t * t)
    upper_v, lower_v = centre - 0.35 * gap, centre + 0.65 * gap
    upper, lower = head.surface(u, upper_v), head.surface(u, lower_v)
    lip = _mix(p.skin_color, (120, 35, 45), 0.55)
    if p.mouth_open > 0:
        pen.poly(np.concatenate([upper, lower[::-1]]), (70, 20, 30))
        teeth = head.surface(u, upper_v + np.minimum(0.08, 0.45 * gap))
        pen.poly(np.concatenate([upper, teeth[::-1]]), (250, 250, 245))
        inner = np.abs(t) < 0.8
        tongue = head.surface(u[inner], lower_v[inner] - 0.4 * gap[inner])
        pen.poly(np.concatenate([lower[inner], tongue[::-1]]), (215, 95, 105))
        pen.line(np.concatenate([upper, lower[::-1], upper[:1]]), lip, 0.035)
    else:
        pen.line(upper, lip, 0.05)
    mid = len(t) // 2
    return np.stack([upper[0], upper[mid], upper[-1], lower[mid]])


def _draw_hair_cap(pen: _Painter, head: _Head, p: FaceParams) -> None:
    outer = _hair_outer(head, p)
    vh = -1.2 + 0.48 * p.hairline  # hairline height in the middle of the forehead
    tu = np.linspace(0.85, -0.85, 25)  # right temple .. left temple
    parting = 0.15 * np.exp(-(((tu - 0.5 * p.hair_part) / 0.12) ** 2))
    hv = vh + 0.1 * p.hair_part * tu + 0.12 * tu * tu - parting  # stays above the brows
    w_line = head.profile(hv)[0] / head.fw
    fringe = head.surface(tu * w_line, hv)
    sideburns = head.surface(np.array([0.97, -0.97]), np.array([_V_MID, _V_MID]))
    pen.poly(np.concatenate([outer, sideburns[:1], fringe, sideburns[1:]]), p.hair_color)


def sample_face(seed: int, *, size: int = 64) -> RenderedFace:
    """The face of ``seed``: ``render_face(FaceParams.sample(np.random.default_rng(seed)))``."""
    return render_face(FaceParams.sample(np.random.default_rng(seed)), size=size)


def face_seed(seed: int, index: int) -> int:
    """The seed of face ``index`` of the dataset rendered with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def flatten_landmarks(landmarks: dict[str, np.ndarray]) -> np.ndarray:
    """Landmark groups -> ``[K, 2]`` float32 in the order of `LANDMARK_NAMES`."""
    return np.concatenate([landmarks[g] for g in LANDMARK_GROUPS]).astype(np.float32)


def unflatten_landmarks(flat: np.ndarray) -> dict[str, np.ndarray]:
    """``[..., K, 2]`` in the order of `LANDMARK_NAMES` -> landmark groups ``[..., k, 2]``."""
    if flat.shape[-2:] != (len(LANDMARK_NAMES), 2):
        raise ValueError(f"expected landmarks [..., {len(LANDMARK_NAMES)}, 2], got {flat.shape}")
    out, i = {}, 0
    for group, points in LANDMARK_GROUPS.items():
        out[group] = flat[..., i : i + len(points), :]
        i += len(points)
    return out


def _render_range(args: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    seed, start, stop, size = args
    images = np.empty((stop - start, size, size, 3), np.uint8)
    marks = np.empty((stop - start, len(LANDMARK_NAMES), 2), np.float32)
    for j, i in enumerate(range(start, stop)):
        face = sample_face(face_seed(seed, i), size=size)
        images[j], marks[j] = face.image, flatten_landmarks(face.landmarks)
    return images, marks


def render_dataset(
    n: int, *, size: int = 64, seed: int = 0, workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Render faces ``0 .. n-1`` of the dataset ``seed``.

    Face ``i`` is ``sample_face(face_seed(seed, i), size=size)``, so any subset can be
    rendered again on its own, and the result does not depend on ``workers``.

    Args:
        n: number of faces.
        size: image side in pixels.
        seed: dataset seed.
        workers: processes to render in.

    Returns:
        Images ``[n, size, size, 3]`` uint8 and landmarks ``[n, K, 2]`` float32 in pixels,
        in the order of `LANDMARK_NAMES`.

    Raises:
        ValueError: if ``n``, ``size`` or ``workers`` is out of range.
    """
    _check_size(size, 1)
    if n < 1 or workers < 1:
        raise ValueError(f"need n >= 1 and workers >= 1, got n={n}, workers={workers}")
    if workers == 1:
        return _render_range((seed, 0, n, size))
    bounds = np.linspace(0, n, min(n, 4 * workers) + 1).astype(int)
    jobs = [(seed, int(a), int(b), size) for a, b in zip(bounds[:-1], bounds[1:])]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_render_range, jobs))
    return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])


def save_dataset(
    path: Union[str, Path], n: int, *, size: int = 64, seed: int = 0, workers: int = 1
) -> None:
    """Render a dataset (see `render_dataset`) and write it to ``path`` as a compressed .npz.

    The file is written under a temporary name and renamed, so an interrupted run leaves no
    truncated dataset behind.
    """
    images, landmarks = render_dataset(n, size=size, seed=seed, workers=workers)
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            images=images,
            landmarks=landmarks,
            landmark_names=np.array(LANDMARK_NAMES),
            seed=np.int64(seed),
        )
    os.replace(tmp, path)
    logger.info("wrote %d faces at %d px to %s", n, size, path)


def load_dataset(path: Union[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    """Read a dataset written by `save_dataset`.

    Returns:
        Images ``[N, H, W, 3]`` uint8 and landmarks ``[N, K, 2]`` float32.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        ValueError: if the file holds another landmark set (an older renderer's).
    """
    with np.load(path) as data:
        if "landmark_names" not in data.files:
            raise ValueError(f"{path} is not a faces dataset (write one with save_dataset)")
        names = tuple(str(s) for s in data["landmark_names"])
        if names != LANDMARK_NAMES:
            raise ValueError(
                f"{path} was rendered with other landmarks ({len(names)} points, expected "
                f"{len(LANDMARK_NAMES)}); delete it and render it again with save_dataset"
            )
        return data["images"], data["landmarks"]
