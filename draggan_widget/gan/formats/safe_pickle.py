"""A pickle reader that never runs code from the file.

NVIDIA's network pickles store each module as a call to
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta`` holds the
module's Python source, class name and ``__dict__``; ``pickle.load`` would execute that
source. Here every global the stream names is looked up in an allow-list of constructors
that only build data (tensors, dicts, numpy arrays). NVIDIA's reconstruction call becomes a
`PersistentStub` that keeps the class name, the constructor kwargs and the state; TF-era
``dnnlib.tflib.Network`` objects become a `TFNetworkStub`. Anything else is refused, naming
the global, before it is called.
"""

from __future__ import annotations

import collections
import contextlib
import io
import pickle
import struct
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np
import torch


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle names a global that is not on the allow-list; nothing from it was run.

    Also a ValueError, like every other bad-file error of `load_generator`, so that callers
    who catch ValueError for "this file is unusable" catch this too.
    """


class PersistentStub:
    """What NVIDIA's ``_reconstruct_persistent_obj(meta)`` would have built, as plain data."""

    def __init__(self, meta: Any) -> None:
        if not isinstance(meta, dict) or not isinstance(meta.get("state"), dict):
            raise pickle.UnpicklingError(
                "malformed persistent object: expected a dict with a 'state'"
            )
        self.class_name: str = str(meta.get("class_name", ""))
        self.module_src: str = str(meta.get("module_src", ""))
        self.state: dict = meta["state"]

    @property
    def init_kwargs(self) -> dict:
        return dict(self.state.get("_init_kwargs") or {})

    def named_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and buffers of this module and its submodules, keyed like a state dict."""
        out: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if isinstance(value, torch.Tensor):
                    out[prefix + name] = value
        for name, child in (self.state.get("_modules") or {}).items():
            if isinstance(child, PersistentStub):
                out.update(child.named_tensors(f"{prefix}{name}."))
        return out

    def class_names(self) -> set[str]:
        """Class names of this module and all its submodules (to recognise architectures)."""
        names = {self.class_name}
        for child in (self.state.get("_modules") or {}).values():
            if isinstance(child, PersistentStub):
                names |= child.class_names()
        return names


class TFNetworkStub:
    """The state of a TF-era ``dnnlib.tflib.network.Network`` (name, kwargs, variables).

    Unpickling calls ``__new__`` and then ``__setstate__``, never ``__init__``; a stream that
    omits the state leaves `state` at the empty class default.
    """

    state: dict = {}  # replaced by __setstate__, never mutated

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("malformed TF network: expected a dict state")
        self.state = state

    @property
    def version(self) -> int:
        """dnnlib's pickle format version: 4 for StyleGAN2, lower for older networks."""
        return int(self.state.get("version", 0))

    @property
    def name(self) -> str:
        return str(self.state.get("name", ""))

    @property
    def static_kwargs(self) -> dict:
        return dict(self.state.get("static_kwargs") or {})

    @property
    def variables(self) -> dict[str, np.ndarray]:
        return {str(k): np.asarray(v) for k, v in self.state.get("variables", [])}

    @property
    def components(self) -> dict[str, TFNetworkStub]:
        comps = self.state.get("components") or {}
        return {k: v for k, v in dict(comps).items() if isinstance(v, TFNetworkStub)}


def describe(obj: Any) -> str:
    """A short account of an unpickled object, for errors that say what a file held."""
    if isinstance(obj, PersistentStub):
        return f"an NVIDIA network of class {obj.class_name!r}"
    if isinstance(obj, TFNetworkStub):
        return f"a TF network named {obj.name!r}"
    if isinstance(obj, dict):
        keys = [str(k) for k in list(obj)[:8]]
        return f"a dict with keys {keys}{'...' if len(obj) > 8 else ''}"
    if isinstance(obj, (tuple, list)):
        kinds = [type(x).__name__ for x in obj[:4]]
        return f"a {type(obj).__name__} of {len(obj)} items {kinds}{'...' if len(obj) > 4 else ''}"
    return f"a {type(obj).__name__}"


class AttrDict(dict):
    """Stands in for ``dnnlib.util.EasyDict``: a dict, nothing more."""


def _weights_only_reason(exc: BaseException) -> str:
    """The sentence of torch's weights-only error that names the refused global, if any.

    The rest of torch's text explains how to allow the global anyway: wrong advice here.
    """
    sentences = [s.strip() for s in str(exc).replace("\n", ". ").split(". ") if s.strip()]
    found = next((s for s in sentences if "GLOBAL" in s), None)
    if found is not None:
        return found.removeprefix("WeightsUnpickler error: ").rstrip(".")
    return sentences[-1] if sentences else repr(exc)


def torch_load_weights_only(f: Any, *, extra_globals: Sequence[type] = ()) -> Any:
    """``torch.load(f, weights_only=True)`` onto the CPU, with errors this package can report.

    torch's restricted unpickler reads both the zip and the legacy format. Its refusals come
    as a generic UnpicklingError whose text advises ``weights_only=False``, the one thing a
    user must not do with an untrusted file; here they become `UnsafePickleError` naming
    the refused global.

    Args:
        f: a path or a binary file object.
        extra_globals: plain-data classes to allow besides tensors and containers (e.g.
            ``argparse.Namespace``, which training scripts save with their checkpoints).

    Raises:
        UnsafePickleError: the data names a global torch does not allow; nothing was run.
        pickle.UnpicklingError: truncated or corrupt data.
    """
    allow: Any = contextlib.nullcontext()
    if extra_globals and hasattr(torch.serialization, "safe_globals"):  # torch >= 2.5
        allow = torch.serialization.safe_globals(list(extra_globals))
    try:
        with allow:
            return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _weights_only_reason(exc)
        if "GLOBAL" in reason:
            raise UnsafePickleError(
                f"refused to load torch data ({reason}); nothing was run"
            ) from None
        raise pickle.UnpicklingError(f"cannot read torch data: {reason}") from exc
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        struct.error,
        KeyError,
        IndexError,
        AttributeError,
        TypeError,
        UnicodeDecodeError,
    ) as exc:
        raise pickle.UnpicklingError(f"truncated or corrupt torch data ({exc})") from exc


def _load_storage(data: bytes) -> Any:
    """Tensors in plain pickles carry their storage as legacy ``torch.save`` bytes."""
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("malformed tensor storage: expected bytes")
    return torch_load_weights_only(io.BytesIO(bytes(data)))


def _rebuild_parameter(
    data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None
) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("malformed parameter: expected a tensor")
    return data


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> torch.Tensor:
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError("malformed tensor: its storage is not a torch storage")
    return torch._utils._rebuild_tensor_v2(
        storage, offset, size, stride, False, collections.OrderedDict()
    )


try:  # numpy >= 2 moved the pickle helpers; old pickles name either module
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentStub,
    ("dnnlib.tflib.network", "Network"): TFNetworkStub,
    ("dnnlib.util", "EasyDict"): AttrDict,
    ("dnnlib", "EasyDict"): AttrDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "device"): torch.device,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    ALLOWED[(_module, "scalar")] = _multiarray.scalar
    ALLOWED[(_module, "_reconstruct")] = _multiarray._reconstruct
for _dtype in (
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
):
    ALLOWED[("torch", _dtype)] = getattr(torch, _dtype)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come from `ALLOWED` only."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused to load '{module}.{name}': the file asks to call it, and only "
                "tensors, arrays, dicts and NVIDIA network state are allowed; nothing was run"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused a persistent id: this is not a plain network pickle")


def safe_load(f: BinaryIO) -> Any:
    """Unpickle ``f`` with `RestrictedUnpickler`.

    Raises:
        UnsafePickleError: the stream names a global outside the allow-list.
        pickle.UnpicklingError: the stream is truncated or malformed.
    """
    try:
        return RestrictedUnpickler(f).load()
    except (pickle.UnpicklingError, ValueError, TypeError, RuntimeError):
        raise
    except (EOFError, IndexError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise pickle.UnpicklingError(f"the pickle is truncated or corrupt ({exc!r})") from exc
