"""The float16 branch of NVIDIA's fp16 blocks, forced on the CPU, and bfloat16 autocast on top.

On a GPU, blocks trained in fp16 (``num_fp16_res``, every FFHQ/AFHQ pickle) run in float16
unless ``force_fp32``. Nothing here has a GPU, so these tests add "cpu" to
``stylegan2.FP16_DEVICE_TYPES`` and take that branch on the CPU.

Tolerance: float16 keeps 11 significant bits, so a synthesis that runs its highest blocks in
it cannot match float32 exactly; NVIDIA accepts that for every image its fp16 models draw.
We ask that the image stays within one 8-bit level (2/255 in [-1, 1]) of the float32 one,
on average within a tenth of a level: the pixels a user sees round alike.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_generator
from draggan_widget.drag import DragConfig, DragSession
from draggan_widget.gan import stylegan2
from draggan_widget.gan.formats import load_file

ONE_LEVEL = 2 / 255


@pytest.fixture
def fp16_on_cpu(monkeypatch):
    monkeypatch.setattr(stylegan2, "FP16_DEVICE_TYPES", frozenset({"cuda", "cpu"}))


def ffhq_like_small() -> stylegan2.Generator:
    """NVIDIA's FFHQ layout shrunk to 64 px: fp16 blocks at 16-64 px, conv_clamp 256."""
    return make_generator(img_resolution=64, w_dim=32, num_fp16_res=3, conv_clamp=256)


def fp16_blocks(G: stylegan2.Generator) -> list[int]:
    return [r for r in G.synthesis.block_resolutions if getattr(G.synthesis, f"b{r}").use_fp16]


def test_the_fp16_branch_is_taken_only_where_asked(fp16_on_cpu):
    G = ffhq_like_small()
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    block = getattr(G.synthesis, f"b{fp16_blocks(G)[0]}")
    seen = []
    block.conv1.register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    G.synthesis(ws, noise_mode="const")
    G.synthesis(ws, noise_mode="const", force_fp32=True)
    assert seen == [torch.float16, torch.float32]


@pytest.mark.parametrize("name", ["sg2_32_cond_clamp", "ffhq_like"])
def test_fp16_blocks_match_float32_within_one_level(name, data_dir, fp16_on_cpu):
    if name == "ffhq_like":
        G = ffhq_like_small()
        ws = G.mapping(torch.randn(3, G.z_dim), None, truncation_psi=0.7)
    else:  # NVIDIA's own pickle, trained with 2 fp16 blocks
        G = load_file(data_dir / f"{name}.pkl")
        ws = torch.load(data_dir / f"{name}.ref.pt", weights_only=True)["ws"]
    assert fp16_blocks(G), "the model must have fp16 blocks for this test to mean anything"
    half = G.synthesis(ws, noise_mode="const")
    full = G.synthesis(ws, noise_mode="const", force_fp32=True)
    diff = (half - full).abs()
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert 0 < diff.max() <= ONE_LEVEL  # not zero: float16 really ran
    assert diff.mean() <= ONE_LEVEL / 10


def _drag(G, cfg: DragConfig, mask: np.ndarray | None, steps: int) -> list:
    s = DragSession(G, seed=0, config=cfg, device="cpu")
    side = G.img_resolution
    s.set_points([(0.4 * side, 0.5 * side)], [(0.55 * side, 0.5 * side)])
    s.set_mask(mask)
    return [s.step(render=True) for _ in range(steps)]


@pytest.mark.parametrize(
    "cfg",
    [
        DragConfig(precision="bfloat16"),
        DragConfig.paper(precision="bfloat16"),
        DragConfig(precision="bfloat16", feature_res=32, tracking="nearest", track_patch=1),
    ],
    ids=["ours", "paper", "finer-tracking"],
)
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_bfloat16_autocast_with_fp16_blocks_has_no_dtype_error(cfg, masked, fp16_on_cpu):
    G = ffhq_like_small()
    mask = None
    if masked:
        mask = np.zeros((64, 64), bool)
        mask[16:48, 16:48] = True
    results = _drag(G, cfg, mask, steps=3)
    for r in results:
        assert r.image.dtype == np.uint8 and r.image.shape == (64, 64, 3)
        assert np.isfinite(r.loss) and all(np.isfinite(r.distances))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a user's own cell: fp16 blocks inside
        img = G.synthesis(G.mapping(torch.randn(1, G.z_dim), None), noise_mode="const")
    assert torch.isfinite(img).all()
