"""StyleGAN3 (configs T and R): parity with NVIDIA's code, loading, partial synthesis, drags.

The parity fixtures were made by NVIDIA's StyleGAN3 code (tests/data/PARITY.md); the
other tests use them or small random generators built here.
"""

from __future__ import annotations

import math

import pytest
import torch
from nvidia_pickles import generator_stub, snapshot_bytes, stylegan3_kwargs

from draggan_widget import DragConfig, DragSession, load_generator
from draggan_widget.gan.alias_free import downsample, lowpass_filter, upsample
from draggan_widget.gan.ops import upfirdn2d_reference
from draggan_widget.gan.stylegan3 import Generator


def small_sg3(res: int = 32, config: str = "T", seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    radial = {"conv_kernel": 1, "use_radial_filters": True} if config == "R" else {}
    G = Generator(
        z_dim=16,
        c_dim=0,
        w_dim=16,
        img_resolution=res,
        synthesis_kwargs={"channel_base": 256, "channel_max": 16, "num_layers": 6, **radial},
    )
    with torch.no_grad():  # as after training: every tensor matters (the input's affine
        for name, t in G.state_dict().items():  # starts at zero, magnitudes at one)
            if name.endswith(("affine.weight", "bias", "magnitude_ema", "w_avg")):
                t.add_(0.1 * torch.rand_like(t))
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="module", params=["sg3_t_32", "sg3_r_32"])
def fixture(request):
    from conftest import DATA

    ref = torch.load(DATA / f"{request.param}.ref.pt")
    return load_generator(DATA / f"{request.param}.pkl"), ref


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def test_parity_fixture_matches_nvidia_to_the_tolerances(fixture):
    G, ref = fixture
    assert G.num_ws == ref["num_ws"]
    with torch.no_grad():
        assert max_diff(G.mapping(ref["z"], None, truncation_psi=0.7), ref["w_from_z"]) < 1e-4
        img = G.synthesis(ref["ws"], noise_mode="const", force_fp32=True)
        assert max_diff(img, ref["img"]) < 1e-3
        ws = ref["ws"][:1]
        assert max_diff(G.synthesis.input(ws[:, 0]), ref["layers"]["input"]) < 1e-3
        for name in G.synthesis.layer_names:
            full = G.synthesis.begin(ws, until_layer=name, force_fp32=True).full
            assert max_diff(full, ref["layers"][name]) < 1e-3, name
    assert list(ref["layers"]) == ["input", *G.synthesis.layer_names]


def test_filters_designed_here_equal_those_nvidia_designed(fixture):
    """Building from the kwargs alone (as a new generator is) gives the file's filters."""
    G, _ = fixture
    again = Generator(**G.init_kwargs)
    for name, buf in G.named_buffers():
        if name.endswith("_filter"):
            torch.testing.assert_close(dict(again.named_buffers())[name], buf, atol=1e-6, rtol=0)


def test_lowpass_filter_is_none_for_one_tap_and_sums_to_one():
    assert lowpass_filter(1, 2.0, 1.0, 32) is None
    for radial in (False, True):
        f = lowpass_filter(12, 4.0, 3.0, 32, radial=radial)
        assert f.shape == ((12, 12) if radial else (12,))
        assert abs(f.sum().item() - 1) < 1e-5


@pytest.mark.parametrize("radial", [False, True])
@pytest.mark.parametrize(("up", "padding"), [(2, (5, 4, 5, 4)), (4, (-3, 2, 1, -6))])
def test_resampling_equals_the_upfirdn_reference(radial, up, padding):
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
    f = lowpass_filter(12, 2.0, 4.5, 32, radial=radial).double()
    f2d = f if radial else torch.outer(f, f)
    want = upfirdn2d_reference(x, f2d, up=up, padding=padding, gain=up * up)
    torch.testing.assert_close(upsample(x, f, up, padding), want)
    big = torch.randn(2, 3, 30, 27, dtype=torch.float64)
    want = upfirdn2d_reference(big, f2d, down=2, gain=2.0)
    torch.testing.assert_close(downsample(big, f, 2, gain=2.0), want)


def test_begin_crops_the_margin_and_finish_completes_the_same_image():
    G = small_sg3()
    ws = torch.randn(2, G.num_ws, G.w_dim)
    with torch.no_grad():
        full_img = G.synthesis(ws, noise_mode="const")
        for side in G.synthesis.feature_sides:
            state = G.synthesis.begin(ws, until_res=side)
            m = G.synthesis.margin_size if state.full.shape[-1] > side else 0
            assert state.x.shape[-2:] == (side, side) and state.res == side
            torch.testing.assert_close(state.x, state.full[:, :, m : m + side, m : m + side])
            torch.testing.assert_close(G.synthesis.finish(ws, state), full_img)
        coarse = G.synthesis.begin(ws, until_res=G.synthesis.feature_sides[0])
        finer = G.synthesis.advance(ws, coarse, until_res=G.synthesis.feature_sides[-1])
        torch.testing.assert_close(G.synthesis.finish(ws, finer), full_img)


def test_gradients_reach_only_the_styles_up_to_the_feature_layer():
    G = small_sg3()
    ws = torch.randn(1, G.num_ws, G.w_dim, requires_grad=True)
    side = G.synthesis.feature_sides[0]
    state = G.synthesis.begin(ws, until_res=side)
    state.x.square().sum().backward()
    used = G.synthesis.feature_layer(side) + 2  # the input's style, then one per layer
    assert ws.grad[0, :used].abs().sum(dim=1).gt(0).all()
    assert ws.grad[0, used:].abs().sum() == 0


def test_feature_res_picks_the_first_or_last_layer_of_that_side():
    G = small_sg3()
    rates = G.synthesis.sampling_rates
    side = G.synthesis.feature_sides[-1]
    layers = [i for i, r in enumerate(rates[: G.synthesis.num_layers]) if r == side]
    assert G.synthesis.feature_layer(side) == layers[-1]  # the default: see the class
    G.synthesis.feature_choice = "first"
    assert G.synthesis.feature_layer(side) == layers[0]
    with pytest.raises(ValueError, match=r"choose feature_res among \[16, 32\]"):
        G.synthesis.feature_layer(64)


def test_an_image_does_not_depend_on_its_batch():
    G = small_sg3(config="R")
    ws = torch.randn(3, G.num_ws, G.w_dim) * 3
    with torch.no_grad():
        torch.testing.assert_close(G.synthesis(ws)[:1], G.synthesis(ws[:1]), atol=1e-5, rtol=0)


def test_written_stylegan3_pickle_loads_back_to_the_same_images(tmp_path):
    G = small_sg3(config="R")
    path = tmp_path / "sg3r.pkl"
    path.write_bytes(snapshot_bytes(generator_stub(G, stylegan3_kwargs(G))))
    loaded = load_generator(path)
    assert isinstance(loaded, Generator) and loaded.config_name == "R"
    ws = torch.randn(1, G.num_ws, G.w_dim)
    with torch.no_grad():
        torch.testing.assert_close(loaded.synthesis(ws), G.synthesis(ws), atol=0, rtol=0)


def test_stylegan3_pickle_with_a_missing_tensor_says_which_and_what_to_do(tmp_path):
    G = small_sg3()
    stub = generator_stub(G, stylegan3_kwargs(G))
    layer = stub.state["_modules"]["synthesis"].state["_modules"][G.synthesis.layer_names[2]]
    del layer.state["_buffers"]["down_filter"]
    path = tmp_path / "damaged.pkl"
    path.write_bytes(snapshot_bytes(stub))
    want = rf"StyleGAN3 \(config T\) file is incomplete.*{G.synthesis.layer_names[2]}\.down_filter"
    with pytest.raises(ValueError, match=want + ".*download or export it again"):
        load_generator(path)


def test_stylegan3_pickle_with_an_unknown_option_is_refused(tmp_path):
    G = small_sg3()
    kwargs = {**stylegan3_kwargs(G), "warp_factor": 9}
    path = tmp_path / "odd.pkl"
    path.write_bytes(snapshot_bytes(generator_stub(G, kwargs)))
    with pytest.raises(ValueError, match=r"unsupported StyleGAN3 synthesis option\(s\) \['warp"):
        load_generator(path)


def test_a_forty_step_drag_moves_the_handle_a_third_of_the_way(fixture, one_thread):
    G, _ = fixture
    handle, target = (12.0, 14.0), (20.0, 18.0)
    s = DragSession(G, seed=1, config=DragConfig(), device="cpu")
    s.set_points([handle], [target])
    result = s.run(40)
    start = math.dist(handle, target)
    assert result.distances[0] <= start * 2 / 3, f"{start:.1f} px -> {result.distances[0]:.1f} px"
    assert s.image().shape == (G.img_height, G.img_width, 3)


def test_a_masked_drag_warps_the_layer_the_next_one_reads(fixture, one_thread):
    """StyleGAN3's next layer reads the margin-framed output, not the cropped features: the
    warp must move that, or the image would not change."""
    G, _ = fixture
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[6:26, 6:28] = True
    s = DragSession(G, seed=1, config=DragConfig(lr=1e-6, warp=0.35), device="cpu")
    before = s.image().astype(int)
    s.set_points([(12.0, 16.0)], [(20.0, 16.0)])
    s.set_mask(mask.numpy())
    result = s.run(40)
    assert result.distances[0] < 8.0 * 2 / 3 and s.feature_warp is not None
    change = abs(s.image().astype(int) - before)
    assert change[mask.numpy()].mean() > 3 * change[~mask.numpy()].mean()
