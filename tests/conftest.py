"""Shared fixtures: seeded tiny generators that make every test run in seconds on a CPU."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from draggan_widget.gan.stylegan2 import Generator

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py``, loaded by path once: bench/ is scripts, not a package.

    It is registered as ``bench_<name>`` before it runs (dataclasses look their module up
    there), with bench/ importable meanwhile, since the scripts import each other.
    """
    key = f"bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        sys.path.insert(0, str(REPO / "bench"))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(REPO / "bench"))
    return sys.modules[key]


def make_generator(
    *,
    img_resolution: int = 32,
    w_dim: int = 16,
    c_dim: int = 0,
    seed: int = 0,
    square: bool = True,
    **synthesis,
) -> Generator:
    """A random generator whose every parameter matters (noise strengths and biases non-zero).

    ``square=False`` makes StyleGAN-Human's layout: ``img_resolution x img_resolution/2``.
    """
    torch.manual_seed(seed)
    G = Generator(
        z_dim=w_dim,
        c_dim=c_dim,
        w_dim=w_dim,
        img_resolution=img_resolution,
        img_channels=3,
        mapping_kwargs={"num_layers": 2},
        synthesis_kwargs={"channel_base": 32 * img_resolution, "channel_max": 32, **synthesis},
        square=square,
    )
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(("noise_strength", "bias")):
                p.add_(0.1 * torch.randn_like(p))
        G.mapping.w_avg.normal_(0, 0.1)
    return G.eval().requires_grad_(False)


def portrait_of(G: Generator) -> Generator:
    """StyleGAN-Human's 2:1 layout with a square generator's trained weights: the middle half
    of each constant's columns. The convolutions see what they saw at the image's centre, so
    a trained face model draws a narrow face: content a drag can move, unlike random weights.
    """
    P = Generator(**{**G.init_kwargs, "square": False})
    state = {}
    for key, value in G.state_dict().items():
        if key.endswith("const"):  # the 4x4 input and every noise_const
            quarter = value.shape[-1] // 4
            value = value[..., quarter : 3 * quarter]
        state[key] = value
    P.load_state_dict(state)
    return P.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: where tests share two cores with other jobs, one
    thread runs the small convolutions of these tests several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_G() -> Generator:
    return make_generator()


@pytest.fixture
def data_dir() -> Path:
    return DATA
