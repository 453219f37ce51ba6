"""NVIDIA network pickles (stylegan2-ada-pytorch, the stylegan3 repo, DragGAN's models).

The pickle is read with the restricted unpickler; ``G_ema``'s recorded constructor kwargs
and tensors then build our own `Generator`, whose state-dict keys equal NVIDIA's.
"""

from __future__ import annotations

from typing import Any

import torch

from ..stylegan2 import Generator
from .safe_pickle import PersistentStub

CORE_KEYS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
MAPPING_KEYS = {
    "num_layers",
    "embed_features",
    "layer_features",
    "activation",
    "lr_multiplier",
    "w_avg_beta",
}
SYNTHESIS_KEYS = {
    "channel_base",
    "channel_max",
    "num_fp16_res",
    "conv_clamp",
    "architecture",
    "resample_filter",
    "use_noise",
    "activation",
    "fp16_channels_last",
    "kernel_size",
}
# Options that change only how NVIDIA's code runs, never what it computes.
IGNORED_KEYS = {"fused_modconv_default", "channels_last"}
STYLEGAN3_CLASSES = {"SynthesisInput", "SynthesisLayer_stylegan3"}


def is_nvidia_pickle(obj: Any) -> bool:
    """A dict with a persistent ``G_ema`` (or ``G``), as NVIDIA's training loop saves."""
    return isinstance(obj, dict) and any(
        isinstance(obj.get(k), PersistentStub) for k in ("G_ema", "G")
    )


def _split_kwargs(kwargs: dict) -> tuple[dict, dict, dict]:
    """Core, mapping and synthesis kwargs; both repo layouts (nested or flat) are accepted."""
    kwargs = dict(kwargs)
    missing = [k for k in CORE_KEYS[:4] if k not in kwargs]
    if missing:
        raise ValueError(f"the pickle's generator lacks constructor arguments {missing}")
    core = {k: int(kwargs.pop(k)) for k in CORE_KEYS if k in kwargs}
    mapping = dict(kwargs.pop("mapping_kwargs", None) or {})
    synthesis = dict(kwargs.pop("synthesis_kwargs", None) or {})
    synthesis.update(kwargs)  # the stylegan3 repo passes synthesis options flat
    for name, given, allowed in (
        ("mapping", mapping, MAPPING_KEYS),
        ("synthesis", synthesis, SYNTHESIS_KEYS),
    ):
        unknown = sorted(set(given) - allowed - IGNORED_KEYS)
        if unknown:
            raise ValueError(f"unsupported {name} option(s) {unknown} in the pickle's generator")
    synthesis = {k: v for k, v in synthesis.items() if k not in IGNORED_KEYS}
    mapping = {k: v for k, v in mapping.items() if k not in IGNORED_KEYS}
    return core, mapping, synthesis


def generator_from_stub(stub: PersistentStub) -> Generator:
    """Build our Generator from a persistent ``Generator`` stub and load its tensors."""
    if stub.class_name != "Generator":
        raise ValueError(f"expected a Generator in the pickle, found {stub.class_name!r}")
    if stub.class_names() & STYLEGAN3_CLASSES or "networks_stylegan3" in stub.module_src:
        raise ValueError(
            "this is a StyleGAN3 pickle; StyleGAN3 generators are not supported yet "
            "(StyleGAN2 pickles from stylegan2-ada-pytorch, stylegan3 or DragGAN are)"
        )
    core, mapping, synthesis = _split_kwargs(stub.init_kwargs)
    G = Generator(**core, mapping_kwargs=mapping, synthesis_kwargs=synthesis)
    tensors = {k: v.float() for k, v in stub.named_tensors().items()}
    load_state_strict(G, tensors)
    return G


def load_state_strict(G: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Load every tensor, requiring the exact key set and shapes (a clear error otherwise)."""
    own = G.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"the weights do not fit the generator they describe: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}"
        )
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"tensor {k} has shape {list(v.shape)}, expected {list(own[k].shape)}")
    G.load_state_dict(tensors, strict=True)


def generator_from_pickle(obj: Any) -> Generator:
    """``G_ema`` (else ``G``) of an unpickled NVIDIA training snapshot."""
    stub = obj.get("G_ema") if isinstance(obj.get("G_ema"), PersistentStub) else obj.get("G")
    return generator_from_stub(stub)
