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
import io
import pickle
from typing import Any, BinaryIO

import numpy as np
import torch


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that is not on the allow-list; nothing from it was run."""


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
    """The state of a TF-era ``dnnlib.tflib.network.Network`` (name, kwargs, variables)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("malformed TF network: expected a dict state")
        self.state = state

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


class AttrDict(dict):
    """Stands in for ``dnnlib.util.EasyDict``: a dict, nothing more."""


def _load_storage(data: bytes) -> Any:
    """Tensors in plain pickles carry their storage as legacy ``torch.save`` bytes."""
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("malformed tensor storage: expected bytes")
    return torch.load(io.BytesIO(bytes(data)), weights_only=True)


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
