"""Hostile and careless input to the weights loaders and the downloader (issue 27).

Each test builds the attack or the fault as it was reported and checks that it is refused
with our own error naming the file, that nothing is written outside the cache, that nothing
crashes (attacks that used to crash the interpreter run in a subprocess), and that the
process state is intact afterwards (a good file still loads).
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import re
import struct
import subprocess
import sys
import textwrap
import time
import types
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch
from httpfiles import FileServer
from safetensors.torch import load_file, save_file

from conftest import make_generator
from draggan_widget.gan import load_generator, registry
from draggan_widget.gan.formats import (
    UnsafePickleError,
    WeightsFileError,
    safe_pickle,
    save_generator,
)
from draggan_widget.gan.registry import DownloadError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "home"
    monkeypatch.setenv(registry.HOME_ENV, str(root))
    for var in ("no_proxy", "NO_PROXY"):  # never route 127.0.0.1 through a proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    return root


@pytest.fixture
def server():
    with FileServer() as srv:
        yield srv


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------ 1. a URL names the cache file


def test_an_encoded_slash_or_dotdot_in_a_url_cannot_write_outside_the_cache(
    tmp_path: Path, home: Path, server: FileServer
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    escapes = [
        "/x/" + urllib.parse.quote(str(outside / "escaped.txt"), safe=""),  # %2Ftmp%2F...
        "/x/..%2F..%2F..%2F..%2Foutside%2Fdotdot.pth",
        "/x/..%5C..%5Cbackslash.pth",
        "/x/%2E%2E",
    ]
    for raw in escapes:
        server.files[raw] = b"not a weights file"
        with pytest.raises(WeightsFileError) as err:
            load_generator(server.url(raw))
        assert str(home) in str(err.value)  # the refusal names the cached file
    assert list(outside.iterdir()) == []
    written = _files_under(tmp_path)
    assert written and all(p.is_relative_to(home / "urls") for p in written)
    assert {p.name for p in written} == {"escaped.txt", "dotdot.pth", "backslash.pth", "download"}


def test_cache_names_are_plain_names() -> None:
    assert registry._filename_from_url("http://h/a/%2Fetc%2Fpasswd") == "passwd"
    assert registry._filename_from_url("http://h/..%2F..%2Fx.pth") == "x.pth"
    assert registry._filename_from_url("http://h/a%5C..%5Cy.pkl") == "y.pkl"
    assert registry._filename_from_url("http://h/.bashrc") == "bashrc"
    assert registry._filename_from_url("http://h/") == "download"
    assert registry._filename_from_url("http://h/a b;c.pkl") == "a_b_c.pkl"
    long = registry._filename_from_url("http://h/" + "a" * 500 + ".pkl")
    assert len(long) <= registry.MAX_NAME and long.endswith(".pkl")


def test_a_registry_filename_that_is_a_path_is_refused(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "models.json"
    entry = {"name": "x", "format": "native", "url": "https://e.org/x", "filename": "../x.pth"}
    bad.write_text(json.dumps({"models": [entry]}))
    monkeypatch.setattr(registry, "_weights_file", lambda name: bad)
    with pytest.raises(ValueError, match="filename '../x.pth'"):
        registry.list_models()


def test_a_source_that_is_not_cached_is_not_downloaded_when_downloads_are_off(
    home: Path, server: FileServer, tmp_path: Path
) -> None:
    path = save_generator(make_generator(), tmp_path / "g.safetensors")
    server.files["/g.safetensors"] = path.read_bytes()
    url = server.url("/g.safetensors")
    with pytest.raises(DownloadError, match="not in the cache"):
        load_generator(url, download=False)
    assert server.requests == [] and not home.exists()
    load_generator(url)  # asked for: fetched once
    load_generator(url, download=False)  # cached now: no download needed
    assert len(server.requests) == 1


# ---------------------------------------------------------- 2. numpy dtype state: a segfault


def _op_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _text(value: str) -> bytes:
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _dtype_call(spec: str) -> bytes:
    """``numpy.dtype(spec, False, True)``, as numpy pickles a dtype."""
    return _op_global("numpy", "dtype") + _text(spec) + b"\x89\x88\x87R"


def _object_field_dtype_pickle() -> bytes:
    """The reported crash: a float dtype whose BUILD state adds an object field with flags 0,
    then an array of it whose raw bytes become an object pointer (0x4141414141414141)."""
    state = (
        b"(K\x03" + _text("|") + b"N" + _text("a") + b"\x85"  # version, order, subarray, names
        b"}" + _text("a") + _dtype_call("O8") + b"K\x00\x86s"  # fields {'a': (dtype('O'), 0)}
        b"K\x08K\x01K\x00t"  # element size, alignment, flags 0
    )
    array = (
        _op_global("numpy.core.multiarray", "_reconstruct")
        + _op_global("numpy", "ndarray")
        + b"K\x00\x85C\x01b\x87R"
        + b"(K\x01K\x01\x85h\x01\x89C\x08AAAAAAAAtb"  # (1, (1,), memo[1], False, raw)
    )
    return b"\x80\x02" + _dtype_call("f8") + state + b"bq\x010" + array + b"."


def _run_isolated(path: Path) -> subprocess.CompletedProcess:
    """Load ``path`` in a fresh interpreter; print the error type and message."""
    code = textwrap.dedent(
        f"""
        from draggan_widget.gan import load_generator
        try:
            load_generator({str(path)!r})
        except Exception as exc:
            print(type(exc).__name__, exc)
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )


def test_a_dtype_state_with_an_object_field_is_refused_without_crashing(tmp_path: Path) -> None:
    path = tmp_path / "dtype.pkl"
    data = _object_field_dtype_pickle()
    path.write_bytes(data)
    crash = subprocess.run(  # the attack is real: plain pickle builds a pointer from the bytes
        [sys.executable, "-c", f"import pickle; print(pickle.loads({data!r})['a'])"],
        capture_output=True,
        timeout=60,
    )
    assert crash.returncode != 0
    done = _run_isolated(path)
    assert done.returncode == 0, done.stderr  # a crash is a negative return code
    assert done.stdout.startswith("UnsafePickleError") and str(path) in done.stdout


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (_dtype_call("f8") + b"(K\x03" + _text("<") + b"NNNK\x08K\x01K\x01tb", "state"),
        (_dtype_call("O"), "dtype"),
        (_dtype_call("V8"), "dtype"),
        (_op_global("numpy", "dtype") + b"]\x85R", "type names"),
        (
            _op_global("numpy.core.multiarray", "scalar")
            + _dtype_call("O8")
            + b"C\x08AAAAAAAA\x86R",
            "dtype",
        ),
        (_op_global("numpy", "ndarray") + b"K\x10\x85\x81", "instance"),  # NEWOBJ
        (_op_global("numpy", "ndarray") + b"J\x00\x00\x00\x40\x85R", "callable"),  # ndarray(2**30)
    ],
    ids=[
        "dtype-flags",
        "object-dtype",
        "void-dtype",
        "dtype-of-list",
        "object-scalar",
        "newobj",
        "ndarray-call",
    ],
)
def test_numpy_objects_the_stream_could_abuse_are_refused(tmp_path: Path, stream, message) -> None:
    path = tmp_path / "np.pkl"
    path.write_bytes(b"\x80\x02" + stream + b".")
    with pytest.raises(WeightsFileError, match=message) as err:
        load_generator(path)
    assert str(path) in str(err.value)


# -------------------------------------------- 3. BUILD on an allowed class poisons later loads


@pytest.mark.parametrize(
    "target",
    [
        ("dnnlib.util", "EasyDict"),
        ("dnnlib.tflib.network", "Network"),
        ("torch_utils.persistence", "_reconstruct_persistent_obj"),
        ("collections", "OrderedDict"),
    ],
    ids=lambda t: t[1],
)
def test_state_set_on_an_allowed_class_is_refused_and_later_loads_work(
    tmp_path: Path, data_dir: Path, target
) -> None:
    # BUILD with (None, {...}): pickle's slot state, set with setattr on the object itself.
    items = b"".join(_text(k) + b"N" for k in ("named_tensors", "keys", "state"))
    poison = b"N}(" + items + b"u\x86"
    path = tmp_path / "poison.pkl"
    path.write_bytes(b"\x80\x02" + _op_global(*target) + poison + b"b.")
    with pytest.raises(UnsafePickleError, match="refused to set the state"):
        load_generator(path)
    assert safe_pickle.PersistentStub.named_tensors is not None
    assert safe_pickle.AttrDict.keys is dict.keys
    assert "state" not in vars(safe_pickle.TFNetworkStub)
    load_generator(data_dir / "sg2_32_tiny.pkl")  # the process is unharmed


def test_stubs_made_without_state_share_nothing() -> None:
    a, b = safe_pickle.TFNetworkStub.__new__(safe_pickle.TFNetworkStub), safe_pickle.TFNetworkStub()
    assert a.state == {} and a.state is not b.state


# ----------------------------------------------------- 4. a tensor larger than its storage


class _StorageBytes:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (self.blob,))


class _Tensor:
    """Pickles as ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``, any view."""

    def __init__(self, storage, offset, size, stride) -> None:
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


def _four_floats() -> _StorageBytes:
    blob = io.BytesIO()
    torch.save(torch.arange(4.0).storage(), blob, _use_new_zipfile_serialization=False)
    return _StorageBytes(blob.getvalue())


@pytest.mark.parametrize(
    ("offset", "size", "stride"),
    [(0, (4096,), (1,)), (3, (2,), (1,)), (0, (2, 2), (3, 1)), (-1, (1,), (1,)), (0, (1,), (-1,))],
)
def test_a_tensor_view_past_its_storage_is_refused(tmp_path: Path, offset, size, stride) -> None:
    path = tmp_path / "view.pkl"
    path.write_bytes(pickle.dumps({"w": _Tensor(_four_floats(), offset, size, stride)}))
    with pytest.raises(WeightsFileError, match="malformed tensor") as err:
        load_generator(path)
    assert str(path) in str(err.value)


def test_a_tensor_view_inside_its_storage_is_read() -> None:
    data = pickle.dumps({"w": _Tensor(_four_floats(), 1, (3,), (1,))})
    out = safe_pickle.safe_load(io.BytesIO(data))
    assert out["w"].tolist() == [1.0, 2.0, 3.0]


# ------------------------------------------------- 6. safetensors whose length starts with 0x80


def test_safetensors_with_a_header_length_byte_of_0x80_loads(tmp_path: Path) -> None:
    G = make_generator()
    path = tmp_path / "x.safetensors"
    for n in range(200, 520):
        save_generator(G, path, metadata={"note": "x" * n})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    loaded = load_generator(path)
    assert all(
        torch.equal(a, b) for a, b in zip(G.state_dict().values(), loaded.state_dict().values())
    )


# --------------------------------------------------------------- 7. resuming without a validator


def test_a_stale_part_of_unknown_origin_is_not_trusted(tmp_path: Path, server: FileServer) -> None:
    data = bytes(range(256)) * 40
    server.files["/m.pkl"] = data
    dest = tmp_path / "m.pkl"
    dest.with_name("m.pkl.part").write_bytes(b"garbage" * 100)
    registry.download(server.url("/m.pkl"), dest, progress=False)
    assert dest.read_bytes() == data
    assert server.requests[0]["range"] is None  # started over, asked for nothing else


def test_a_part_is_resumed_only_for_its_url_and_the_same_file(
    tmp_path: Path, server: FileServer
) -> None:
    old, new = b"A" * 5000, b"B" * 6000
    server.files["/m.pkl"] = old
    server.trickle["/m.pkl"] = 0.02
    dest = tmp_path / "m.pkl"
    with pytest.raises(DownloadError, match="total_timeout"):
        registry.download(server.url("/m.pkl"), dest, progress=False, total_timeout=0.3)
    part = dest.with_name("m.pkl.part")
    assert 0 < part.stat().st_size < len(old)
    record = json.loads(part.with_name("m.pkl.part.json").read_text())
    assert record["etag"] == FileServer.etag(old) and record["length"] == len(old)

    server.files["/m.pkl"] = new  # the file changed on the server meanwhile
    del server.trickle["/m.pkl"]
    registry.download(server.url("/m.pkl"), dest, progress=False)
    assert dest.read_bytes() == new  # the server saw the old ETag and sent the new file whole
    assert server.requests[-1]["if_range"] == FileServer.etag(old)
    assert not part.exists() and not part.with_name("m.pkl.part.json").exists()


def test_a_trickling_server_is_given_up_on_after_total_timeout(
    tmp_path: Path, server: FileServer
) -> None:
    server.files["/slow.pkl"] = b"x" * 100_000
    server.trickle["/slow.pkl"] = 0.05  # 320 bytes/s: each read returns, none times out
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="ended early.*total_timeout.*call again to resume"):
        registry.download(
            server.url("/slow.pkl"), tmp_path / "slow.pkl", progress=False, total_timeout=0.5
        )
    assert time.monotonic() - t0 < 5
    assert not (tmp_path / "slow.pkl").exists()


# --------------------------------------------------- 8. sizes the file asks for are bounded


def _native_with_config(tmp_path: Path, **changes) -> Path:
    G = make_generator()
    path = save_generator(G, tmp_path / "g.safetensors")
    tensors = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    config = json.loads(meta["draggan_widget.config"])
    config.update(changes)
    meta["draggan_widget.config"] = json.dumps(config)
    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"img_resolution": 2**20}, "img_resolution=1048576"),
        ({"w_dim": 10**7}, "w_dim=10000000"),
        ({"synthesis_kwargs": {"channel_base": 512, "channel_max": 10**6}}, "channel_max"),
        ({"z_dim": "16"}, "z_dim='16'"),
        ({"synthesis_kwargs": [1, 2]}, "not a dict"),
    ],
)
def test_an_implausible_architecture_is_refused_before_it_is_built(
    tmp_path: Path, changes, message
) -> None:
    path = _native_with_config(tmp_path, **changes)
    with pytest.raises(WeightsFileError, match=message) as err:
        load_generator(path)
    assert str(path) in str(err.value)


def _persistent_obj(meta):  # stands in for NVIDIA's; the loader never calls it
    raise AssertionError("never called")


class _Persistent:
    def __init__(self, state) -> None:
        self.meta = {"type": "class", "module_src": "", "class_name": "Generator", "state": state}

    def __reduce__(self):
        return (_persistent_obj, (self.meta,))


@pytest.fixture
def persistence(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("torch_utils", "torch_utils.persistence"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    _persistent_obj.__module__ = "torch_utils.persistence"
    _persistent_obj.__qualname__ = _persistent_obj.__name__ = "_reconstruct_persistent_obj"
    sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj = _persistent_obj


def test_an_nvidia_pickle_asking_for_a_huge_image_is_refused(tmp_path: Path, persistence) -> None:
    kwargs = {"z_dim": 16, "c_dim": 0, "w_dim": 16, "img_resolution": 2**20, "img_channels": 3}
    G = _Persistent({"_init_kwargs": kwargs, "_modules": {}})
    path = tmp_path / "huge.pkl"
    path.write_bytes(pickle.dumps({"G_ema": G}))
    with pytest.raises(WeightsFileError, match="img_resolution=1048576"):
        load_generator(path)


def test_a_huge_length_field_is_an_error_not_an_allocation(tmp_path: Path) -> None:
    path = tmp_path / "len.pkl"
    for op in (b"\x8e", b"\x96", b"\x8d"):  # BINBYTES8, BYTEARRAY8, BINUNICODE8
        path.write_bytes(b"\x80\x05" + op + struct.pack("<Q", 2**62) + b"x.")
        with pytest.raises(WeightsFileError, match="truncated or corrupt"):
            load_generator(path)


# -------------------------------------------------- 9. raw exceptions become our error


def test_a_module_that_contains_itself_is_refused_not_a_recursion_error(
    tmp_path: Path, persistence
) -> None:
    modules: dict = {}
    G = _Persistent({"_init_kwargs": {}, "_modules": modules})
    modules["loop"] = G
    path = tmp_path / "cycle.pkl"
    path.write_bytes(pickle.dumps({"modules": modules, "G_ema": G}))  # the cycle via the memo
    with pytest.raises(WeightsFileError, match="appears twice or inside itself") as err:
        load_generator(path)
    assert str(path) in str(err.value)


def test_bad_constructor_values_are_our_error_with_the_file(tmp_path: Path, persistence) -> None:
    kwargs = {"z_dim": [16], "c_dim": 0, "w_dim": 16, "img_resolution": 32, "img_channels": 3}
    path = tmp_path / "kw.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Persistent({"_init_kwargs": kwargs})}))
    with pytest.raises(WeightsFileError, match=r"z_dim=\[16\]") as err:
        load_generator(path)
    assert str(path) in str(err.value)


def test_a_deeply_nested_safetensors_config_is_our_error(tmp_path: Path) -> None:
    path = _native_with_config(tmp_path)
    tensors = load_file(str(path))
    deep = "[" * 100_000 + "]" * 100_000
    meta = {"draggan_widget.format": "stylegan2-generator/1", "draggan_widget.config": deep}
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(WeightsFileError, match="config in the metadata is invalid"):
        load_generator(path)


# ------------------------------------------------------------------------------------ fuzz

FUZZ_RUNNER = """
import sys, pathlib, warnings
warnings.simplefilter("ignore")
from draggan_widget.gan import load_generator
from draggan_widget.gan.formats import WeightsFileError
bad = 0
for path in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    print("LOADING", path.name, file=sys.stderr, flush=True)
    try:
        load_generator(path)
    except (WeightsFileError, FileNotFoundError):
        pass
    except BaseException as exc:
        bad += 1
        print("UNEXPECTED", path.name, type(exc).__name__, str(exc)[:300], flush=True)
print("DONE", bad, flush=True)
"""


def _opcode_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every opcode with its argument, except long byte payloads (storage)."""
    import pickletools

    ops = list(pickletools.genops(data))
    spans = []
    for (_op, arg, pos), nxt in zip(ops, [*ops[1:], (None, None, len(data))]):
        end = nxt[2]
        if isinstance(arg, (bytes, bytearray)) and len(arg) > 64:
            end = pos + 9  # the opcode and its length, not the payload
        spans.append((pos, end))
    return spans


def _unframed(data: bytes) -> bytes:
    """The pickle without its FRAME opcodes (optional for readers), so that a mutation that
    changes a length reaches the opcodes after it instead of breaking the framing."""
    import pickletools

    ops = list(pickletools.genops(data))
    keep = [
        data[pos : nxt[2]]
        for (op, _arg, pos), nxt in zip(ops, [*ops[1:], (None, None, len(data))])
        if op.name != "FRAME"
    ]
    return b"".join(keep)


def _mutate_header(rng, data: bytes) -> bytes:
    """A safetensors file with one number or dtype of its JSON header changed, the header
    staying valid JSON of the same length where possible: shapes, offsets, dtypes."""
    n = struct.unpack("<Q", data[:8])[0]
    header = data[8 : 8 + n].decode()
    if rng.random() < 0.3:
        dtypes = ("F32", "F16", "BF16", "I64", "U8", "BOOL", "F64", "I8")
        old = rng.choice([d for d in dtypes if f'"{d}"' in header] or ["F32"])
        header = header.replace(f'"{old}"', f'"{rng.choice(dtypes)}"', 1)
    else:
        numbers = [m.span() for m in re.finditer(r"\d+", header)]
        a, b = rng.choice(numbers)
        value = str(rng.choice([0, 1, 2, 3, 7, 2**31, 2**40, 10**19, int(header[a:b]) + 1]))
        header = header[:a] + value + header[b:]
    body = header.encode()
    return struct.pack("<Q", len(body)) + body + data[8 + n :]


INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**31, 2**40, 2**62]


def _mutate(rng, data: bytes, spans: list[tuple[int, int]]) -> bytes:
    """One random mutation in the structural part of a file."""
    buf = bytearray(data)
    start, end = spans[rng.randrange(len(spans))]
    start = min(start, len(buf) - 1)  # an earlier mutation may have shortened the file
    end = min(max(end, start + 1), len(buf))
    kind = rng.randrange(6)
    if kind == 0:  # a random byte
        buf[rng.randrange(start, end)] = rng.randrange(256)
    elif kind == 1:  # an opcode swapped for another
        buf[start] = rng.choice(
            b"().0NKJMcbRuseahqrt}]\x80\x81\x85\x86\x87\x88\x89\x8c\x8e\x93\x94\x95"
        )
    elif kind == 2:  # truncated
        return bytes(buf[: rng.randrange(1, len(buf))])
    elif kind == 3:  # an interesting integer over an argument
        pos = rng.randrange(start, end)
        value = rng.choice(INTERESTING).to_bytes(8, "little")
        buf[pos : pos + 8] = value[: min(8, len(buf) - pos)]
    elif kind == 4:  # a span deleted
        del buf[start:end]
    else:  # a span repeated
        buf[end:end] = buf[start:end]
    return bytes(buf)


def _tf_like_pickle(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A TF-era network pickle with numpy arrays and scalars: the numpy opcodes to mutate."""

    class Network:
        def __getstate__(self):
            return self.state

    Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
    for name in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["dnnlib.tflib.network"].Network = Network
    net = Network()
    net.state = {
        "version": 4,
        "name": "G_synthesis",
        "static_kwargs": {"resolution": 8, "fmap_base": np.int64(64)},
        "components": {},
        "variables": [
            ("mapping/Dense0/weight", np.ones((4, 4), np.float32)),
            ("synthesis/4x4/Const/const", np.zeros((1, 4, 4, 4), np.float16)),
            ("lod", np.float32(0)),
        ],
    }
    return pickle.dumps((net, net, net))


def test_fuzzed_pickles_and_safetensors_raise_only_our_errors(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    rng = random.Random(27)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    small = make_generator(img_resolution=8, w_dim=4)
    st = save_generator(small, tmp_path / "s.safetensors").read_bytes()
    header_end = 8 + struct.unpack("<Q", st[:8])[0]
    bases = {
        "nvidia": _unframed((data_dir / "sg2_32_tiny.pkl").read_bytes()),
        "tf": _unframed(_tf_like_pickle(monkeypatch)),
        "st": st,
    }
    spans = {
        "nvidia": _opcode_spans(bases["nvidia"]),
        "tf": _opcode_spans(bases["tf"]),
        "st": [(0, 8)]
        + [(i, min(i + 4, header_end)) for i in range(8, header_end, 4)]
        + [(header_end, len(st))],
    }
    counts = {"nvidia": 1200, "tf": 1000, "st": 1000}
    for name, n in counts.items():
        for i in range(n):
            data = bases[name]
            if name == "st" and rng.random() < 0.5:
                data = _mutate_header(rng, data)
            for _ in range(rng.choice((0, 1, 1, 2, 3)) if name == "st" else rng.choice((1, 2))):
                data = _mutate(rng, data, spans[name])
            (corpus / f"{name}-{i:05d}").write_bytes(data)
    runner = tmp_path / "runner.py"
    runner.write_text(FUZZ_RUNNER)
    done = subprocess.run(
        [sys.executable, str(runner), str(corpus)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    last = done.stderr.strip().splitlines()[-1:] if done.returncode else []
    assert done.returncode == 0, f"crashed (rc {done.returncode}) at {last}"
    unexpected = [line for line in done.stdout.splitlines() if line.startswith("UNEXPECTED")]
    assert unexpected == [], "\n".join(unexpected[:20])
    assert done.stdout.strip().endswith("DONE 0")
