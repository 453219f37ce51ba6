"""Malicious weights files: each would create a marker file; loading must refuse, run nothing.

The payloads are built as attackers build them, with ``__reduce__``, and placed at the top
of the pickle, inside an NVIDIA-style ``G_ema``, inside a tensor's storage bytes (a legacy
``torch.save`` blob with its own pickle), and inside a zip ``torch.save`` checkpoint.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess
import sys
import types

import pytest
import torch

from draggan_widget.gan import load_generator
from draggan_widget.gan.formats import UnsafePickleError


class OsSystem:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Popen(OsSystem):
    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


class CheckCall(OsSystem):
    def __reduce__(self):
        return (subprocess.check_call, (["touch", str(self.marker)],))


class Eval(OsSystem):
    def __reduce__(self):
        return (builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",))


class Exec(OsSystem):
    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


class ImportOs:
    def __reduce__(self):
        return (builtins.__import__, ("os",))


class GetSystem:
    """Unpickles as ``getattr(__import__('os'), 'system')``: no dangerous name in the stream."""

    def __call__(self, *args):  # pickle requires the reduce function to be callable
        raise AssertionError("never called when pickling")

    def __reduce__(self):
        return (builtins.getattr, (ImportOs(), "system"))


class GetattrChain(OsSystem):
    def __reduce__(self):
        return (GetSystem(), (f"touch {self.marker}",))


PAYLOADS = {  # payload class -> the global the refusal must name
    OsSystem: "system",
    Popen: "Popen",
    CheckCall: "check_call",
    Eval: "eval",
    Exec: "exec",
    GetattrChain: "getattr",
}


def _reconstruct_persistent_obj(meta):  # stands in for NVIDIA's; the loader never calls it
    raise AssertionError("the loader must not call the pickle's reconstruction function")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"


class Persistent:
    """Pickles as NVIDIA's ``torch_utils.persistence._reconstruct_persistent_obj(meta)``."""

    def __init__(self, class_name, state):
        self.meta = {"type": "class", "module_src": "", "class_name": class_name, "state": state}

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


class StorageBytes:
    """Pickles as ``torch.storage._load_from_bytes(blob)``, as tensors in plain pickles do."""

    def __init__(self, blob):
        self.blob = blob

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (self.blob,))


@pytest.fixture
def persistence_module(monkeypatch):
    """Make ``torch_utils.persistence`` importable so that pickle can name it."""
    for name in ("torch_utils", "torch_utils.persistence"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj


def _top_level(payload, path):
    path.write_bytes(pickle.dumps(payload))


def _in_g_ema(payload, path):
    conv = Persistent("SynthesisLayer", {"_parameters": {"weight": payload}, "_modules": {}})
    G = Persistent("Generator", {"_init_kwargs": {}, "_modules": {"synthesis": conv}})
    path.write_bytes(pickle.dumps({"G": G, "D": None, "G_ema": G}))


def _in_storage_bytes(payload, path):
    blob = io.BytesIO()
    torch.save(payload, blob, _use_new_zipfile_serialization=False)
    path.write_bytes(pickle.dumps({"G_ema": StorageBytes(blob.getvalue())}))


def _in_torch_zip(payload, path):
    torch.save({"g_ema": {"style.1.weight": payload}}, path)


NESTINGS = [_top_level, _in_g_ema, _in_storage_bytes, _in_torch_zip]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("nesting", NESTINGS, ids=lambda f: f.__name__.strip("_"))
def test_malicious_file_is_refused_and_runs_nothing(tmp_path, persistence_module, payload, nesting):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    nesting(payload(marker), path)
    with pytest.raises(UnsafePickleError, match=PAYLOADS[payload]) as info:
        load_generator(path)
    assert isinstance(info.value, ValueError)  # callers catching ValueError catch this too
    assert not marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
def test_payloads_are_live_under_plain_pickle(tmp_path, payload):
    """The refusals above mean something: ``pickle.loads`` does run every payload."""
    marker = tmp_path / "pwned"
    result = pickle.loads(pickle.dumps(payload(marker)))  # unsafe: the point of the test
    if isinstance(result, subprocess.Popen):
        result.wait(timeout=30)
    assert marker.exists()


def test_persistent_ids_are_refused(tmp_path):
    class WithPersistentId(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage" if isinstance(obj, str) and obj == "x" else None

    buf = io.BytesIO()
    WithPersistentId(buf).dump({"G_ema": "x"})
    (tmp_path / "pid.pkl").write_bytes(buf.getvalue())
    with pytest.raises(UnsafePickleError, match="persistent id"):
        load_generator(tmp_path / "pid.pkl")
