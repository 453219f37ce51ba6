"""NVIDIA's TF-era StyleGAN2 pickles (``stylegan2-car-config-f.pkl`` ...), without TensorFlow.

The file is a tuple ``(G, D, Gs)`` of ``dnnlib.tflib.network.Network`` objects; the
restricted unpickler turns each into a `TFNetworkStub` with its static kwargs and its
variables as numpy arrays. ``Gs`` (the moving average of G, the one to sample from) becomes
our `Generator`. Names and layouts follow NVIDIA's own converter (``legacy.py`` of
stylegan2-ada-pytorch):

- dense weights are stored ``[in, out]``: transposed;
- conv weights are stored ``[kh, kw, in, out]``: transposed to ``[out, in, kh, kw]``; the
  2x-up ``Conv0_up`` is also flipped in space, because TF stores it for a correlation
  after zero insertion and the PyTorch code runs it as a transposed convolution;
- ``mod_bias`` is stored minus its initial 1; ``const`` and the ``noise{k}`` buffers carry
  leading unit dimensions;
- ``fmap_base`` counts channels at stage ``log2(res) - 1``, so ``channel_base = 2 * fmap_base``.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Callable

import numpy as np
import torch

from ..stylegan2 import DEFAULT_FILTER, Generator
from .checks import check_generator_kwargs
from .nvidia_pkl import load_state_strict
from .safe_pickle import TFNetworkStub

logger = logging.getLogger(__name__)

# Static kwargs that change only how TF ran the network (training, sampling), never its weights.
RUNTIME_KWARGS = {
    "truncation_psi",
    "truncation_cutoff",
    "truncation_psi_val",
    "truncation_cutoff_val",
    "style_mixing_prob",
    "dlatent_avg_beta",
    "w_avg_beta",
    "structure",
    "randomize_noise",
    "fused_modconv",
    "dtype",
    "is_training",
    "is_validation",
    "return_dlatents",
    "is_template_graph",
}
# Sizes read off the variables' shapes instead, which cannot disagree with the weights.
SHAPE_KWARGS = {"mapping_layers", "mapping_fmaps", "label_fmaps"}
CONVERTED_KWARGS = {
    "latent_size",
    "label_size",
    "dlatent_size",
    "resolution",
    "num_channels",
    "mapping_lrmul",
    "fmap_base",
    "fmap_max",
    "fmap_min",
    "num_fp16_res",
    "conv_clamp",
    "resample_kernel",
    "use_noise",
}
# Checked against the only value our generator implements.
FIXED_KWARGS = {
    "architecture": "skip",
    "nonlinearity": "lrelu",
    "mapping_nonlinearity": "lrelu",
    "normalize_latents": True,
    "fmap_decay": 1.0,
}
IGNORED_VARIABLES = {"lod", "synthesis/lod"}  # progressive-growing level, always 0 here


def is_tf_pickle(obj: Any) -> bool:
    """A ``(G, D, Gs)`` tuple of TF networks, or one TF network alone."""
    if isinstance(obj, tuple) and len(obj) == 3:
        return all(isinstance(net, TFNetworkStub) for net in obj)
    return isinstance(obj, TFNetworkStub)


def _variables(net: TFNetworkStub, prefix: str = "") -> dict[str, np.ndarray]:
    """Every variable of ``net`` and its components, keyed ``component/scope/name``."""
    out = {prefix + name: value for name, value in net.variables.items()}
    for name, comp in net.components.items():
        out.update(_variables(comp, f"{prefix}{name}/"))
    return out


def _check_kwargs(kwargs: dict[str, Any], params: dict[str, np.ndarray]) -> None:
    """Refuse the TF configurations our generator does not implement, saying which."""
    known = RUNTIME_KWARGS | SHAPE_KWARGS | CONVERTED_KWARGS | set(FIXED_KWARGS)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"unsupported TF generator option(s) {unknown}")
    for key, want in FIXED_KWARGS.items():
        if key in kwargs and kwargs[key] != want:
            raise ValueError(
                f"TF generator has {key}={kwargs[key]!r}; only {key}={want!r} is supported "
                "(StyleGAN2 config-e/f)"
            )
    if any(re.fullmatch(r"synthesis/ToRGB_lod\d+/.*", k) for k in params):
        raise ValueError("TF generator uses the 'orig' architecture; only 'skip' is supported")
    if "synthesis/4x4/Conv/mod_weight" not in params:
        raise ValueError(
            "the TF network has no modulated convolutions: not a StyleGAN2 generator "
            "(StyleGAN1 pickles are not supported)"
        )
    if any(k.startswith("mapping/LabelConcat/") for k in params):
        raise ValueError(
            "conditional TF StyleGAN2 generators (LabelConcat) are not supported; "
            "conditional stylegan2-ada pickles (LabelEmbed) are"
        )


def _init_kwargs(kwargs: dict[str, Any], params: dict[str, np.ndarray]) -> dict[str, Any]:
    """Our constructor kwargs from TF's static kwargs (defaults as TF's) and weight shapes."""
    num_layers = 0
    while f"mapping/Dense{num_layers}/weight" in params:
        num_layers += 1
    if num_layers == 0:
        raise ValueError("the TF network has no mapping layers (mapping/Dense0/weight)")
    mapping: dict[str, Any] = {
        "num_layers": num_layers,
        "lr_multiplier": kwargs.get("mapping_lrmul", 0.01),
    }
    if num_layers > 1:
        mapping["layer_features"] = int(params["mapping/Dense0/weight"].shape[1])
    if "mapping/LabelEmbed/weight" in params:
        mapping["embed_features"] = int(params["mapping/LabelEmbed/weight"].shape[1])
    synthesis: dict[str, Any] = {
        "channel_base": 2 * int(kwargs.get("fmap_base", 16 << 10)),
        "channel_max": int(kwargs.get("fmap_max", 512)),
        "num_fp16_res": int(kwargs.get("num_fp16_res") or 0),
        "conv_clamp": kwargs.get("conv_clamp"),
        "use_noise": bool(kwargs.get("use_noise", True)),
    }
    taps = kwargs.get("resample_kernel")
    if taps is not None and list(taps) != list(DEFAULT_FILTER):
        synthesis["resample_filter"] = [float(t) for t in taps]
    core = {
        "z_dim": int(kwargs.get("latent_size", 512)),
        "c_dim": int(kwargs.get("label_size", 0)),
        "w_dim": int(kwargs.get("dlatent_size", 512)),
        "img_resolution": int(kwargs.get("resolution", 1024)),
        "img_channels": int(kwargs.get("num_channels", 3)),
    }
    smallest = min(synthesis["channel_base"] // core["img_resolution"], synthesis["channel_max"])
    if kwargs.get("fmap_min", 1) > smallest:
        raise ValueError(f"TF generator has fmap_min={kwargs['fmap_min']}, which is not supported")
    return {**core, "mapping_kwargs": mapping, "synthesis_kwargs": synthesis}


def _converters(p: dict[str, np.ndarray]) -> list[tuple[str, Callable[..., np.ndarray]]]:
    """(our key pattern, TF variable -> our layout), in the manner of NVIDIA's legacy.py."""

    def scope(res: str, layer: str) -> str:
        if layer == "conv0":
            return f"synthesis/{res}x{res}/Conv0_up"
        if layer == "conv1":
            return "synthesis/4x4/Conv" if res == "4" else f"synthesis/{res}x{res}/Conv1"
        return f"synthesis/{res}x{res}/ToRGB"

    def weight(res: str, layer: str) -> np.ndarray:
        w = p[f"{scope(res, layer)}/weight"]  # [kh, kw, I, O]
        return (w[::-1, ::-1] if layer == "conv0" else w).transpose(3, 2, 0, 1)

    def noise(res: str, layer: str) -> np.ndarray:
        index = 2 * int(math.log2(int(res))) - (5 if layer == "conv0" else 4)
        return p[f"synthesis/noise{index}"][0, 0]

    layer = r"synthesis\.b(\d+)\.(conv0|conv1|torgb)"
    return [
        (r"mapping\.w_avg", lambda: p["dlatent_avg"]),
        (r"mapping\.embed\.weight", lambda: p["mapping/LabelEmbed/weight"].T),
        (r"mapping\.embed\.bias", lambda: p["mapping/LabelEmbed/bias"]),
        (r"mapping\.fc(\d+)\.weight", lambda i: p[f"mapping/Dense{i}/weight"].T),
        (r"mapping\.fc(\d+)\.bias", lambda i: p[f"mapping/Dense{i}/bias"]),
        (r"synthesis\.b4\.const", lambda: p["synthesis/4x4/Const/const"][0]),
        (layer + r"\.weight", weight),
        (layer + r"\.bias", lambda r, n: p[f"{scope(r, n)}/bias"]),
        (layer + r"\.affine\.weight", lambda r, n: p[f"{scope(r, n)}/mod_weight"].T),
        (layer + r"\.affine\.bias", lambda r, n: p[f"{scope(r, n)}/mod_bias"] + 1),
        (layer + r"\.noise_strength", lambda r, n: p[f"{scope(r, n)}/noise_strength"]),
        (layer + r"\.noise_const", noise),
    ]


class _Recorder(dict):
    """The TF variables, remembering which ones the conversion read."""

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        super().__init__(params)
        self.used: set[str] = set()

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self:
            raise ValueError(f"the TF network lacks the variable '{key}'")
        self.used.add(key)
        return super().__getitem__(key)


def generator_from_tf(obj: Any) -> Generator:
    """Convert ``Gs`` of an unpickled TF-era NVIDIA pickle into our Generator.

    Raises:
        ValueError: not a TF StyleGAN2 generator, or a configuration we do not implement
            (architecture other than 'skip', StyleGAN1, LabelConcat conditioning, ...).
    """
    net = obj[2] if isinstance(obj, tuple) else obj
    if net.version < 4:
        raise ValueError(
            f"TF network pickle version {net.version} is too old: only StyleGAN2 (version 4) "
            "pickles are supported"
        )
    try:
        params = {k: np.asarray(v, dtype=np.float32) for k, v in _variables(net).items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the TF network's variables are not numeric arrays: {exc}") from exc
    kwargs = net.static_kwargs
    _check_kwargs(kwargs, params)
    config = _init_kwargs(kwargs, params)
    check_generator_kwargs(config)
    G = Generator(**config)
    recorder = _Recorder(params)
    rules = _converters(recorder)
    tensors = {}
    for key, own in G.state_dict().items():
        if key.endswith("resample_filter"):
            tensors[key] = own
            continue
        for pattern, convert in rules:
            match = re.fullmatch(pattern, key)
            if match:
                try:
                    value = np.array(convert(*match.groups()), dtype=np.float32, order="C")
                except IndexError as exc:
                    raise ValueError(f"the TF variable for '{key}' has a wrong shape") from exc
                tensors[key] = torch.from_numpy(value)
                break
        else:
            raise ValueError(f"no TF variable converts to '{key}'")
    unused = sorted(set(params) - recorder.used - IGNORED_VARIABLES)
    if unused:
        raise ValueError(f"the TF network has variables this converter does not know: {unused[:6]}")
    load_state_strict(G, tensors)
    logger.info("converted TF network %r (%d variables)", net.name, len(params))
    return G
