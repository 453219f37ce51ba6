"""A pickle reader that never runs code from the file.

NVIDIA's network pickles store each module as a call to
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta`` holds the
module's Python source, class name and ``__dict__``; ``pickle.load`` would execute that
source. Here every global the stream names is looked up in an allow-list of constructors
that only build data (tensors, dicts, numpy arrays). NVIDIA's reconstruction call becomes a
`PersistentStub` that keeps the class name, the constructor kwargs and the state; TF-era
``dnnlib.tflib.Network`` objects become a `TFNetworkStub`. Anything else is refused, naming
the global, before it is called.

Refusing globals is not enough: the stream also sets objects' state (``BUILD``) and creates
instances of classes (``NEWOBJ``). numpy would take a dtype's state that adds an object field
and then read raw bytes from the file as object pointers (a crash, or worse); setting state on
a class would change it for every later load in the process. So the stream is read by
Python's own pure-Python unpickler, whose opcodes can be overridden: ``BUILD`` is allowed only
on a TF network stub, on a fresh plain numeric dtype, and on a fresh array with a checked
state; ``NEWOBJ`` only for the stub and dict classes; a tensor must fit in its storage; and no
read may ask for more bytes than the file holds.
"""

from __future__ import annotations

import collections
import contextlib
import io
import math
import os
import pickle
import struct
import warnings
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np
import torch

from .checks import WeightsFileError


class UnsafePickleError(pickle.UnpicklingError, WeightsFileError):
    """The pickle asks for something outside the allow-list (a global, an object's state, an
    instance); nothing from it was run.

    Also a ValueError (through `WeightsFileError`), like every other bad-file error of
    `load_generator`, so that callers who catch ValueError for "this file is unusable" catch
    this too.
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

    def submodules(self) -> list[tuple[str, PersistentStub]]:
        """``(dotted name, stub)`` of this module and every module below it, itself first.

        Raises:
            pickle.UnpicklingError: a module appears twice, or contains itself: a pickle can
                build such a graph (NVIDIA's never do), and walking it would never end or
                take exponential time.
        """
        out: list[tuple[str, PersistentStub]] = []
        seen: set[int] = set()
        todo: list[tuple[str, PersistentStub]] = [("", self)]
        while todo:
            prefix, stub = todo.pop()
            if id(stub) in seen:
                raise pickle.UnpicklingError(
                    f"malformed network: module {prefix.rstrip('.') or 'the top'} appears twice "
                    "or inside itself"
                )
            seen.add(id(stub))
            out.append((prefix, stub))
            children = stub.state.get("_modules") or {}
            if not isinstance(children, dict):
                raise pickle.UnpicklingError("malformed network: '_modules' is not a dict")
            for name, child in reversed(list(children.items())):
                if isinstance(child, PersistentStub):
                    todo.append((f"{prefix}{name}.", child))
        return out

    def named_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and buffers of this module and its submodules, keyed like a state dict."""
        out: dict[str, torch.Tensor] = {}
        for sub_prefix, stub in self.submodules():
            for group in ("_parameters", "_buffers"):
                values = stub.state.get(group) or {}
                if not isinstance(values, dict):
                    raise pickle.UnpicklingError(f"malformed network: '{group}' is not a dict")
                for name, value in values.items():
                    if isinstance(value, torch.Tensor):
                        out[f"{prefix}{sub_prefix}{name}"] = value
        return out

    def class_names(self) -> set[str]:
        """Class names of this module and all its submodules (to recognise architectures)."""
        return {stub.class_name for _, stub in self.submodules()}


class TFNetworkStub:
    """The state of a TF-era ``dnnlib.tflib.network.Network`` (name, kwargs, variables).

    Unpickling calls ``__new__`` and then ``__setstate__``, never ``__init__``; a stream that
    omits the state leaves `state` at the empty class default.
    """

    state: dict

    def __new__(cls, *args: Any, **kwargs: Any) -> TFNetworkStub:
        """A stub with an empty state of its own (never one shared through the class)."""
        obj = super().__new__(cls)
        obj.state = {}
        return obj

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
    storage = torch_load_weights_only(io.BytesIO(bytes(data)))
    if not isinstance(storage, torch.TypedStorage):
        raise pickle.UnpicklingError("malformed tensor storage: the bytes hold no typed storage")
    return storage


def _rebuild_parameter(
    data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None
) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("malformed parameter: expected a tensor")
    return data


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_view(numel: int, offset: Any, size: Any, stride: Any) -> None:
    """Refuse a tensor view that reaches past its storage.

    torch would grow the storage to fit, filling the weights with uninitialised memory.
    """
    ok = (
        _is_index(offset)
        and isinstance(size, (tuple, list))
        and isinstance(stride, (tuple, list))
        and len(size) == len(stride) <= 16
        and all(_is_index(v) for v in (*size, *stride))
    )
    if not ok:
        raise pickle.UnpicklingError("malformed tensor: bad offset, size or stride")
    if math.prod(size) == 0:
        return
    last = offset + sum((n - 1) * st for n, st in zip(size, stride))
    if last >= numel:
        raise pickle.UnpicklingError(
            f"malformed tensor: size {list(size)} with stride {list(stride)} at offset {offset} "
            f"reaches element {last}, past its storage of {numel} elements"
        )


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> torch.Tensor:
    if not isinstance(storage, torch.TypedStorage):
        raise pickle.UnpicklingError("malformed tensor: its storage is not a torch storage")
    with warnings.catch_warnings():  # "TypedStorage is deprecated": what legacy files hold
        warnings.simplefilter("ignore", UserWarning)
        numel = storage.size()
    _check_view(numel, offset, size, stride)
    return torch._utils._rebuild_tensor_v2(
        storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict()
    )


try:  # numpy >= 2 moved the pickle helpers; old pickles name either module
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

# The state numpy pickles for a plain (not structured) dtype: (version, byte order, subarray,
# names, fields, element size, alignment, flags). Only the byte order may vary.
PLAIN_DTYPE_STATE = (3, None, None, None, None, -1, -1, 0)
NUMERIC_KINDS = "biufc"  # bool, signed, unsigned, float, complex


def _plain_dtype(dtype: Any) -> np.dtype:
    """``dtype`` if it is a plain numeric numpy dtype (no objects, fields or subarrays)."""
    ok = (
        isinstance(dtype, np.dtype)
        and dtype.kind in NUMERIC_KINDS
        and dtype.fields is None
        and dtype.subdtype is None
        and not dtype.hasobject
    )
    if not ok:
        raise UnsafePickleError(
            f"refused the numpy dtype {dtype!r}: only plain numbers are allowed"
        )
    return dtype


def _numpy_dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``numpy.dtype(spec)`` for a plain numeric type name, always a fresh copy.

    numpy returns its process-wide dtype singletons unless asked to copy; the state a later
    ``BUILD`` sets must only ever reach this file's own copy.
    """
    if not isinstance(spec, str):
        raise UnsafePickleError(f"refused numpy.dtype({spec!r}): only type names are allowed")
    try:
        dtype = np.dtype(spec)
    except TypeError as exc:
        raise UnsafePickleError(f"refused numpy.dtype({spec!r}): {exc}") from None
    return np.dtype(_plain_dtype(dtype), copy=True)


class _ArrayClass:
    """Stands for ``numpy.ndarray`` in the stream: only `_reconstruct` accepts it.

    The real class would let the stream call ``ndarray(shape)`` (uninitialised memory of any
    size) or ``NEWOBJ`` it.
    """

    def __repr__(self) -> str:
        return "numpy.ndarray"


NDARRAY = _ArrayClass()


def _reconstruct(subtype: Any, shape: Any = (0,), dtype: Any = b"b") -> np.ndarray:
    """An empty array for ``BUILD`` to fill, as ``numpy.core.multiarray._reconstruct``."""
    if subtype is not NDARRAY:
        raise UnsafePickleError(f"refused to reconstruct an array of class {subtype!r}")
    return np.empty(0, dtype=np.int8)


def _scalar(dtype: Any, data: Any = b"") -> Any:
    """A numpy scalar of a plain numeric dtype from exactly its bytes."""
    dtype = _plain_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError(f"malformed numpy scalar of {dtype}: wrong bytes")
    return _multiarray.scalar(dtype, data)


def _persistent(meta: Any) -> PersistentStub:
    """``_reconstruct_persistent_obj``: a new stub. A function, so no opcode can reach the
    class (``BUILD`` on it would change it for every later load)."""
    return PersistentStub(meta)


ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent,
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
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy", "ndarray"): NDARRAY,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    ALLOWED[(_module, "scalar")] = _scalar
    ALLOWED[(_module, "_reconstruct")] = _reconstruct
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

# Classes the stream may instantiate with NEWOBJ (dnnlib's networks and EasyDicts are pickled
# that way): each call makes a new, private instance.
NEWOBJ_CLASSES = (TFNetworkStub, AttrDict, collections.OrderedDict)


def _dtype_state(dtype: np.dtype, state: Any) -> tuple:
    """The state of a plain dtype: only the byte order may differ from `PLAIN_DTYPE_STATE`."""
    ok = (
        isinstance(state, tuple)
        and len(state) == len(PLAIN_DTYPE_STATE)
        and state[1] in ("<", ">", "|", "=")
        and all(
            given == want and type(given) is type(want)
            for i, (given, want) in enumerate(zip(state, PLAIN_DTYPE_STATE))
            if i != 1
        )
    )
    if not ok:
        raise UnsafePickleError(
            f"refused to set the state {state!r} of numpy dtype {dtype}: only the byte order of "
            "a plain numeric dtype may be set"
        )
    return state


def _array_state(state: Any) -> tuple:
    """A checked ``ndarray.__setstate__`` state: a plain dtype and exactly the bytes needed."""
    if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
        raise UnsafePickleError("refused a numpy array state that is not (1, shape, ...)")
    _, shape, dtype, fortran, data = state
    ok = (
        isinstance(shape, tuple)
        and len(shape) <= 32
        and all(_is_index(n) for n in shape)
        and isinstance(fortran, bool)
        and isinstance(data, bytes)
    )
    if not ok:
        raise pickle.UnpicklingError("malformed numpy array state")
    dtype = _plain_dtype(dtype)
    if math.prod(shape) * dtype.itemsize != len(data):
        raise pickle.UnpicklingError(
            f"malformed numpy array: shape {list(shape)} of {dtype} needs "
            f"{math.prod(shape) * dtype.itemsize} bytes, the file gives {len(data)}"
        )
    return state


class _BoundedFile:
    """A file whose reads may not ask for more than it has left: a length field of 2**60 in
    a 1-kB file is an error, not an attempt to allocate 2**60 bytes."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        here = f.tell()
        self._left = f.seek(0, os.SEEK_END) - here
        f.seek(here)

    def _take(self, n: int) -> None:
        if n > self._left:
            raise pickle.UnpicklingError(
                f"the pickle is truncated or corrupt: it asks for {n} bytes, {self._left} remain"
            )

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._left
        self._take(n)
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._f.readline()
        self._left -= len(line)
        return line


class RestrictedUnpickler(pickle._Unpickler):
    """Python's pure-Python unpickler, with globals from `ALLOWED` only, and ``BUILD`` and
    ``NEWOBJ`` limited to what network pickles need (see the module docstring)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, f: BinaryIO) -> None:
        super().__init__(_BoundedFile(f))

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickleError(
                f"refused to load '{module}.{name}': the file asks to call it, and only "
                "tensors, arrays, dicts and NVIDIA network state are allowed; nothing was run"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused a persistent id: this is not a plain network pickle")

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is TFNetworkStub:
            inst.__setstate__(state)
        elif isinstance(inst, np.dtype):  # only `_numpy_dtype` makes one: a private copy
            inst.__setstate__(_dtype_state(_plain_dtype(inst), state))
            _plain_dtype(inst)
        elif type(inst) is np.ndarray:
            inst.__setstate__(_array_state(state))
        else:
            raise UnsafePickleError(
                f"refused to set the state of {describe(inst)}: only TF networks, numpy dtypes "
                "and arrays take a state in a network pickle; nothing was run"
            )

    dispatch[pickle.BUILD[0]] = load_build

    def _new(self, cls: Any, args: Any, kwargs: Any) -> None:
        if not (isinstance(cls, type) and cls in NEWOBJ_CLASSES):
            raise UnsafePickleError(
                f"refused to create an instance of {cls!r}: only TF networks and dicts are "
                "created that way in a network pickle; nothing was run"
            )
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise pickle.UnpicklingError("malformed NEWOBJ arguments")
        self.append(cls.__new__(cls, *args, **kwargs))

    def load_newobj(self) -> None:
        args = self.stack.pop()
        self._new(self.stack.pop(), args, {})

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        self._new(self.stack.pop(), args, kwargs)

    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def load_bytearray8(self) -> None:
        """As pickle's, but reading first: pickle allocates ``bytearray(n)`` for any n."""
        (n,) = struct.unpack("<Q", self.read(8))
        self.append(bytearray(self.read(n)))

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def safe_load(f: BinaryIO) -> Any:
    """Unpickle ``f`` with `RestrictedUnpickler`.

    Raises:
        UnsafePickleError: the stream asks for a global, an instance or a state outside the
            allow-list.
        pickle.UnpicklingError: the stream is truncated or malformed (whatever the pickle
            machinery raised on it, with its message).
    """
    try:
        return RestrictedUnpickler(f).load()
    except pickle.UnpicklingError:
        raise
    except (
        EOFError,
        IndexError,
        KeyError,
        AttributeError,
        UnicodeDecodeError,
        ValueError,
        TypeError,
        RuntimeError,
        OverflowError,
        struct.error,
        MemoryError,
        RecursionError,
    ) as exc:
        raise pickle.UnpicklingError(f"the pickle is truncated or corrupt ({exc!r})") from exc
