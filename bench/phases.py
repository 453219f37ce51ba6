"""Each phase of a drag step, timed against its floor: the bare operations it cannot avoid.

    PYTHONPATH=. python bench/drag_speed.py --res 256 --phases

A phase's floor is the same work with everything but its unavoidable arithmetic taken out:

- forward: the synthesis up to the feature block as plain convolutions with the block's own
  weight shapes (a stride-2 transposed 3x3 for each up-convolution, a 3x3, a 1x1 toRGB),
  without modulation, demodulation, noise, bias, activation or resampling filters;
- backward: the input gradient of that plain chain, through every convolution to the first;
- tracking: one distance computation between each template and its window's candidates;
- finish: the plain chain from the feature block to the image, without gradients;
- encode: Pillow's JPEG encoder alone on the frame.

A ratio near 1 says the phase is as fast as its operations allow; far above 1, the rest of
the phase (resampling, modulation, Python) costs more than its convolutions.
"""

from __future__ import annotations

import io
import statistics
import time
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.drag.tracking import track_points, window_offsets
from draggan_widget.gan.stylegan2 import Generator, SynthesisState
from draggan_widget.widget.canvas import JPEG_QUALITY, encode_frame


def median_ms(
    pairs: dict[str, tuple[Callable[[], object], Callable[[object], object]]],
    repeats: int,
    sync: Callable[[], None],
) -> dict[str, float]:
    """Median ms of each ``run(setup())``, only ``run`` timed, the pairs interleaved per round."""
    times: dict[str, list[float]] = {name: [] for name in pairs}
    for round_ in range(repeats + 1):  # round 0 warms up
        for name, (setup, run) in pairs.items():
            arg = setup()
            sync()
            t = time.perf_counter()
            run(arg)
            sync()
            if round_:
                times[name].append((time.perf_counter() - t) * 1000)
    return {name: statistics.median(ms) for name, ms in times.items()}


def plain_chain(G: Generator, after: int, until: int) -> Callable[[Tensor], Tensor]:
    """The blocks ``after < res <= until`` as bare convolutions with their weights' shapes.

    The weights take no gradient: the drag's gradient flows through the activations to the
    styles, so its floor is the input gradient of every convolution (start from an input
    that requires grad).
    """
    blocks = [getattr(G.synthesis, f"b{r}") for r in G.synthesis.block_resolutions]
    blocks = [b for b in blocks if after < b.resolution <= until]

    def weight(w: Tensor) -> Tensor:
        return w.detach().clone()

    layers = []
    for b in blocks:
        up = weight(b.conv0.weight).transpose(0, 1) if hasattr(b, "conv0") else None
        layers.append((up, weight(b.conv1.weight), weight(b.torgb.weight)))

    def run(x: Tensor) -> Tensor:
        img = None
        for up, conv, rgb in layers:
            if up is not None:
                x = F.conv_transpose2d(x, up, stride=2, padding=1, output_padding=1)
            x = F.conv2d(x, conv, padding=1)
            img = F.conv2d(x, rgb)
        return x if img is None else x + img.sum() * 0  # both reach the result, as in the net

    return run


def phase_rows(
    G: Generator, cfg: DragConfig, points: tuple, device: torch.device, repeats: int
) -> dict[str, dict[str, float]]:
    """``{phase: {ours_ms, floor_ms, ratio}}`` for one generator, config and point set."""
    s = DragSession(G, seed=0, config=cfg, device=device)
    s.set_points(*points)
    s.step(render=False)  # builds the drag: its feature side, templates and precision
    drag, ctx = s._drag, s._precision
    side, n = drag.key.feature_side, drag.key.n_opt
    ws0 = s.ws
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    const = G.synthesis.b4.const.detach()[None].clone().requires_grad_(True)

    def ws_grad() -> Tensor:
        return torch.cat([ws0[:, :n].clone().requires_grad_(True), ws0[:, n:]], dim=1)

    def forward(ws: Tensor) -> Tensor:
        with torch.enable_grad(), ctx():
            return G.synthesis.begin(ws, until_res=side, noise_mode="const", force_fp32=True).x

    floor_fwd = plain_chain(G, 0, side)

    def floor_forward(_: object = None) -> Tensor:
        with torch.enable_grad(), ctx():
            return floor_fwd(const)

    def backward(out: Tensor) -> None:
        (out.float() * probe(out)).sum().backward()

    state = G.synthesis.begin(ws0, until_res=side, noise_mode="const", force_fp32=True)
    feat = state.x.float()
    r1, r2 = cfg.radii_px(s.resolution)
    handles = torch.tensor(s.handles, dtype=torch.float32, device=device)
    patch = drag.key.patch(s.resolution, device)
    k, c = len(handles), feat.shape[1]
    window = window_offsets(r2, device=device).shape[0]
    cells = 1 if patch is None else patch.shape[0]
    cand = torch.randn(k, window, cells * c, device=device)
    flat_templates = torch.randn(k, 1, cells * c, device=device)
    floor_finish = plain_chain(G, side, G.img_resolution)
    frame = s.image()
    rows = {
        "forward": ((lambda: ws_grad()), forward, (lambda: None), floor_forward),
        "backward": ((lambda: forward(ws_grad())), backward, floor_forward, backward),
        "tracking": (
            lambda: None,
            lambda _: track_points(
                feat,
                drag.templates,
                handles,
                radius=r2,
                img_size=s.shape if hasattr(s, "shape") else s.resolution,
                subpixel=cfg.tracking == "subpixel",
                max_move=cfg.max_track_move,
                patch=patch,
            ),
            lambda: None,
            lambda _: torch.cdist(flat_templates, cand).argmin(dim=2),
        ),
        "finish": (
            lambda: None,
            lambda _: _finish(G, ws0, state, ctx),
            lambda: None,
            lambda _: _no_grad(ctx, floor_finish, feat),
        ),
        "encode": (
            lambda: None,
            lambda _: encode_frame(frame),
            lambda: None,
            lambda _: _jpeg(frame),
        ),
    }
    pairs = {}
    for name, (setup, run, floor_setup, floor_run) in rows.items():
        pairs[name] = (setup, run)
        pairs[f"{name}_floor"] = (floor_setup, floor_run)
    ms = {k: round(v, 3) for k, v in median_ms(pairs, repeats, sync).items()}
    return {  # the ratios are those of the printed times
        name: {
            "ours_ms": ms[name],
            "floor_ms": ms[f"{name}_floor"],
            "ratio": round(ms[name] / ms[f"{name}_floor"], 2),
        }
        for name in rows
    }


_PROBES: dict[tuple, Tensor] = {}


def probe(out: Tensor) -> Tensor:
    """A fixed random weighting of the features: a stand-in loss with a dense gradient (the
    drag's own loss touches a few discs; its cost is in the tracking row's league)."""
    key = tuple(out.shape)
    if key not in _PROBES:
        _PROBES[key] = torch.randn(out.shape, device=out.device)
    return _PROBES[key]


def _finish(G: Generator, ws: Tensor, state: SynthesisState, ctx) -> np.ndarray:
    with torch.no_grad(), ctx():
        img = G.synthesis.finish(ws, state, force_fp32=True)
    return (img[0].permute(1, 2, 0).float() * 127.5 + 128).clamp(0, 255).byte().cpu().numpy()


def _no_grad(ctx, run: Callable[[Tensor], Tensor], x: Tensor) -> Optional[Tensor]:
    with torch.no_grad(), ctx():
        return run(x)


def _jpeg(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    subsampling = 0 if max(frame.shape[:2]) <= 256 else 2
    Image.fromarray(frame).save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=subsampling)
    return buf.getvalue()
