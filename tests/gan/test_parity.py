"""Our generator against NVIDIA's own outputs for NVIDIA-format pickles (tests/data/PARITY.md)."""

from __future__ import annotations

import pytest
import torch

from draggan_widget.gan.formats import load_file

FIXTURES = ["sg2_32_tiny", "sg2_32_cond_clamp"]


@pytest.fixture(params=FIXTURES)
def loaded(request, data_dir):
    G = load_file(data_dir / f"{request.param}.pkl")
    ref = torch.load(data_dir / f"{request.param}.ref.pt", weights_only=True)
    return G, ref


def test_mapping_matches_nvidia(loaded):
    G, ref = loaded
    w = G.mapping(ref["z"], ref["c"], truncation_psi=ref["truncation_psi"])
    torch.testing.assert_close(w, ref["w_from_z"], atol=1e-4, rtol=0)


def test_image_matches_nvidia(loaded):
    G, ref = loaded
    img = G.synthesis(ref["ws"], noise_mode="const", force_fp32=True)
    torch.testing.assert_close(img, ref["img"], atol=1e-3, rtol=0)


def test_every_block_feature_matches_nvidia(loaded):
    G, ref = loaded
    assert len(ref["feats"]) == len(G.synthesis.block_resolutions)
    for res, want in zip(G.synthesis.block_resolutions, ref["feats"]):
        got = G.synthesis.begin(ref["ws"], until_res=res, force_fp32=True).x
        torch.testing.assert_close(got, want, atol=1e-3, rtol=0, msg=f"block b{res}")


def test_begin_then_finish_equals_full_synthesis(loaded):
    G, ref = loaded
    state = G.synthesis.begin(ref["ws"], until_res=16)
    img = G.synthesis.finish(ref["ws"], state)
    torch.testing.assert_close(img, G.synthesis(ref["ws"], noise_mode="const"))


def test_state_dict_keys_equal_nvidia_names(loaded):
    G, _ = loaded
    keys = set(G.state_dict())
    for k in [
        "mapping.fc0.weight",
        "mapping.w_avg",
        "synthesis.b4.const",
        "synthesis.b4.conv1.noise_const",
        "synthesis.b8.conv0.affine.bias",
        "synthesis.b32.torgb.weight",
        "synthesis.b16.resample_filter",
    ]:
        assert k in keys
