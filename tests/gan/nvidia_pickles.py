"""Write our generators as NVIDIA's files, for tests: PyTorch training snapshots (``G``,
``D``, ``G_ema``, ...) and TF-era ``(G, D, Gs)`` pickles.

Each module becomes what NVIDIA's ``torch_utils.persistence`` pickles: a call of
``_reconstruct_persistent_obj(meta)`` whose ``meta`` holds the class name, a stand-in for the
embedded source and the module's ``__dict__`` (parameters, buffers, submodules, and, for the
top module, the constructor kwargs). Our module and class names equal NVIDIA's, so the
result has the layout of a real file; the loader must rebuild it without calling anything.
Kwargs are recorded in ``dnnlib.util.EasyDict`` where NVIDIA's training scripts put them.

A TF-era network is a ``dnnlib.tflib.network.Network`` whose state holds its static kwargs
and its variables in TF's layouts (the inverse of NVIDIA's conversion, see
``formats/tf_pkl.py``).
"""

from __future__ import annotations

import pickle
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn


def _reconstruct_persistent_obj(meta):  # stands in for NVIDIA's; the loader never calls it
    raise AssertionError("the loader must not call the pickle's reconstruction function")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"


class EasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict``, the dict NVIDIA's scripts keep kwargs in."""

    __module__ = "dnnlib.util"


class Network:
    """Pickles as TF-era ``dnnlib.tflib.network.Network`` (NEWOBJ, then its state)."""

    __module__ = "dnnlib.tflib.network"

    def __init__(self, state: dict) -> None:
        self._state = state

    def __getstate__(self) -> dict:
        return self._state


class Persistent:
    """Pickles as ``torch_utils.persistence._reconstruct_persistent_obj(meta)``."""

    def __init__(self, class_name: str, state: dict) -> None:
        self.meta = {
            "type": "class",
            "version": 6,
            "module_src": "# stripped",
            "class_name": class_name,
            "state": state,
        }

    @property
    def state(self) -> dict:
        return self.meta["state"]

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


def module_stub(module: nn.Module) -> Persistent:
    """The persistent form of ``module`` and its submodules (tensors as they are)."""
    state = {
        "training": False,
        "_parameters": {k: v for k, v in module._parameters.items() if v is not None},
        "_buffers": {k: v for k, v in module._buffers.items() if v is not None},
        "_modules": {k: module_stub(m) for k, m in module._modules.items()},
    }
    return Persistent(type(module).__name__, state)


def stylegan3_kwargs(G: nn.Module) -> dict[str, Any]:
    """Constructor kwargs as NVIDIA's stylegan3 ``train.py`` records them: synthesis flat."""
    kw = G.init_kwargs
    return {
        **{k: kw[k] for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")},
        "mapping_kwargs": dict(kw["mapping_kwargs"]),
        **kw["synthesis_kwargs"],
    }


def stylegan2_ada_kwargs(G: nn.Module) -> dict[str, Any]:
    """Constructor kwargs as stylegan2-ada-pytorch's ``train.py`` records them: its
    ``G_kwargs`` (``z_dim``, ``w_dim`` and two nested EasyDicts), then the dataset's
    ``c_dim``, ``img_resolution`` and ``img_channels`` (``construct_class_by_name(**G_kwargs,
    **common_kwargs)``; ``class_name`` is consumed there)."""
    kw = G.init_kwargs
    return {
        "z_dim": kw["z_dim"],
        "w_dim": kw["w_dim"],
        "mapping_kwargs": EasyDict(kw["mapping_kwargs"]),
        "synthesis_kwargs": EasyDict(kw["synthesis_kwargs"]),
        **{k: kw[k] for k in ("c_dim", "img_resolution", "img_channels")},
    }


def stylegan2_by_stylegan3_repo_kwargs(G: nn.Module) -> dict[str, Any]:
    """Constructor kwargs as the stylegan3 repo's ``train.py --cfg=stylegan2`` records them:
    synthesis options flat, and its ``fused_modconv_default='inference_only'``."""
    kw = G.init_kwargs
    return {
        "z_dim": kw["z_dim"],
        "w_dim": kw["w_dim"],
        "mapping_kwargs": EasyDict(kw["mapping_kwargs"]),
        **kw["synthesis_kwargs"],
        "fused_modconv_default": "inference_only",
        **{k: kw[k] for k in ("c_dim", "img_resolution", "img_channels")},
    }


def generator_stub(G: nn.Module, init_kwargs: dict[str, Any]) -> Persistent:
    stub = module_stub(G)
    stub.state["_init_kwargs"] = dict(init_kwargs)
    stub.state["_init_args"] = ()
    return stub


@contextmanager
def _nvidia_modules() -> Iterator[None]:
    """Make the globals NVIDIA's files name importable while pickling, as pickle requires."""
    fakes = {
        "torch_utils.persistence": _reconstruct_persistent_obj,
        "dnnlib.util": EasyDict,
        "dnnlib.tflib.network": Network,
    }
    names = ("torch_utils", "dnnlib", "dnnlib.tflib", *fakes)
    saved = {name: sys.modules.get(name) for name in names}
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    for module, obj in fakes.items():
        setattr(sys.modules[module], obj.__name__, obj)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def snapshot_bytes(G_stub: Persistent) -> bytes:
    """A training snapshot dict around a generator stub, pickled."""
    snapshot = {
        "G": G_stub,
        "D": None,
        "G_ema": G_stub,
        "augment_pipe": None,
        "training_set_kwargs": None,
    }
    with _nvidia_modules(), torch.no_grad():
        return pickle.dumps(snapshot, protocol=pickle.HIGHEST_PROTOCOL)


# ---------------------------------------------------------------------------- TF-era pickles


def tf_variables(G: nn.Module) -> tuple[list, list, list]:
    """The inverse of NVIDIA's TF conversion: (Gs, G_mapping, G_synthesis) variables."""
    sd = {k: v.numpy() for k, v in G.state_dict().items()}
    mapping = []
    if G.c_dim:
        mapping += [
            ("LabelEmbed/weight", sd["mapping.embed.weight"].T),
            ("LabelEmbed/bias", sd["mapping.embed.bias"]),
        ]
    for i in range(G.mapping.num_layers):
        mapping += [
            (f"Dense{i}/weight", sd[f"mapping.fc{i}.weight"].T),
            (f"Dense{i}/bias", sd[f"mapping.fc{i}.bias"]),
        ]
    synthesis = [("lod", np.float32(0)), ("4x4/Const/const", sd["synthesis.b4.const"][None])]
    noise = 0
    for res in G.synthesis.block_resolutions:
        layers = (
            [("conv1", "4x4/Conv")]
            if res == 4
            else [("conv0", f"{res}x{res}/Conv0_up"), ("conv1", f"{res}x{res}/Conv1")]
        )
        for name, scope in [*layers, ("torgb", f"{res}x{res}/ToRGB")]:
            p = f"synthesis.b{res}.{name}"
            w = sd[f"{p}.weight"].transpose(2, 3, 1, 0)  # [kh, kw, I, O]
            synthesis += [
                (f"{scope}/weight", np.ascontiguousarray(w[::-1, ::-1] if name == "conv0" else w)),
                (f"{scope}/bias", sd[f"{p}.bias"]),
                (f"{scope}/mod_weight", sd[f"{p}.affine.weight"].T),
                (f"{scope}/mod_bias", sd[f"{p}.affine.bias"] - 1),
            ]
            if name != "torgb":
                synthesis += [
                    (f"{scope}/noise_strength", sd[f"{p}.noise_strength"]),
                    (f"noise{noise}", sd[f"{p}.noise_const"][None, None]),
                ]
                noise += 1
    top = [("lod", np.float32(0)), ("dlatent_avg", sd["mapping.w_avg"])]
    return top, mapping, synthesis


def tf_pickle_bytes(G: nn.Module, static_kwargs: dict[str, Any], *, version: int = 4) -> bytes:
    """A ``(G, D, Gs)`` tuple as NVIDIA's TF StyleGAN2 code pickled it, ``G`` and ``Gs``
    holding ``G``'s weights and ``static_kwargs`` (what ``tflib.Network`` was built with)."""
    top, mapping, synthesis = tf_variables(G)

    def net(name: str, variables: list, components: dict | None = None) -> Network:
        return Network(
            {
                "version": version,
                "name": name,
                "static_kwargs": dict(static_kwargs),
                "components": EasyDict(components or {}),
                "build_module_src": "# stripped",
                "build_func_name": name,
                "variables": variables,
            }
        )

    def generator() -> Network:
        return net(
            "G",
            top,
            {"mapping": net("G_mapping", mapping), "synthesis": net("G_synthesis", synthesis)},
        )

    D = net("D", [("Output/weight", np.zeros((16, 1), np.float32))])
    with _nvidia_modules():
        return pickle.dumps((generator(), D, generator()), protocol=3)
