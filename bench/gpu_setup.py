"""What every section of `gpu_check.py` drags: random generators of NVIDIA's FFHQ layout and
sessions whose handles never arrive, so that every timed step does full work."""

from __future__ import annotations

from typing import Callable

import torch

from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.gan.stylegan2 import Generator

try:
    from drag_speed import make_points
except ImportError:  # run as a module from the repo root
    from bench.drag_speed import make_points

# NVIDIA's 'stylegan2' config, as FFHQ 512 and 1024 use it (stylegan2-ada-pytorch's training).
FFHQ = {"channel_base": 32768, "channel_max": 512, "num_fp16_res": 4, "conv_clamp": 256}


def make_generator(res: int, quick: bool) -> Generator:
    """A random generator: FFHQ's layout, or for ``quick`` the same layout, narrow."""
    torch.manual_seed(0)
    if quick:
        dims, layers = 32, 2
        synthesis = {**FFHQ, "channel_base": 16 * res, "channel_max": 32}
    else:
        dims, layers, synthesis = 512, 8, FFHQ
    G = Generator(
        z_dim=dims,
        c_dim=0,
        w_dim=dims,
        img_resolution=res,
        img_channels=3,
        mapping_kwargs={"num_layers": layers},
        synthesis_kwargs=synthesis,
    )
    return G.eval().requires_grad_(False)


def never_done() -> DragConfig:
    """Our defaults, with a stop distance no drag reaches, so every step does full work."""
    return DragConfig(stop_distance=0.01)


def drag_session(res: int, points: int, device: torch.device, quick: bool) -> DragSession:
    """A session on a random generator with ``points`` handles that never arrive."""
    session = DragSession(make_generator(res, quick), seed=0, config=never_done(), device=device)
    session.set_points(*make_points(res, points))
    return session


def sync_for(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
