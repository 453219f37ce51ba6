"""Every registry entry loads: a random generator of the entry's architecture and size,
written in its publisher's format, is put where the download would go and loaded by name.

Channel counts are tiny (the layout is what a loader can get wrong: names, sizes, filters,
the kwargs the publisher's training script records); nothing is downloaded. One builder per
family; the last test checks that every entry of ``weights/models.json`` has one, so an entry
added without a loader test fails here.
"""

from __future__ import annotations

import math

import pytest
import torch
from nvidia_pickles import (
    generator_stub,
    snapshot_bytes,
    stylegan2_ada_kwargs,
    stylegan2_by_stylegan3_repo_kwargs,
    stylegan3_kwargs,
    tf_pickle_bytes,
)

from draggan_widget import load_generator
from draggan_widget.gan.formats.rosinality import to_rosinality_state
from draggan_widget.gan.registry import ModelInfo, bundled_path, list_models
from draggan_widget.gan.stylegan2 import Generator
from draggan_widget.gan.stylegan3 import Generator as StyleGAN3Generator

MODELS = {m.name: m for m in list_models()}
SYNTHESIS_MAX = 256  # drawing at 512 px and up takes seconds on a CPU


LISTED: list[str] = []  # every name a builder below claims, checked against the registry


def entries(names: tuple[str, ...]) -> list[ModelInfo]:
    LISTED.extend(names)
    return [MODELS[name] for name in names if name in MODELS]


def no_network(*args, **kwargs):
    raise AssertionError(f"the network was used: urlopen{args}")


def tiny_stylegan2(res: int, *, mapping_layers: int, **synthesis) -> Generator:
    """A StyleGAN2 with 4 channels a layer and 8-d latents whose every tensor matters
    (biases, noise strengths and ``w_avg`` away from their initial values)."""
    torch.manual_seed(res + mapping_layers)
    G = Generator(
        z_dim=8,
        c_dim=0,
        w_dim=8,
        img_resolution=res,
        mapping_kwargs={"num_layers": mapping_layers},
        synthesis_kwargs={"channel_base": 4 * res, "channel_max": 4, **synthesis},
    )
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(("noise_strength", "bias")):
                p.add_(0.1 * torch.randn_like(p))
        G.mapping.w_avg.normal_(0, 0.1)
    return G.eval()


def assert_same_weights(loaded: torch.nn.Module, G: torch.nn.Module) -> None:
    own = loaded.state_dict()
    assert own.keys() == G.state_dict().keys()
    for key, value in G.state_dict().items():
        assert torch.equal(own[key], value), key


def assert_draws(G: torch.nn.Module, height: int, width: int) -> None:
    """One image from the mean latent, where that is cheap."""
    if height > SYNTHESIS_MAX:
        return
    ws = G.mapping.w_avg.expand(1, G.num_ws, G.w_dim)
    with torch.no_grad():
        image = G.synthesis(ws, noise_mode="const")
    assert image.shape == (1, 3, height, width) and torch.isfinite(image).all()


STYLEGAN3 = [m for m in list_models() if m.family == "stylegan3"]


def stylegan3_config(info: ModelInfo) -> str:
    """'T' or 'R', from NVIDIA's file name (``stylegan3-t-ffhq-1024x1024.pkl``)."""
    return info.filename.split("-")[1].upper()


def nvidia_stylegan3_pickle(info: ModelInfo) -> tuple[bytes, StyleGAN3Generator]:
    """What NVIDIA's stylegan3 ``train.py`` saves for this entry's config and resolution,
    with 4 channels a layer: kwargs flat, ``mapping_kwargs`` nested, config R with 1x1
    convolutions and radial filters, and the magnitude EMA rate of batch 32."""
    config, res = stylegan3_config(info), info.resolution
    radial = {"conv_kernel": 1, "use_radial_filters": True} if config == "R" else {}
    torch.manual_seed(0)
    G = StyleGAN3Generator(
        z_dim=8,
        c_dim=0,
        w_dim=8,
        img_resolution=res,
        mapping_kwargs={"num_layers": 2},
        synthesis_kwargs={
            "channel_base": 8 * res,  # 4 channels in every layer, up to the last cutoff
            "channel_max": 4,
            "magnitude_ema_beta": 0.5 ** (32 / 20_000),
            **radial,
        },
    )
    return snapshot_bytes(generator_stub(G, stylegan3_kwargs(G))), G


def test_the_registry_lists_nvidias_stylegan3_models():
    names = {m.name for m in STYLEGAN3}
    for config in ("t", "r"):
        for data in ("ffhq-1024", "ffhqu-1024", "ffhqu-256", "metfaces-1024", "metfacesu-1024"):
            assert f"stylegan3-{config}-{data}" in names
        assert f"stylegan3-{config}-afhqv2-512" in names
    for m in STYLEGAN3:
        assert m.url == (
            "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
            + m.filename
        )
        assert m.filename.endswith(f"-{m.resolution}x{m.resolution}.pkl")


@pytest.mark.parametrize("info", STYLEGAN3, ids=[m.name for m in STYLEGAN3])
def test_stylegan3_entry_loads_by_name(info, tmp_path, monkeypatch):
    monkeypatch.setenv("DRAGGAN_WIDGET_HOME", str(tmp_path))
    data, G = nvidia_stylegan3_pickle(info)
    (tmp_path / info.filename).write_bytes(data)
    loaded = load_generator(info.name)
    assert isinstance(loaded, StyleGAN3Generator) and loaded.family == info.family
    assert loaded.config_name == stylegan3_config(info)
    assert loaded.img_resolution == info.resolution and loaded.num_ws == 16
    assert_same_weights(loaded, G)
    assert_draws(loaded, info.resolution, info.resolution)


# StyleGAN-Human entries (``aspect`` 1:2): a StyleGAN2 of stylegan2-ada-pytorch's layout whose
# 4x4 constant is 4x2. Its training script records ``square=False``; files re-saved by other
# tools may not, so both are loaded.
HUMAN = [m for m in list_models() if m.aspect == "1:2"]


def stylegan_human_pickle(info: ModelInfo, *, record_square: bool) -> tuple[bytes, Generator]:
    """What StyleGAN-Human's training saves for this entry's resolution, with 4 channels."""
    res = info.resolution
    torch.manual_seed(0)
    synthesis = {"channel_base": 4 * res, "channel_max": 4, "num_fp16_res": 4, "conv_clamp": 256}
    G = Generator(
        z_dim=8,
        c_dim=0,
        w_dim=8,
        img_resolution=res,
        mapping_kwargs={"num_layers": 2},
        synthesis_kwargs=synthesis,
        square=False,
    )
    kwargs = {k: v for k, v in G.init_kwargs.items() if record_square or k != "square"}
    return snapshot_bytes(generator_stub(G, kwargs)), G


def test_the_registry_lists_stylegan_human():
    assert [m.name for m in HUMAN] == ["human-512"]
    assert all(m.family == "stylegan2" for m in HUMAN)


@pytest.mark.parametrize("record_square", [True, False], ids=["square-recorded", "no-square"])
@pytest.mark.parametrize("info", HUMAN, ids=[m.name for m in HUMAN])
def test_stylegan_human_entry_loads_by_name(info, record_square, tmp_path, monkeypatch):
    monkeypatch.setenv("DRAGGAN_WIDGET_HOME", str(tmp_path))
    data, G = stylegan_human_pickle(info, record_square=record_square)
    (tmp_path / info.filename).write_bytes(data)
    loaded = load_generator(info.name)
    assert (loaded.img_height, loaded.img_width) == (info.resolution, info.resolution // 2)
    assert_same_weights(loaded, G)
    assert_draws(loaded, info.resolution, info.resolution // 2)


# NVIDIA-layout StyleGAN2 pickles (square): NVIDIA's own on NGC, Google's Self-Distilled
# StyleGAN, LHQ. stylegan2-ada-pytorch's train.py records num_fp16_res=4 and conv_clamp=256
# for every config, and a mapping of 8 layers ('paper*', 'stylegan2' configs) or 2 ('auto',
# its default); which config made each file is not published for all of them, so both are
# loaded. NGC's files are "compatible with" the stylegan3 repo, whose train.py --cfg=stylegan2
# records the synthesis options flat: that layout is loaded for them too.
NGC_STYLEGAN2 = (
    "ffhq-512",
    "ffhq-1024",
    "afhqcat-512",
    "afhqdog-512",
    "afhqwild-512",
    "metfaces-1024",
)
OTHER_STYLEGAN2 = ("lions-512", "dogs-1024", "horses-256", "elephants-512", "lhq-256")
ADA = entries(NGC_STYLEGAN2 + OTHER_STYLEGAN2)
ADA_CASES = [
    pytest.param(m, layout, layers, id=f"{m.name}-{layout}-map{layers}")
    for m in ADA
    for layout, layers in [("ada", 8), ("ada", 2)]
    + ([("stylegan3-repo", 8)] if m.name in NGC_STYLEGAN2 else [])
]
KWARGS = {"ada": stylegan2_ada_kwargs, "stylegan3-repo": stylegan2_by_stylegan3_repo_kwargs}


def nvidia_stylegan2_pickle(info: ModelInfo, layout: str, layers: int) -> tuple[bytes, Generator]:
    """What ``layout``'s training script saves for this entry's resolution, 4 channels."""
    G = tiny_stylegan2(info.resolution, mapping_layers=layers, num_fp16_res=4, conv_clamp=256)
    return snapshot_bytes(generator_stub(G, KWARGS[layout](G))), G


@pytest.mark.parametrize(("info", "layout", "layers"), ADA_CASES)
def test_nvidia_stylegan2_entry_loads_by_name(info, layout, layers, tmp_path, monkeypatch):
    assert (info.format, info.family, info.aspect) == ("nvidia_pkl", "stylegan2", "1:1")
    monkeypatch.setenv("DRAGGAN_WIDGET_HOME", str(tmp_path))
    data, G = nvidia_stylegan2_pickle(info, layout, layers)
    (tmp_path / info.filename).write_bytes(data)
    loaded = load_generator(info.name)
    assert type(loaded) is Generator and loaded.square
    assert loaded.img_resolution == info.resolution
    assert loaded.num_ws == 2 * int(math.log2(info.resolution)) - 2
    assert loaded.mapping_kwargs["num_layers"] == layers
    assert (loaded.synthesis_kwargs["num_fp16_res"], loaded.synthesis_kwargs["conv_clamp"]) == (
        4,
        256,
    )
    assert_same_weights(loaded, G)
    assert_draws(loaded, info.resolution, info.resolution)


# NVIDIA's TF-era config-f pickles. Their (G, D, Gs) networks record as static kwargs only what
# run_training.py passed for config-f (num_channels, resolution, label_size); sizes are the
# network functions' defaults (fmap_base 16 << 10, 512-d latents, 8 mapping layers), so the
# tiny file adds fmap_base, fmap_max, latent_size and dlatent_size, which real files omit.
# LSUN Car's 512x384 photos were padded into a 512x512 dataset: the generator is square (our
# loader reads ``resolution``, and TF's 4x4 constant is square), drawing the car letterboxed.
TF = entries(("lsun-car-512", "lsun-cat-256"))


def nvidia_tf_pickle(info: ModelInfo) -> tuple[bytes, Generator]:
    res = info.resolution
    G = tiny_stylegan2(res, mapping_layers=8)
    static = {
        "num_channels": 3,
        "resolution": res,
        "label_size": 0,
        "latent_size": G.z_dim,
        "dlatent_size": G.w_dim,
        "fmap_base": G.synthesis_kwargs["channel_base"] // 2,  # TF counts at half the res
        "fmap_max": G.synthesis_kwargs["channel_max"],
    }
    return tf_pickle_bytes(G, static), G


@pytest.mark.parametrize("info", TF, ids=[m.name for m in TF])
def test_nvidia_tf_entry_loads_by_name(info, tmp_path, monkeypatch):
    assert (info.format, info.family, info.aspect) == ("tf_pkl", "stylegan2", "1:1")
    monkeypatch.setenv("DRAGGAN_WIDGET_HOME", str(tmp_path))
    data, G = nvidia_tf_pickle(info)
    (tmp_path / info.filename).write_bytes(data)
    loaded = load_generator(info.name)
    assert type(loaded) is Generator
    assert (loaded.img_height, loaded.img_width) == (info.resolution, info.resolution)
    assert loaded.mapping.num_layers == 8
    assert_same_weights(loaded, G)
    assert_draws(loaded, info.resolution, info.resolution)


# rosinality's stylegan2-pytorch checkpoints: convert_weight.py writes {"g_ema": state dict,
# "latent_avg": w_avg} (config-f: 8 mapping layers, no fp16 and no clamping in that code).
ROSINALITY = entries(("ffhq-1024-rosinality",))


@pytest.mark.parametrize("info", ROSINALITY, ids=[m.name for m in ROSINALITY])
def test_rosinality_entry_loads_by_name(info, tmp_path, monkeypatch):
    assert (info.format, info.family, info.aspect) == ("rosinality", "stylegan2", "1:1")
    monkeypatch.setenv("DRAGGAN_WIDGET_HOME", str(tmp_path))
    G = tiny_stylegan2(info.resolution, mapping_layers=8)
    ckpt = {"g_ema": to_rosinality_state(G), "latent_avg": G.mapping.w_avg.clone()}
    torch.save(ckpt, tmp_path / info.filename)
    loaded = load_generator(info.name)
    assert type(loaded) is Generator and loaded.img_resolution == info.resolution
    assert_same_weights(loaded, G)
    assert_draws(loaded, info.resolution, info.resolution)


# Our own format: the bundled model, shipped in weights/, never downloaded.
NATIVE = entries(("default",))


@pytest.mark.parametrize("info", NATIVE, ids=[m.name for m in NATIVE])
def test_bundled_entry_loads_by_name_without_the_network(info, tmp_path, monkeypatch):
    assert info.format == "native" and info.url is None
    monkeypatch.setenv("DRAGGAN_WIDGET_HOME", str(tmp_path))
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    loaded = load_generator(info.name)
    assert type(loaded) is Generator and loaded.img_resolution == info.resolution
    assert bundled_path(info.filename).is_file() and not list(tmp_path.iterdir())
    assert_draws(loaded, info.resolution, info.resolution)


def test_every_registry_entry_has_a_loader_test():
    groups = [STYLEGAN3, HUMAN, ADA, TF, ROSINALITY, NATIVE]
    covered = [m.name for group in groups for m in group]
    assert len(covered) == len(set(covered)), "an entry is built by two builders"
    assert set(LISTED) <= set(MODELS), f"builders name entries the registry lacks: {LISTED}"
    assert sorted(covered) == sorted(MODELS), (
        "registry entries without a builder in this file (add one for their family): "
        f"{sorted(set(MODELS) - set(covered))}"
    )
