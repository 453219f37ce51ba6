"""The model registry and the downloader, against a real HTTP server on 127.0.0.1.

The server speaks plain HTTP/1.0 (one request per connection), honours Range requests unless
told not to, and can misbehave on purpose: ignore Range, cut a transfer short, serve an HTML
page. It records every request so tests can tell whether the network was used at all.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from draggan_widget.gan import registry
from draggan_widget.gan.registry import DownloadError, ModelInfo

DATA = random.Random(0).randbytes(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
CHUNK = 64 * 1024  # several reads per transfer


class FakeServer:
    """Files by URL path; ``modes[path]`` says how to misbehave (default: honour Range)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.httpd = HTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def _send(self, status: int, body: bytes, length: int, **headers: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("ctype", "application/octet-stream"))
                self.send_header("Content-Length", str(length))
                for key, value in headers.items():
                    self.send_header(key.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                mode = server.modes.get(self.path, "range")
                if mode == "redirect":  # as NGC and Hugging Face do, to a signed CDN URL
                    self.send_response(302)
                    self.send_header("Location", "/model.pkl")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if mode == "bad_range" and rng:  # 206, but not from the byte asked for
                    body = data[1:]
                    end = len(data) - 1
                    self._send(206, body, len(body), Content_Range=f"bytes 1-{end}/{len(data)}")
                    return
                if mode == "html":
                    page = b"<html><body>Please confirm the download</body></html>"
                    self._send(200, page, len(page), ctype="text/html; charset=utf-8")
                elif mode == "truncate":  # promise everything, send half, hang up
                    self._send(200, data[: len(data) // 2], len(data))
                elif rng and mode == "range":
                    start = int(rng.split("=")[1].rstrip("-"))
                    if start >= len(data):
                        self._send(416, b"", 0, Content_Range=f"bytes */{len(data)}")
                        return
                    end = len(data) - 1
                    body = data[start:]
                    self._send(
                        206, body, len(body), Content_Range=f"bytes {start}-{end}/{len(data)}"
                    )
                else:
                    self._send(200, data, len(data))

        return Handler


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    for var in ("no_proxy", "NO_PROXY"):  # never route 127.0.0.1 through a proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    srv = FakeServer()
    srv.files["/model.pkl"] = DATA
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    srv.thread.join(timeout=5)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DRAGGAN_WIDGET_HOME for the test."""
    root = tmp_path / "home"
    monkeypatch.setenv(registry.HOME_ENV, str(root))
    return root


def _fake_registry(monkeypatch: pytest.MonkeyPatch, url: str, *, sha256: str | None) -> None:
    models = [
        ModelInfo(
            "default",
            "bundled",
            64,
            "native",
            None,
            None,
            None,
            "MIT",
            "test",
            "default.safetensors",
        ),
        ModelInfo(
            "toy", "test model", 32, "nvidia_pkl", url, sha256, len(DATA), "none", "test", "toy.pkl"
        ),
    ]
    monkeypatch.setattr(registry, "_read_registry", lambda: list(models))


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


# ---------------------------------------------------------------------------- download()


def test_download_fetches_whole_file_and_checks_sha(server: FakeServer, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "model.pkl"
    out = registry.download(server.url("/model.pkl"), dest, sha256=SHA.upper(), chunk_size=CHUNK)
    assert out == dest and dest.read_bytes() == DATA
    assert not _part(dest).exists()
    assert server.requests == [("/model.pkl", None)]


def test_download_resumes_from_part_file_with_range(server: FakeServer, tmp_path: Path) -> None:
    dest = tmp_path / "model.pkl"
    _part(dest).write_bytes(DATA[:100_000])
    registry.download(server.url("/model.pkl"), dest, sha256=SHA, progress=False, chunk_size=CHUNK)
    assert dest.read_bytes() == DATA
    assert server.requests == [("/model.pkl", "bytes=100000-")]


def test_download_restarts_when_server_ignores_range(server: FakeServer, tmp_path: Path) -> None:
    server.modes["/model.pkl"] = "ignore_range"
    dest = tmp_path / "model.pkl"
    _part(dest).write_bytes(b"stale bytes from some other file")
    registry.download(server.url("/model.pkl"), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert server.requests[0][1] is not None  # it asked to resume, got 200, started over


def test_download_restarts_when_server_resumes_at_the_wrong_byte(
    server: FakeServer, tmp_path: Path
) -> None:
    server.modes["/model.pkl"] = "bad_range"
    dest = tmp_path / "model.pkl"
    _part(dest).write_bytes(DATA[:1000])
    registry.download(server.url("/model.pkl"), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert [r[1] for r in server.requests] == ["bytes=1000-", None]


def test_download_follows_redirects_and_resumes_through_them(
    server: FakeServer, tmp_path: Path
) -> None:
    server.files["/redirect.pkl"] = DATA
    server.modes["/redirect.pkl"] = "redirect"
    dest = tmp_path / "model.pkl"
    _part(dest).write_bytes(DATA[:5000])
    registry.download(server.url("/redirect.pkl"), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert server.requests == [("/redirect.pkl", "bytes=5000-"), ("/model.pkl", "bytes=5000-")]


def test_download_truncated_transfer_keeps_part_and_a_retry_resumes(
    server: FakeServer, tmp_path: Path
) -> None:
    server.modes["/model.pkl"] = "truncate"
    dest = tmp_path / "model.pkl"
    with pytest.raises(DownloadError, match="ended early") as err:
        registry.download(server.url("/model.pkl"), dest, progress=False, chunk_size=CHUNK)
    assert f"got {len(DATA) // 2} of {len(DATA)} bytes" in str(err.value)
    assert "call again to resume" in str(err.value)
    assert not dest.exists()
    assert _part(dest).read_bytes() == DATA[: len(DATA) // 2]

    server.modes["/model.pkl"] = "range"
    registry.download(server.url("/model.pkl"), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert server.requests[-1] == ("/model.pkl", f"bytes={len(DATA) // 2}-")


def test_download_accepts_a_part_that_is_already_complete(
    server: FakeServer, tmp_path: Path
) -> None:
    dest = tmp_path / "model.pkl"
    _part(dest).write_bytes(DATA)
    registry.download(server.url("/model.pkl"), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert server.requests == [("/model.pkl", f"bytes={len(DATA)}-")]  # answered 416


def test_download_checksum_mismatch_deletes_part_and_reports_both(
    server: FakeServer, tmp_path: Path
) -> None:
    dest = tmp_path / "model.pkl"
    wrong = "0" * 64
    with pytest.raises(DownloadError, match="checksum mismatch") as err:
        registry.download(server.url("/model.pkl"), dest, sha256=wrong, progress=False)
    assert wrong in str(err.value) and SHA in str(err.value)
    assert not dest.exists() and not _part(dest).exists()


def test_download_404_names_the_url(server: FakeServer, tmp_path: Path) -> None:
    url = server.url("/missing.pkl")
    with pytest.raises(DownloadError, match="404") as err:
        registry.download(url, tmp_path / "missing.pkl", progress=False)
    assert url in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_download_refuses_an_html_page(server: FakeServer, tmp_path: Path) -> None:
    server.modes["/model.pkl"] = "html"
    dest = tmp_path / "model.pkl"
    with pytest.raises(DownloadError, match="web page") as err:
        registry.download(server.url("/model.pkl"), dest, progress=False)
    assert str(dest) in str(err.value)  # tells the user where to save a manual download
    assert not dest.exists() and not _part(dest).exists()


def test_download_unreachable_host_is_a_download_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="could not reach"):
        registry.download(f"http://127.0.0.1:{port}/x.pkl", tmp_path / "x.pkl", progress=False)


def test_download_file_url(tmp_path: Path) -> None:
    src = tmp_path / "src.pkl"
    src.write_bytes(DATA)
    dest = tmp_path / "out" / "copy.pkl"
    registry.download(src.as_uri(), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA and not _part(dest).exists()


def test_download_file_url_to_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        registry.download((tmp_path / "nope.pkl").as_uri(), tmp_path / "x.pkl", progress=False)


# ---------------------------------------------------------------------------- download_model()


def test_download_model_cache_hit_does_not_contact_server(
    server: FakeServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, server.url("/model.pkl"), sha256=SHA)
    (home / "toy.pkl").parent.mkdir(parents=True)
    (home / "toy.pkl").write_bytes(DATA)
    assert registry.download_model("toy") == home / "toy.pkl"
    assert server.requests == []


def test_download_model_downloads_then_reuses(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, server.url("/model.pkl"), sha256=SHA)
    cache = tmp_path / "cache"
    first = registry.download_model("toy", cache=cache, progress=False)
    second = registry.download_model("TOY", cache=cache, progress=False)
    assert first == second == cache / "toy.pkl" and first.read_bytes() == DATA
    assert len(server.requests) == 1


def test_download_model_replaces_a_corrupt_cached_file(
    server: FakeServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, server.url("/model.pkl"), sha256=SHA)
    home.mkdir()
    corrupt = bytearray(DATA)
    corrupt[1234] ^= 0xFF  # right size, wrong content: only the checksum can tell
    (home / "toy.pkl").write_bytes(bytes(corrupt))
    path = registry.download_model("toy", progress=False)
    assert path.read_bytes() == DATA and len(server.requests) == 1


def test_download_model_default_is_the_bundled_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = tmp_path / "default.safetensors"
    bundled.write_bytes(b"x")
    real = registry._weights_file
    monkeypatch.setattr(
        registry, "_weights_file", lambda name: bundled if name == bundled.name else real(name)
    )
    assert registry.download_model("default") == bundled


def test_download_model_default_missing_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    real = registry._weights_file
    monkeypatch.setattr(
        registry,
        "_weights_file",
        lambda name: None if name.endswith(".safetensors") else real(name),
    )
    with pytest.raises(FileNotFoundError, match="default.safetensors is missing"):
        registry.download_model("default")


# ---------------------------------------------------------------------------- the registry


def test_list_models_reads_the_shipped_registry() -> None:
    models = registry.list_models()
    names = [m.name for m in models]
    assert names[0] == "default" and len(set(names)) == len(names)
    default = registry.get_model("default")
    assert default.format == "native" and default.url is None
    assert default.filename == "default.safetensors"
    for m in models:
        assert m.format in registry.FORMATS and m.source and m.licence and m.filename
        assert m.sha256 is None or len(m.sha256) == 64
        if m.name != "default":
            assert m.url is not None and m.url.startswith(("http://", "https://")), m.name
    filenames = [m.filename for m in models]
    assert len(set(filenames)) == len(filenames)  # no two models share a cache file
    for wanted in (
        "ffhq-512",
        "ffhq-1024",
        "afhqcat-512",
        "afhqdog-512",
        "afhqwild-512",
        "metfaces-1024",
        "lions-512",
        "dogs-1024",
        "horses-256",
        "elephants-512",
        "lsun-car-512",
        "lsun-cat-256",
        "human-512",
        "lhq-256",
    ):
        assert wanted in names
    assert {m.format for m in models} == set(registry.FORMATS)


def test_list_models_returns_a_fresh_list() -> None:
    a = registry.list_models()
    a.clear()
    assert registry.list_models()


def test_get_model_unknown_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match="unknown model 'nope'") as err:
        registry.get_model("nope")
    assert "ffhq-512" in str(err.value) and "default" in str(err.value)


def test_registry_rejects_an_unknown_format(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "models.json"
    entry = {"name": "x", "format": "onnx", "url": "https://example.org/x.onnx"}
    bad.write_text(json.dumps({"models": [entry]}))
    monkeypatch.setattr(registry, "_weights_file", lambda name: bad)
    with pytest.raises(ValueError, match="format 'onnx'"):
        registry.list_models()


def test_cache_dir_respects_draggan_widget_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(registry.HOME_ENV, str(tmp_path / "h"))
    assert registry.cache_dir() == tmp_path / "h"
    monkeypatch.delenv(registry.HOME_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert registry.cache_dir() == tmp_path / ".cache" / "draggan_widget"


# ---------------------------------------------------------------------------- resolve_source()


def test_resolve_source_existing_path_is_returned_as_is(tmp_path: Path) -> None:
    f = tmp_path / "mine.pkl"
    f.write_bytes(b"x")
    assert registry.resolve_source(str(f)) == f


def test_resolve_source_url_downloads_once_into_the_cache(server: FakeServer, home: Path) -> None:
    url = server.url("/model.pkl")
    path = registry.resolve_source(url, progress=False)
    assert path.name == "model.pkl" and path.is_relative_to(home / "urls")
    assert path.read_bytes() == DATA
    assert registry.resolve_source(url, progress=False) == path
    assert len(server.requests) == 1


def test_resolve_source_file_url(tmp_path: Path, home: Path) -> None:
    src = tmp_path / "src.pt"
    src.write_bytes(DATA)
    path = registry.resolve_source(src.as_uri(), progress=False)
    assert path.name == "src.pt" and path.read_bytes() == DATA


def test_resolve_source_model_name_and_its_url_share_the_cache(
    server: FakeServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, server.url("/model.pkl"), sha256=SHA)
    by_name = registry.resolve_source("toy", progress=False)
    by_url = registry.resolve_source(server.url("/model.pkl"), progress=False)
    assert by_name == by_url == home / "toy.pkl"
    assert len(server.requests) == 1


def test_resolve_source_missing_path_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no weights file"):
        registry.resolve_source(str(tmp_path / "nope.pkl"))
    with pytest.raises(ValueError, match="expected an existing weights file") as err:
        registry.resolve_source("not-a-model")
    assert "ffhq-512" in str(err.value)
    with pytest.raises(ValueError, match="expected an existing weights file"):
        registry.resolve_source("ftp://example.org/x.pkl")
    with pytest.raises(ValueError, match="is a directory"):
        registry.resolve_source(str(tmp_path))
