"""StyleGAN-Human: a StyleGAN2 that draws 2:1 portraits (the 4x4 constant is 4x2).

Checked against outputs of StyleGAN-Human's own code (tests/data/PARITY.md), and loaded
whether or not the pickle's kwargs record ``square``: the layout comes from the tensors.
"""

from __future__ import annotations

import pytest
import torch
from nvidia_pickles import generator_stub, snapshot_bytes

from conftest import make_generator
from draggan_widget.gan import load_generator, save_generator
from draggan_widget.gan.formats import load_file
from draggan_widget.gan.formats.safe_pickle import safe_load
from draggan_widget.gan.stylegan2 import image_shape

FIXTURE = "human_32x16"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def human():
    from conftest import DATA

    G = load_file(DATA / f"{FIXTURE}.pkl")
    ref = torch.load(DATA / f"{FIXTURE}.ref.pt", weights_only=True)
    return G, ref


def test_the_fixture_is_a_32_by_16_portrait(human):
    G, ref = human
    assert (G.img_resolution, G.img_height, G.img_width) == (32, 32, 16)
    assert image_shape(G) == (32, 16) and not G.square
    assert G.num_ws == ref["num_ws"]
    assert G.state_dict()["synthesis.b4.const"].shape[1:] == (4, 2)


def test_mapping_matches_stylegan_human(human):
    G, ref = human
    w = G.mapping(ref["z"], None, truncation_psi=ref["truncation_psi"])
    torch.testing.assert_close(w, ref["w_from_z"], atol=1e-4, rtol=0)
    torch.testing.assert_close(G.mapping.w_avg, ref["w_avg"], atol=0, rtol=0)


def test_image_matches_stylegan_human_as_a_portrait(human):
    G, ref = human
    img = G.synthesis(ref["ws"], noise_mode="const", force_fp32=True)
    assert img.shape == (2, 3, 32, 16)
    torch.testing.assert_close(img, ref["img"], atol=1e-3, rtol=0)


def test_every_block_matches_stylegan_human(human):
    G, ref = human
    assert list(ref["layers"]) == [f"b{r}" for r in G.synthesis.block_resolutions]
    for res in G.synthesis.block_resolutions:
        got = G.synthesis.begin(ref["ws"][:1], until_res=res, force_fp32=True).x
        assert got.shape[-2:] == (res, res // 2)
        torch.testing.assert_close(got, ref["layers"][f"b{res}"], atol=1e-3, rtol=0)


def test_random_noise_and_partial_synthesis_keep_the_portrait(human):
    G, ref = human
    assert G.synthesis(ref["ws"], noise_mode="random").shape == (2, 3, 32, 16)
    state = G.synthesis.begin(ref["ws"], until_res=8)
    torch.testing.assert_close(
        G.synthesis.finish(ref["ws"], state), G.synthesis(ref["ws"], noise_mode="const")
    )


def _fixture_as_pickle(G, **kwarg_changes) -> bytes:
    """The fixture's generator re-pickled in NVIDIA's layout with edited constructor kwargs
    (a key set to None is deleted)."""
    from conftest import DATA

    with (DATA / f"{FIXTURE}.pkl").open("rb") as f:
        kwargs = dict(safe_load(f)["G_ema"].init_kwargs)
    kwargs.update(kwarg_changes)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return snapshot_bytes(generator_stub(G, kwargs))


def test_a_pickle_without_square_in_its_kwargs_loads_as_a_portrait(human, tmp_path):
    G, ref = human
    path = tmp_path / "human_no_square.pkl"
    path.write_bytes(_fixture_as_pickle(G, square=None))
    with path.open("rb") as f:
        assert "square" not in safe_load(f)["G_ema"].init_kwargs
    loaded = load_generator(path)
    assert image_shape(loaded) == (32, 16)
    img = loaded.synthesis(ref["ws"], noise_mode="const", force_fp32=True)
    torch.testing.assert_close(img, ref["img"], atol=1e-3, rtol=0)


def test_square_false_on_square_tensors_is_refused(tmp_path):
    path = tmp_path / "liar.pkl"
    G = make_generator(img_resolution=16)
    kwargs = {**G.init_kwargs, "square": False}
    path.write_bytes(snapshot_bytes(generator_stub(G, kwargs)))
    with pytest.raises(ValueError, match=r"says square=False.*\[32, 4, 4\].*disagree"):
        load_generator(path)


def test_a_portrait_file_with_a_square_noise_buffer_is_refused_clearly(human, tmp_path):
    G, _ = human
    stub = generator_stub(G, {**G.init_kwargs})
    conv = stub.state["_modules"]["synthesis"].state["_modules"]["b16"].state["_modules"]
    conv["conv0"].state["_buffers"]["noise_const"] = torch.randn(16, 16)
    path = tmp_path / "mixed.pkl"
    path.write_bytes(snapshot_bytes(stub))
    with pytest.raises(ValueError, match=r"mixed.pkl.*32x16 portrait.*b16.conv0.noise_const"):
        load_generator(path)


def test_a_constant_of_neither_layout_is_refused(human, tmp_path):
    G, _ = human
    stub = generator_stub(G, {**G.init_kwargs})
    b4 = stub.state["_modules"]["synthesis"].state["_modules"]["b4"]
    b4.state["_parameters"]["const"] = torch.randn(32, 4, 3)
    path = tmp_path / "odd.pkl"
    path.write_bytes(snapshot_bytes(stub))
    with pytest.raises(ValueError, match=r"\[32, 4, 3\].*\[C, 4, 4\].*\[C, 4, 2\]"):
        load_generator(path)


def test_our_own_format_keeps_the_portrait(human, tmp_path):
    G, ref = human
    loaded = load_generator(save_generator(G, tmp_path / "human.safetensors"))
    assert image_shape(loaded) == (32, 16) and loaded.init_kwargs["square"] is False
    torch.testing.assert_close(
        loaded.synthesis(ref["ws"], noise_mode="const"), G.synthesis(ref["ws"], noise_mode="const")
    )
    assert "square" not in make_generator().init_kwargs  # square files are as before
