"""Every weights format load_generator reads, and every bad file it must refuse clearly.

rosinality checkpoints are checked against an independent re-implementation of rosinality's
forward pass (written here from its model.py semantics), TF-era pickles against the inverse
of NVIDIA's conversion, both on files written in the formats' own layouts.
"""

from __future__ import annotations

import argparse
import logging
import math
import pickle
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nvidia_pickles import tf_variables

from conftest import make_generator
from draggan_widget.gan import Generator, load_generator, save_generator
from draggan_widget.gan.formats import detect_format
from draggan_widget.gan.formats.rosinality import estimate_w_avg, to_rosinality_state

# ---------------------------------------------------------------- writing NVIDIA-style pickles


def _reconstruct_persistent_obj(meta):  # stands in for NVIDIA's; the loader never calls it
    raise AssertionError("the loader must not call the pickle's reconstruction function")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"


class Persistent:
    """Pickles as NVIDIA's ``torch_utils.persistence._reconstruct_persistent_obj(meta)``."""

    def __init__(self, class_name: str, state: dict) -> None:
        self.meta = {
            "type": "class",
            "version": 6,
            "module_src": "# stripped",
            "class_name": class_name,
            "state": state,
        }

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


class Network:
    """Pickles as TF-era ``dnnlib.tflib.network.Network`` (NEWOBJ, then its state)."""

    __module__ = "dnnlib.tflib.network"

    def __init__(self, state: dict) -> None:
        self._state = state

    def __getstate__(self) -> dict:
        return self._state


class EasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict``."""

    __module__ = "dnnlib.util"


@pytest.fixture
def nvidia_globals(monkeypatch):
    """Make the globals NVIDIA's pickles name importable, so that pickle can write them."""
    fakes = {
        "torch_utils.persistence": _reconstruct_persistent_obj,
        "dnnlib.tflib.network": Network,
        "dnnlib.util": EasyDict,
    }
    for name in ("torch_utils", "dnnlib", "dnnlib.tflib", *fakes):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    for module, obj in fakes.items():
        setattr(sys.modules[module], obj.__name__, obj)


# ------------------------------------------------- rosinality: an independent reference


def make_kernel(taps=(1, 3, 3, 1)) -> torch.Tensor:
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def random_rosinality_state(seed: int = 0, style_dim: int = 16, n_mlp: int = 2, channels=None):
    """A random ``g_ema`` state in rosinality's layout, every tensor non-trivial."""
    channels = channels or {4: 32, 8: 32, 16: 16, 32: 8}
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    sd = {}
    for i in range(1, n_mlp + 1):
        sd[f"style.{i}.weight"] = randn(style_dim, style_dim, scale=100.0)  # randn / lr_mul
        sd[f"style.{i}.bias"] = randn(style_dim)

    def modconv(p, i, o, k):
        sd[f"{p}.conv.weight"] = randn(1, o, i, k, k)
        sd[f"{p}.conv.modulation.weight"] = randn(i, style_dim)
        sd[f"{p}.conv.modulation.bias"] = 1 + randn(i, scale=0.1)

    def styled(p, i, o, up=False):
        modconv(p, i, o, 3)
        sd[f"{p}.noise.weight"] = randn(1, scale=0.2)
        sd[f"{p}.activate.bias"] = randn(o, scale=0.1)
        if up:
            sd[f"{p}.conv.blur.kernel"] = make_kernel() * 4

    def torgb(p, i, up):
        modconv(p, i, 3, 1)
        sd[f"{p}.bias"] = randn(1, 3, 1, 1, scale=0.1)
        if up:
            sd[f"{p}.upsample.kernel"] = make_kernel() * 4

    sd["input.input"] = randn(1, channels[4], 4, 4)
    styled("conv1", channels[4], channels[4])
    torgb("to_rgb1", channels[4], up=False)
    res = sorted(channels)
    for j, (r_in, r) in enumerate(zip(res, res[1:])):
        styled(f"convs.{2 * j}", channels[r_in], channels[r], up=True)
        styled(f"convs.{2 * j + 1}", channels[r], channels[r])
        torgb(f"to_rgbs.{j}", channels[r], up=True)
    for idx in range((len(res) - 1) * 2 + 1):
        r = 2 ** ((idx + 5) // 2)
        sd[f"noises.noise_{idx}"] = randn(1, 1, r, r)
    return sd


def ros_linear(x, weight, bias, lr_mul=1.0, activate=False):
    """rosinality's EqualLinear (with fused_leaky_relu when ``activate``)."""
    out = F.linear(x, weight * (lr_mul / math.sqrt(weight.shape[1])))
    if activate:
        return F.leaky_relu(out + bias * lr_mul, 0.2) * math.sqrt(2)
    return out + bias * lr_mul


def ros_mapping(sd, z):
    x = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
    i = 1
    while f"style.{i}.weight" in sd:
        x = ros_linear(x, sd[f"style.{i}.weight"], sd[f"style.{i}.bias"], 0.01, activate=True)
        i += 1
    return x


def ros_upfirdn(x, kernel, up, pad):
    """upfirdn2d_native with down=1: zero insertion, pad (pad0, pad1) on both axes, convolve."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = torch.flip(kernel, [0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def ros_modconv(sd, p, x, style, *, demodulate=True, upsample=False):
    """rosinality's ModulatedConv2d, one sample at a time (no grouped-conv tricks)."""
    weight = sd[f"{p}.conv.weight"]  # [1, O, I, k, k]
    _, _, in_ch, k, _ = weight.shape
    s = ros_linear(style, sd[f"{p}.conv.modulation.weight"], sd[f"{p}.conv.modulation.bias"])
    w = weight / math.sqrt(in_ch * k * k) * s[:, None, :, None, None]  # [N, O, I, k, k]
    if demodulate:
        w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8)[:, :, None, None, None]
    out = []
    for n in range(x.shape[0]):
        if upsample:
            o = F.conv_transpose2d(x[n : n + 1], w[n].transpose(0, 1), stride=2)
            out.append(ros_upfirdn(o, sd[f"{p}.conv.blur.kernel"], 1, (1, 1)))
        else:
            out.append(F.conv2d(x[n : n + 1], w[n], padding=k // 2))
    return torch.cat(out)


def ros_styled_conv(sd, p, x, style, noise, upsample=False):
    out = ros_modconv(sd, p, x, style, upsample=upsample)
    out = out + sd[f"{p}.noise.weight"] * noise
    return F.leaky_relu(out + sd[f"{p}.activate.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)


def ros_to_rgb(sd, p, x, style, skip):
    out = ros_modconv(sd, p, x, style, demodulate=False) + sd[f"{p}.bias"]
    if skip is not None:
        out = out + ros_upfirdn(skip, sd[f"{p}.upsample.kernel"], 2, (2, 1))
    return out


def ros_synthesis(sd, latent):
    """rosinality's Generator.forward(input_is_latent=True, randomize_noise=False)."""
    noise = [sd[f"noises.noise_{i}"] for i in range(sum(k.startswith("noises.") for k in sd))]
    out = sd["input.input"].repeat(latent.shape[0], 1, 1, 1)
    out = ros_styled_conv(sd, "conv1", out, latent[:, 0], noise[0])
    skip = ros_to_rgb(sd, "to_rgb1", out, latent[:, 1], None)
    i, j = 1, 0
    while f"to_rgbs.{j}.bias" in sd:
        out = ros_styled_conv(sd, f"convs.{2 * j}", out, latent[:, i], noise[2 * j + 1], True)
        out = ros_styled_conv(sd, f"convs.{2 * j + 1}", out, latent[:, i + 1], noise[2 * j + 2])
        skip = ros_to_rgb(sd, f"to_rgbs.{j}", out, latent[:, i + 2], skip)
        i, j = i + 2, j + 1
    return skip


# ---------------------------------------------------------------- rosinality tests


def test_rosinality_checkpoint_matches_independent_reference(tmp_path):
    sd = random_rosinality_state()
    latent_avg = torch.randn(16) * 0.3
    path = tmp_path / "550000.pt"
    torch.save({"g_ema": sd, "latent_avg": latent_avg}, path)
    G = load_generator(path)

    z = torch.randn(3, 16)
    torch.testing.assert_close(G.mapping(z)[:, 0], ros_mapping(sd, z), atol=1e-4, rtol=1e-5)
    trunc = latent_avg + 0.7 * (ros_mapping(sd, z) - latent_avg)
    torch.testing.assert_close(G.mapping(z, truncation_psi=0.7)[:, 0], trunc, atol=1e-4, rtol=1e-5)

    ws = torch.randn(3, G.num_ws, 16)  # W+: a different style per layer
    want = ros_synthesis(sd, ws)
    got = G.synthesis(ws, noise_mode="const")
    assert got.shape == want.shape == (3, 3, 32, 32)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)


def test_rosinality_architecture_is_read_from_shapes(tmp_path):
    torch.save({"g_ema": random_rosinality_state(n_mlp=3)}, tmp_path / "g.pt")
    G = load_generator(tmp_path / "g.pt")
    assert (G.img_resolution, G.w_dim, G.num_ws) == (32, 16, 8)
    assert G.mapping.num_layers == 3
    assert {r: G.synthesis.channels[r] for r in (4, 8, 16, 32)} == {4: 32, 8: 32, 16: 16, 32: 8}


def test_rosinality_round_trip_gives_identical_images(tmp_path):
    G = make_generator()
    path = tmp_path / "ros.pt"
    torch.save({"g_ema": to_rosinality_state(G), "latent_avg": G.mapping.w_avg}, path)
    G2 = load_generator(path)
    for k, v in G.state_dict().items():
        assert torch.equal(G2.state_dict()[k], v), k
    ws = G.mapping(torch.randn(2, 16), truncation_psi=0.7)
    assert torch.equal(G2.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const"))


def test_rosinality_legacy_torch_format_loads(tmp_path):
    G = make_generator()
    path = tmp_path / "old.pt"
    state = {"g_ema": to_rosinality_state(G), "latent_avg": G.mapping.w_avg}
    torch.save(state, path, _use_new_zipfile_serialization=False)
    assert detect_format(path) == "torch_legacy"
    assert torch.equal(
        load_generator(path).synthesis.b32.conv1.weight, G.synthesis.b32.conv1.weight
    )


def test_rosinality_training_checkpoint_estimates_w_avg(tmp_path, caplog):
    """train.py saves args (a Namespace) and optimizers, and no latent_avg."""
    sd = random_rosinality_state()
    ckpt = {
        "g": sd,
        "d": {},
        "g_ema": sd,
        "g_optim": {"state": {}, "param_groups": []},
        "args": argparse.Namespace(size=32, latent=16, n_mlp=2),
        "ada_aug_p": 0.0,
    }
    torch.save(ckpt, tmp_path / "train.pt")
    with caplog.at_level(logging.WARNING):
        G = load_generator(tmp_path / "train.pt")
    assert "latent_avg" in caplog.text
    gen = torch.Generator().manual_seed(123)
    mean = ros_mapping(sd, torch.randn(4096, 16, generator=gen)).mean(dim=0)
    assert G.mapping.w_avg.abs().max() > 0.1  # not zeros: truncation must not pull to 0
    torch.testing.assert_close(G.mapping.w_avg, mean, atol=0.15, rtol=0)
    assert torch.equal(G.mapping.w_avg, estimate_w_avg(G))


def test_rosinality_bare_state_dict_loads(tmp_path):
    torch.save(random_rosinality_state(), tmp_path / "bare.pt")
    assert load_generator(tmp_path / "bare.pt").img_resolution == 32


def test_rosinality_unknown_tensor_is_refused(tmp_path):
    sd = random_rosinality_state()
    sd["convs.0.extra.weight"] = torch.zeros(3)
    torch.save({"g_ema": sd}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match=r"convs\.0\.extra\.weight"):
        load_generator(tmp_path / "x.pt")


def test_rosinality_other_blur_kernel_is_refused(tmp_path):
    sd = random_rosinality_state()
    sd["convs.0.conv.blur.kernel"] = make_kernel((1, 2, 1)) * 4
    torch.save({"g_ema": sd}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="blur kernel"):
        load_generator(tmp_path / "x.pt")


def test_rosinality_checkpoint_without_g_ema_says_what_it_holds(tmp_path):
    torch.save({"d": {"w": torch.zeros(1)}, "iter": 3}, tmp_path / "d.pt")
    with pytest.raises(ValueError, match=r"g_ema.*found a dict with keys \['d', 'iter'\]"):
        load_generator(tmp_path / "d.pt")


def test_to_rosinality_state_refuses_what_rosinality_lacks():
    with pytest.raises(ValueError, match="c_dim"):
        to_rosinality_state(make_generator(c_dim=3))


# ---------------------------------------------------------------- TF-era pickles


def tf_kwargs(G: Generator, **extra) -> dict:
    return {
        "num_channels": 3,
        "resolution": G.img_resolution,
        "label_size": G.c_dim,
        "latent_size": G.z_dim,
        "dlatent_size": G.w_dim,
        "mapping_layers": 2,
        "fmap_base": G.synthesis.channel_base // 2,
        "fmap_max": G.synthesis.channel_max,
        "truncation_psi": 0.5,
        "architecture": "skip",
        **extra,
    }


def write_tf_pickle(path, G: Generator, *, version: int = 4, **kwargs) -> None:
    """A ``(G, D, Gs)`` tuple as NVIDIA's TF StyleGAN2 code pickled it."""
    top, mapping, synthesis = tf_variables(G)
    static = tf_kwargs(G, **kwargs)

    def net(name, variables, components=None):
        return Network(
            {
                "version": version,
                "name": name,
                "static_kwargs": static,
                "components": EasyDict(components or {}),
                "build_module_src": "# x",
                "build_func_name": name,
                "variables": variables,
            }
        )

    def generator():
        return net(
            "G",
            top,
            {"mapping": net("G_mapping", mapping), "synthesis": net("G_synthesis", synthesis)},
        )

    D = net("D", [("Output/weight", np.zeros((16, 1), np.float32))])
    path.write_bytes(pickle.dumps((generator(), D, generator()), protocol=3))


def test_tf_pickle_converts_exactly(tmp_path, nvidia_globals):
    G = make_generator()
    write_tf_pickle(tmp_path / "car-config-f.pkl", G)
    G2 = load_generator(tmp_path / "car-config-f.pkl")
    for k, v in G.state_dict().items():
        assert torch.equal(G2.state_dict()[k], v), k
    ws = G.mapping(torch.randn(2, 16), truncation_psi=0.7)
    assert torch.equal(G2.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const"))


def test_tf_conditional_label_embed_converts(tmp_path, nvidia_globals):
    G = make_generator(c_dim=3)
    write_tf_pickle(tmp_path / "cond.pkl", G)
    G2 = load_generator(tmp_path / "cond.pkl")
    z, c = torch.randn(2, 16), torch.eye(3)[:2]
    assert torch.equal(G2.mapping(z, c), G.mapping(z, c))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"architecture": "resnet"}, "only architecture='skip'"),
        ({"fmap_decay": 0.5}, "fmap_decay"),
        ({"synthesis_func": "G_synthesis_stylegan_revised"}, "synthesis_func"),
        ({"version": 3}, "version 3 is too old"),
    ],
)
def test_tf_unsupported_configs_are_refused(tmp_path, nvidia_globals, kwargs, message):
    write_tf_pickle(tmp_path / "x.pkl", make_generator(), **kwargs)
    with pytest.raises(ValueError, match=message):
        load_generator(tmp_path / "x.pkl")


def test_tf_stylegan1_is_refused(tmp_path, nvidia_globals):
    state = {
        "version": 4,
        "name": "G",
        "static_kwargs": {},
        "components": {},
        "variables": [("4x4/Const/Noise/weight", np.zeros(3, np.float32))],
    }
    (tmp_path / "sg1.pkl").write_bytes(pickle.dumps(Network(state)))
    with pytest.raises(ValueError, match="not a StyleGAN2 generator"):
        load_generator(tmp_path / "sg1.pkl")


# ---------------------------------------------------------------- load_generator


def test_load_generator_returns_frozen_eval_model_on_cpu(tmp_path):
    path = save_generator(make_generator(), tmp_path / "g.safetensors")
    for source in (path, str(path)):
        G = load_generator(source)
        assert not G.training
        assert not any(p.requires_grad for p in G.parameters())
        assert {p.device.type for p in G.state_dict().values()} == {"cpu"}


def test_format_is_read_from_content_not_name(tmp_path, data_dir):
    (tmp_path / "weights.bin").write_bytes((data_dir / "sg2_32_tiny.pkl").read_bytes())
    assert load_generator(tmp_path / "weights.bin").img_resolution == 32


def test_non_path_sources_go_through_the_registry(tmp_path, monkeypatch):
    registry = pytest.importorskip("draggan_widget.gan.registry")
    path = save_generator(make_generator(), tmp_path / "g.safetensors")
    asked = []
    monkeypatch.setattr(
        registry, "resolve_source", lambda s, download=True: asked.append(s) or path
    )
    load_generator("stylegan2-ffhq-512")
    load_generator("https://example.com/g.pkl")
    assert asked == ["stylegan2-ffhq-512", "https://example.com/g.pkl"]


# ---------------------------------------------------------------- bad input


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.fixture
def valid_files(tmp_path, data_dir):
    G = make_generator()
    torch.save({"g_ema": to_rosinality_state(G)}, tmp_path / "ros.pt")
    return {
        "pickle": (data_dir / "sg2_32_tiny.pkl").read_bytes(),
        "safetensors": save_generator(G, tmp_path / "g.safetensors").read_bytes(),
        "zip": (tmp_path / "ros.pt").read_bytes(),
    }


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_generator(tmp_path / "nope.pkl")


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("empty.pkl", lambda v: b"", "is empty; expected NVIDIA StyleGAN2 pickles"),
        ("half.pkl", lambda v: _half(v["pickle"]), "cannot read the pickle"),
        ("half.safetensors", lambda v: _half(v["safetensors"]), "cannot be read|not a readable"),
        ("half.pt", lambda v: _half(v["zip"]), "cannot read the torch checkpoint"),
        (
            "ints.pkl",
            lambda v: pickle.dumps({"a": 1, "b": 2}),
            r"holds no generator: found a dict with keys \['a', 'b'\]; expected",
        ),
        ("list.pkl", lambda v: pickle.dumps([1, 2]), "found a list of 2 items"),
        (
            "random.pkl",
            lambda v: bytes(np.random.default_rng(0).integers(1, 127, 512, np.uint8)),
            "not a weights file this package reads .*; expected",
        ),
        ("image.png", lambda v: b"\x89PNG\r\n\x1a\n" + bytes(64), r"starts with b'\\x89PNG"),
        (
            "header.safetensors",
            lambda v: v["safetensors"][:9] + b"#" * 40 + v["safetensors"][49:],
            "not a readable safetensors file",
        ),
    ],
)
def test_bad_files_are_refused_with_what_was_found(tmp_path, valid_files, name, make, message):
    path = tmp_path / name
    path.write_bytes(make(valid_files))
    with pytest.raises(ValueError, match=message):
        load_generator(path)


def test_stylegan3_pickle_without_its_tensors_is_refused(tmp_path, nvidia_globals):
    layer = Persistent("SynthesisInput", {"_parameters": {}, "_buffers": {}, "_modules": {}})
    synthesis = Persistent("SynthesisNetwork", {"_modules": {"input": layer}})
    G = Persistent(
        "Generator",
        {
            "_init_kwargs": {
                "z_dim": 512,
                "c_dim": 0,
                "w_dim": 512,
                "img_resolution": 256,
                "img_channels": 3,
            },
            "_modules": {"synthesis": synthesis},
        },
    )
    (tmp_path / "sg3.pkl").write_bytes(pickle.dumps({"G_ema": G, "D": None}))
    with pytest.raises(ValueError, match=r"StyleGAN3 \(config T\) file is incomplete"):
        load_generator(tmp_path / "sg3.pkl")
