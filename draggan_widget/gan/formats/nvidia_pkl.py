"""NVIDIA network pickles (stylegan2-ada-pytorch, the stylegan3 repo, DragGAN's models).

The pickle is read with the restricted unpickler; ``G_ema``'s recorded constructor kwargs
and tensors then build our own `Generator`, whose state-dict keys equal NVIDIA's.

StyleGAN-Human's generators (2:1 portraits) are StyleGAN2 with one more option, ``square``.
Released files do not always record it, so the layout is read from the first constant's
shape, and a kwarg that contradicts the tensors is an error rather than a guess.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..stylegan2 import Generator
from ..stylegan3 import Generator as StyleGAN3Generator
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
CONST_KEY = "synthesis.b4.const"
STYLEGAN3_CLASSES = {"SynthesisInput", "SynthesisLayer_stylegan3"}
STYLEGAN3_MAPPING_KEYS = {"num_layers", "lr_multiplier", "w_avg_beta"}
STYLEGAN3_SYNTHESIS_KEYS = {
    "channel_base",
    "channel_max",
    "num_layers",
    "num_critical",
    "first_cutoff",
    "first_stopband",
    "last_stopband_rel",
    "margin_size",
    "output_scale",
    "num_fp16_res",
    "conv_kernel",
    "filter_size",
    "lrelu_upsampling",
    "use_radial_filters",
    "conv_clamp",
    "magnitude_ema_beta",
}
# StyleGAN3's fine-tuning options (Freeze-M, Freeze-E): they change training, not the network.
STYLEGAN3_IGNORED_KEYS = {"freeze_layers", "freeze_embed"}


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


def _square_from_tensors(tensors: dict[str, torch.Tensor], said: Optional[bool]) -> bool:
    """Whether the generator draws square images (else StyleGAN-Human's 2:1 portraits),
    from the shape of its 4x4 constant; ``said`` is the pickle's own ``square``, if any.

    Raises:
        ValueError: a constant of another shape, or one that contradicts ``said``.
    """
    const = tensors.get(CONST_KEY)
    if const is None:
        return True if said is None else said  # the missing tensor is reported on loading
    layout = tuple(const.shape[1:])
    if const.ndim != 3 or layout not in ((4, 4), (4, 2)):
        raise ValueError(
            f"tensor {CONST_KEY} has shape {list(const.shape)}; a StyleGAN2 generator has "
            "[C, 4, 4] (square images) or [C, 4, 2] (StyleGAN-Human's 2:1 portraits): "
            "the file is damaged or of another architecture"
        )
    square = layout == (4, 4)
    if said is not None and bool(said) != square:
        raise ValueError(
            f"the pickle says square={said}, but its tensor {CONST_KEY} has shape "
            f"{list(const.shape)} ({'square' if square else '2:1 portrait'} images): "
            "the file's kwargs and weights disagree; re-export it from the network it came from"
        )
    return square


def _load_layout_checked(G: Generator, tensors: dict[str, torch.Tensor]) -> None:
    """`load_state_strict`, saying which layout a portrait generator's shapes contradict."""
    try:
        load_state_strict(G, tensors)
    except ValueError as exc:
        if G.square:
            raise
        raise ValueError(
            f"its {CONST_KEY} makes a {G.img_height}x{G.img_width} portrait generator "
            f"(StyleGAN-Human's layout, every block res x res/2), but {exc}: the file mixes "
            "square and portrait tensors, so it is damaged or was assembled by hand"
        ) from exc


def generator_from_stub(stub: PersistentStub) -> Generator | StyleGAN3Generator:
    """Build our Generator (StyleGAN2 or 3) from a persistent ``Generator`` stub and load its
    tensors."""
    if stub.class_name != "Generator":
        raise ValueError(f"expected a Generator in the pickle, found {stub.class_name!r}")
    if is_stylegan3(stub):
        return stylegan3_from_stub(stub)
    kwargs = dict(stub.init_kwargs)
    said = kwargs.pop("square", None)  # StyleGAN-Human's option; often absent
    core, mapping, synthesis = _split_kwargs(kwargs)
    tensors = {k: v.float() for k, v in stub.named_tensors().items()}
    square = _square_from_tensors(tensors, said)
    G = Generator(**core, mapping_kwargs=mapping, synthesis_kwargs=synthesis, square=square)
    _load_layout_checked(G, tensors)
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


def generator_from_pickle(obj: Any) -> Generator | StyleGAN3Generator:
    """``G_ema`` (else ``G``) of an unpickled NVIDIA training snapshot."""
    stub = obj.get("G_ema") if isinstance(obj.get("G_ema"), PersistentStub) else obj.get("G")
    return generator_from_stub(stub)


# ---------------------------------------------------------------------------- StyleGAN3


def is_stylegan3(stub: PersistentStub) -> bool:
    """A StyleGAN3 generator: its Fourier input module, by class name or by tensor name
    (the embedded source, which names ``networks_stylegan3``, may have been stripped)."""
    if stub.class_names() & STYLEGAN3_CLASSES or "networks_stylegan3" in stub.module_src:
        return True
    return any(k.startswith("synthesis.input.") for k in stub.named_tensors())


def _split_stylegan3_kwargs(kwargs: dict) -> tuple[dict, dict, dict]:
    """Core, mapping and synthesis kwargs of a StyleGAN3 ``Generator`` (synthesis flat)."""
    kwargs = dict(kwargs)
    missing = [k for k in CORE_KEYS[:4] if k not in kwargs]
    if missing:
        raise ValueError(f"the pickle's StyleGAN3 generator lacks constructor arguments {missing}")
    core = {k: int(kwargs.pop(k)) for k in CORE_KEYS if k in kwargs}
    mapping = dict(kwargs.pop("mapping_kwargs", None) or {})
    synthesis = dict(kwargs.pop("synthesis_kwargs", None) or {})
    synthesis.update(kwargs)
    for name, given, allowed in (
        ("mapping", mapping, STYLEGAN3_MAPPING_KEYS),
        ("synthesis", synthesis, STYLEGAN3_SYNTHESIS_KEYS),
    ):
        unknown = sorted(set(given) - allowed - STYLEGAN3_IGNORED_KEYS - IGNORED_KEYS)
        if unknown:
            raise ValueError(
                f"unsupported StyleGAN3 {name} option(s) {unknown} in the pickle's generator"
            )
    drop = STYLEGAN3_IGNORED_KEYS | IGNORED_KEYS
    mapping = {k: v for k, v in mapping.items() if k not in drop}
    synthesis = {k: v for k, v in synthesis.items() if k not in drop}
    return core, mapping, synthesis


def stylegan3_from_stub(stub: PersistentStub) -> StyleGAN3Generator:
    """Our StyleGAN3 generator from a persistent ``Generator`` stub, with its tensors.

    The resampling filters come from the file (they are buffers), so a file made with other
    filter settings draws what it drew where it was made.

    Raises:
        ValueError: unknown options, or tensors that do not fit the architecture the
            options describe (a damaged or hand-edited file).
    """
    core, mapping, synthesis = _split_stylegan3_kwargs(stub.init_kwargs)
    try:
        G = StyleGAN3Generator(**core, mapping_kwargs=mapping, synthesis_kwargs=synthesis)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the pickle's StyleGAN3 options do not make a generator: {exc}") from exc
    tensors = {k: v.float() for k, v in stub.named_tensors().items()}
    try:
        load_state_strict(G, tensors)
    except ValueError as exc:
        raise ValueError(
            f"this StyleGAN3 (config {G.config_name}) file is incomplete or damaged, {exc}; "
            "download or export it again"
        ) from exc
    return G
