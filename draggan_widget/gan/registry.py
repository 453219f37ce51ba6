"""Known pretrained generators and a resumable downloader for their weights.

The list of models lives in ``weights/models.json`` (installed as the package data of
``draggan_widget.weights``), so adding a model is a data change, not a code change. Files are
cached under `cache_dir` and fetched with `download`, which moves a file into place only once
it is complete (the length the server announced) and, where a checksum is given, verified: a
half-written or corrupt file never sits at the final path, where `load_generator` would try to
read it. No registry entry publishes a checksum yet, so registry downloads are checked for
length only. An entry with ``manual`` steps (a file behind a Google Drive page, which answers
a script with HTML) is never downloaded: the error gives the steps and the path to save to.

An interrupted transfer resumes from its ``.part`` file only when something vouches for that
file: a checksum to verify the result, or a record (``.part.json``) of the URL, the length and
the server's ETag or Last-Modified, which the resume request sends back (``If-Range``) so that
a changed file is sent whole. A stale ``.part`` of unknown origin is discarded.

Cache file names are ours: a hash of the URL and the URL's last segment reduced to safe
characters, checked to lie inside the cache, so no URL can name a path elsewhere (an encoded
``%2F`` or ``..`` in a URL once could).

Nothing here touches the network or the disk at import time.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO, Optional, Union

from tqdm import tqdm

logger = logging.getLogger(__name__)

__all__ = [
    "DownloadError",
    "ModelInfo",
    "bundled_path",
    "cache_dir",
    "download",
    "download_model",
    "get_model",
    "list_models",
    "resolve_source",
    "url_cache_path",
]

FORMATS = ("nvidia_pkl", "tf_pkl", "rosinality", "native")
FAMILIES = ("stylegan2", "stylegan3")
ASPECTS = ("1:1", "1:2")  # width:height; 1:2 is StyleGAN-Human's portrait
DEFAULT_MODEL = "default"
HOME_ENV = "DRAGGAN_WIDGET_HOME"
USER_AGENT = "draggan-widget (+https://github.com/draggan-widget)"
# In a checkout that is not installed, `draggan_widget.weights` does not exist: the package
# data sits in the repository's top-level weights/ directory, next to the package.
_CHECKOUT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
_WEIGHT_SUFFIXES = {".pkl", ".pt", ".pth", ".ckpt", ".safetensors"}
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 100  # characters of a cache file name
TOTAL_TIMEOUT = 4 * 3600.0  # seconds one `download` call may take, however the server trickles
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE_RE = re.compile(r"bytes\s+\*/(\d+)")

PathLike = Union[str, "os.PathLike[str]"]


class DownloadError(RuntimeError):
    """A download failed: HTTP error, unreachable host, truncated transfer or bad checksum."""


@dataclass(frozen=True)
class ModelInfo:
    """One downloadable generator, as listed in ``weights/models.json``.

    Attributes:
        name: the name `download_model` and `load_generator` accept.
        description: what the model generates, in one sentence.
        resolution: the generator's ``img_resolution`` (longer image side), None if unknown.
        format: ``"nvidia_pkl"``, ``"tf_pkl"``, ``"rosinality"`` or ``"native"``; the loader
            reads the format from the file itself, this is for people choosing a model.
        url: where the file is published; None for the bundled model.
        sha256: the publisher's checksum (lowercase hex), None where none is published.
        size: the file size in bytes, None where unknown.
        licence: the terms the weights are published under.
        source: where the URL was found, so it can be checked again.
        filename: the file's name in the cache (or in the package, for the bundled model).
        family: the architecture, ``"stylegan2"`` (StyleGAN2 and StyleGAN-Human) or
            ``"stylegan3"`` (configs T and R); as with ``format``, the loader reads it from
            the file, this is for people choosing a model.
        aspect: ``"width:height"`` of the images: ``"1:1"``, or ``"1:2"`` for
            StyleGAN-Human's portraits (``resolution`` is then their height).
        manual: for a file that only a browser can fetch (a Google Drive page), the steps to
            download it by hand; `download_model` then never tries the network and says
            where to save the file instead. None for files fetched automatically.
    """

    name: str
    description: str
    resolution: Optional[int]
    format: str
    url: Optional[str]
    sha256: Optional[str]
    size: Optional[int]
    licence: str
    source: str
    filename: str
    family: str = "stylegan2"
    aspect: str = "1:1"
    manual: Optional[str] = None


# ---------------------------------------------------------------------------- the registry


def _weights_file(filename: str) -> Optional[Path]:
    """The package-data file ``filename`` of ``draggan_widget.weights``, or None if absent.

    Tries the installed package first, then the checkout's ``weights/`` directory, so the
    registry works both after ``pip install`` and when run from a clone.
    """
    try:
        ref = resources.files("draggan_widget.weights").joinpath(filename)
    except ModuleNotFoundError:
        ref = None
    if isinstance(ref, Path) and ref.is_file():
        return ref
    fallback = _CHECKOUT_WEIGHTS / filename
    return fallback if fallback.is_file() else None


def _model_from_entry(entry: dict[str, Any], origin: Path) -> ModelInfo:
    try:
        name = str(entry["name"])
        url = entry.get("url")
        info = ModelInfo(
            name=name,
            description=str(entry.get("description", "")),
            resolution=entry.get("resolution"),
            format=str(entry["format"]),
            url=url,
            sha256=entry.get("sha256"),
            size=entry.get("size"),
            licence=str(entry.get("licence", "unknown")),
            source=str(entry.get("source", "")),
            filename=str(entry.get("filename") or _filename_from_url(url or name)),
            family=str(entry.get("family", "stylegan2")),
            aspect=str(entry.get("aspect", "1:1")),
            manual=entry.get("manual"),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{origin}: bad model entry {entry!r}: {exc}") from None
    if info.filename != _safe_name(info.filename):
        raise ValueError(
            f"{origin}: model {name!r} has filename {info.filename!r}; a cache file name may "
            "only use letters, digits, '.', '_' and '-', and may not start with '.'"
        )
    if info.format not in FORMATS:
        raise ValueError(f"{origin}: model {name!r} has format {info.format!r}; expected {FORMATS}")
    if info.family not in FAMILIES:
        raise ValueError(
            f"{origin}: model {name!r} has family {info.family!r}; expected {FAMILIES}"
        )
    if info.aspect not in ASPECTS:
        raise ValueError(f"{origin}: model {name!r} has aspect {info.aspect!r}; expected {ASPECTS}")
    if info.manual is not None and not (isinstance(info.manual, str) and info.manual.strip()):
        raise ValueError(f"{origin}: model {name!r} has manual {info.manual!r}; expected steps")
    if info.sha256 is not None and not _SHA256_RE.match(info.sha256):
        raise ValueError(f"{origin}: model {name!r} has sha256 {info.sha256!r}; expected 64 hex")
    return info


def _read_registry() -> list[ModelInfo]:
    path = _weights_file("models.json")
    if path is None:
        raise FileNotFoundError(
            "weights/models.json is missing from the draggan_widget installation; "
            "reinstall the package (pip install --force-reinstall draggan-widget)"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    models = [_model_from_entry(entry, path) for entry in data["models"]]
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: model names listed twice: {duplicates}")
    return models


def list_models() -> list[ModelInfo]:
    """All known models, in the order of ``weights/models.json`` (the bundled one first).

    Returns:
        A new list on every call; the entries are frozen.

    Raises:
        FileNotFoundError: the installation lacks ``models.json``.
        ValueError: ``models.json`` is malformed (a packaging bug).
    """
    return list(_read_registry())


def get_model(name: str) -> ModelInfo:
    """The registry entry called ``name`` (exact, else case-insensitive).

    Raises:
        ValueError: no such model; the message lists the known names.
    """
    models = _read_registry()
    for match in (lambda m: m.name == name, lambda m: m.name.lower() == str(name).lower()):
        for m in models:
            if match(m):
                return m
    known = ", ".join(m.name for m in models)
    raise ValueError(f"unknown model {name!r}; known models: {known}")


def cache_dir() -> Path:
    """Where downloaded weights are kept: ``$DRAGGAN_WIDGET_HOME`` or ``~/.cache/draggan_widget``.

    The directory is not created here; `download` creates it when it first writes.
    """
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "draggan_widget"


def bundled_path(filename: str = "default.safetensors") -> Path:
    """The path of a weights file shipped inside the package (the ``"default"`` model).

    Raises:
        FileNotFoundError: the file is not in this installation or checkout.
    """
    path = _weights_file(filename)
    if path is None:
        raise FileNotFoundError(
            f"the bundled model file {filename} is missing: it belongs in the package "
            f"directory draggan_widget/weights (weights/ in a checkout, {_CHECKOUT_WEIGHTS}). "
            "Reinstall draggan-widget, or in a checkout train it with draggan_widget.train, "
            "or pass another model name or a file path instead"
        )
    return path


# ---------------------------------------------------------------------------- downloading


def _safe_name(name: str) -> str:
    """``name`` reduced to a plain file name: its last segment after any ``/`` or ``\\``, other
    characters than letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``, no leading dot
    (no ``..``, no hidden file), at most `MAX_NAME` characters (keeping the suffix)."""
    last = re.split(r"[/\\]", name)[-1]
    return _UNSAFE_NAME_CHARS.sub("_", last)[-MAX_NAME:].lstrip(".") or "download"


def _filename_from_url(url: str) -> str:
    """A safe file name from the last segment of ``url``'s path, unquoted (see `_safe_name`).

    Unquoting happens before the name is taken, so an encoded ``/`` (``%2F``) cannot smuggle
    a directory in.
    """
    return _safe_name(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def _inside(root: Path, path: Path) -> Path:
    """``path``, after checking that it resolves to a place inside ``root``.

    Raises:
        DownloadError: it would not (a symlink in the cache, or a bug in the naming).
    """
    if not path.resolve().is_relative_to(root.resolve()):
        raise DownloadError(
            f"refusing to write {path}: it lies outside the cache {root}; check that the "
            "cache directory holds no links to other places"
        )
    return path


def url_cache_path(url: str, cache: Optional[PathLike] = None) -> Path:
    """Where `resolve_source` keeps the download of ``url``: ``urls/<hash>/<safe name>``.

    The hash of the whole URL keeps two URLs that end in the same name apart.
    """
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return _inside(root, root / "urls" / key / _filename_from_url(url))


def _sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def _open(url: str, start: int, timeout: float, if_range: Optional[str] = None) -> Any:
    """``urlopen`` asking for bytes from ``start`` on, with errors turned into sentences.

    ``if_range`` (an ETag or a date) makes the server send the whole file instead when its
    copy changed since the part file was started.

    Returns the response, or None when the server says the requested range is past the end
    (HTTP 416) and reports a total equal to ``start``: the part file is already complete.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if start > 0:
        request.add_header("Range", f"bytes={start}-")
        if if_range:
            request.add_header("If-Range", if_range)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start > 0:
            match = _UNSATISFIED_RANGE_RE.search(exc.headers.get("Content-Range", "") or "")
            exc.close()
            if match and int(match.group(1)) == start:
                return None
            raise _RestartNeeded(f"server refused to resume at byte {start} (HTTP 416)") from None
        exc.close()
        hint = {
            401: "the server wants a login",
            403: "access denied; the link may have expired or moved",
            404: "no such file on the server; the link may have moved",
        }.get(exc.code, "server error")
        raise DownloadError(
            f"download of {url} failed: HTTP {exc.code} {exc.reason} ({hint})"
        ) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError) or (
            urllib.parse.urlsplit(url).scheme == "file" and isinstance(exc.reason, OSError)
        ):
            raise FileNotFoundError(f"{url}: {exc.reason}") from None
        raise DownloadError(
            f"could not reach {url}: {exc.reason}; check the network connection or proxy "
            f"settings, or download the file by hand"
        ) from None
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets during the handshake
        raise DownloadError(f"could not download {url}: {exc!r}") from None


class _RestartNeeded(Exception):
    """The part file cannot be resumed; start again from byte 0."""


def _copy_body(
    response: BinaryIO, out: BinaryIO, bar: tqdm, chunk_size: int, deadline: Optional[float]
) -> tuple[int, Optional[BaseException]]:
    """Stream ``response`` into ``out``; returns the bytes written and the error that ended it.

    Reads return whatever has arrived (``read1``), so a server that trickles a byte at a time
    cannot keep one read, and the check of ``deadline`` (a `time.monotonic` value), waiting.
    """
    read = getattr(response, "read1", None) or response.read
    written = 0
    try:
        while True:
            if deadline is not None and time.monotonic() > deadline:
                return written, TimeoutError("the download took longer than its total_timeout")
            block = read(chunk_size)
            if not block:
                return written, None
            out.write(block)
            written += len(block)
            bar.update(len(block))
    except (OSError, http.client.HTTPException) as exc:  # connection reset, timeout, ...
        return written, exc


def _record_path(part: Path) -> Path:
    """Where the part file's origin is recorded (URL, length, ETag, Last-Modified)."""
    return part.with_name(part.name + ".json")


def _read_record(part: Path) -> dict[str, Any]:
    try:
        record = json.loads(_record_path(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _record_path(part).unlink(missing_ok=True)


def _resumable_size(part: Path, url: str, verified: bool) -> int:
    """How many bytes of ``part`` may be kept; a part file nothing vouches for is deleted.

    A checksum checks the result, whatever the part holds. Without one, only a part file
    this downloader started for the same URL, with a recorded validator (ETag,
    Last-Modified or length), is resumed.
    """
    if not part.is_file():
        _record_path(part).unlink(missing_ok=True)
        return 0
    record = _read_record(part)
    vouched = record.get("url") == url and any(
        record.get(k) is not None for k in ("etag", "last_modified", "length")
    )
    if verified or vouched:
        return part.stat().st_size
    logger.warning(
        "discarding %s: no checksum and no record of its origin, so its bytes cannot be "
        "trusted; downloading %s from the start",
        part,
        url,
    )
    _discard(part)
    return 0


def _if_range(record: dict[str, Any]) -> Optional[str]:
    """The validator to send back on resuming: a strong ETag, else the Last-Modified date."""
    etag = record.get("etag")
    if isinstance(etag, str) and not etag.startswith("W/"):
        return etag
    modified = record.get("last_modified")
    return modified if isinstance(modified, str) else None


def download(
    url: str,
    dest: PathLike,
    *,
    sha256: Optional[str] = None,
    progress: bool = True,
    timeout: float = 30.0,
    total_timeout: Optional[float] = TOTAL_TIMEOUT,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous attempt and checking the result.

    Bytes go to ``dest`` + ``.part`` first. If that file exists and can be trusted (see the
    module docstring), the transfer resumes from its end with an HTTP Range request (a server
    that ignores it, or whose file changed, sends the whole file, which is handled by
    starting over). Only a complete file whose sha256 matches (when one is given) is renamed
    onto ``dest``, atomically, so ``dest`` never holds a partial file.

    Args:
        url: ``http://``, ``https://`` or ``file://`` URL.
        dest: the final path; its directory is created.
        sha256: expected checksum (hex); None skips the check.
        progress: show a tqdm progress bar (on stderr).
        timeout: seconds to wait for the server on connect and on each read.
        total_timeout: seconds the whole call may take (None: no limit), so that a server
            sending a byte now and then cannot hold it for ever. What arrived is kept.
        chunk_size: bytes per read.

    Returns:
        ``dest`` as a `Path`.

    Raises:
        DownloadError: HTTP error (the message names the URL and status), unreachable host,
            a web page served instead of a file, a transfer that ended early or ran past
            ``total_timeout`` (the ``.part`` file is kept so that calling again resumes), or a
            checksum mismatch (the ``.part`` file is deleted; the message gives both
            checksums).
        FileNotFoundError: a ``file://`` URL naming no file.
    """
    dest = Path(dest).expanduser()
    part = dest.with_suffix(dest.suffix + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected_sha = sha256.lower() if sha256 else None
    deadline = None if total_timeout is None else time.monotonic() + total_timeout
    logger.info("downloading %s to %s", url, dest)

    for _attempt in range(2):  # the second attempt only after a refused resume
        have = _resumable_size(part, url, expected_sha is not None)
        try:
            total = _fetch_into(url, part, have, progress, timeout, chunk_size, deadline)
        except _RestartNeeded as exc:
            logger.warning("%s; downloading %s from the start", exc, url)
            _discard(part)
            continue
        break
    else:  # a server that answers a plain request with a partial one
        raise DownloadError(f"could not resume or restart the download of {url}")

    if expected_sha is not None:
        got = _sha256_file(part)
        if got != expected_sha:
            _discard(part)
            raise DownloadError(
                f"checksum mismatch for {url}: expected sha256 {expected_sha}, got {got} "
                f"({total} bytes); the file was deleted. The server may have changed the file "
                "or sent an error page; try again, or report the link"
            )
    os.replace(part, dest)
    _record_path(part).unlink(missing_ok=True)
    logger.info("downloaded %s to %s (%d bytes)", url, dest, total)
    return dest


def _resumed_total(url: str, headers: Any, have: int, record: dict[str, Any]) -> Optional[int]:
    """The file's total size from a 206 answer, checked against the request and the record.

    Raises:
        _RestartNeeded: the answer starts at another byte, or the file's size changed.
    """
    match = _CONTENT_RANGE_RE.search(headers.get("Content-Range", "") or "")
    if match is None or int(match.group(1)) != have:
        raise _RestartNeeded(f"server resumed at the wrong byte ({match and match.group(0)})")
    total: Optional[int] = None if match.group(3) == "*" else int(match.group(3))
    length = headers.get("Content-Length")
    if total is None and length is not None and length.isdigit():
        total = have + int(length)
    if record.get("length") is not None and total != record["length"]:
        raise _RestartNeeded(f"the file's size changed from {record['length']} to {total} bytes")
    logger.info("resuming %s at byte %d", url, have)
    return total


def _fetch_into(
    url: str,
    part: Path,
    have: int,
    progress: bool,
    timeout: float,
    chunk_size: int,
    deadline: Optional[float],
) -> int:
    """One HTTP exchange that extends ``part`` (or rewrites it); returns its final size."""
    record = _read_record(part) if have else {}
    response = _open(url, have, timeout, _if_range(record))
    if response is None:
        if record.get("length") not in (None, have):
            raise _RestartNeeded(f"the part file has {have} bytes, not the recorded length")
        logger.info("%s is already complete (%d bytes)", part, have)
        return have
    with response:
        status = getattr(response, "status", None)  # None for file:// URLs
        headers = response.headers
        content_type = (headers.get("Content-Type") or "").lower()
        if content_type.startswith("text/html") and urllib.parse.urlsplit(url).scheme != "file":
            raise DownloadError(
                f"{url} answered with a web page, not a weights file (it may need a browser, "
                f"a login, or a confirmation click). Download it by hand and save it as "
                f"{part.with_suffix('')}, or pass the file's path instead"
            )
        length = headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        start = 0
        if status == 206:
            total = _resumed_total(url, headers, have, record)
            start = have
        else:
            if have:
                logger.warning(
                    "%s sent the whole file instead of the rest (it ignored the resume request, "
                    "or the file changed); downloading it again from the start",
                    url,
                )
            total = length
            record = {
                "url": url,
                "length": total,
                "etag": headers.get("ETag"),
                "last_modified": headers.get("Last-Modified"),
            }
            _record_path(part).write_text(json.dumps(record), encoding="utf-8")

        bar = tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.with_suffix("").name,
            disable=not progress,
            leave=False,
        )
        with bar, part.open("ab" if start else "wb") as out:
            written, error = _copy_body(response, out, bar, chunk_size, deadline)
        size = start + written
        if error is not None or (total is not None and size != total):
            expected = f"{total} bytes" if total is not None else "the full file"
            reason = f" ({error!r})" if error is not None else ""
            raise DownloadError(
                f"download of {url} ended early: got {size} of {expected}{reason}. The partial "
                f"file is kept at {part}; call again to resume from there"
            )
        return size


def _cached(dest: Path, info: ModelInfo) -> bool:
    """Whether ``dest`` holds registry model ``info`` (size and checksum, where known)."""
    if not dest.is_file():
        return False
    if info.size is not None and dest.stat().st_size != info.size:
        logger.warning(
            "cached %s has %d bytes, expected %d; downloading it again",
            dest,
            dest.stat().st_size,
            info.size,
        )
        return False
    if info.sha256 is not None and _sha256_file(dest) != info.sha256.lower():
        logger.warning("cached %s does not match its sha256; downloading it again", dest)
        return False
    return True


def _manual_download(info: ModelInfo, dest: Path) -> DownloadError:
    """The error for a model that only a browser can fetch: how to get it, where to put it."""
    return DownloadError(
        f"model {info.name!r} cannot be downloaded automatically (its publisher serves it "
        f"through a web page). Download it by hand from {info.url}: "
        f"{info.manual.rstrip('.')}. Then save the file as {dest.resolve()} and load "
        f"{info.name!r} again (or pass the file's path instead of the name)"
    )


def _refuse_download(source: str, dest: Path) -> DownloadError:
    return DownloadError(
        f"{source} is not in the cache ({dest}) and downloading was not allowed here. Load it "
        f"yourself first (load_generator({source!r})), or allow the download"
    )


def download_model(
    name: str,
    *,
    cache: Optional[PathLike] = None,
    progress: bool = True,
    download: bool = True,
) -> Path:
    """The local path of registry model ``name``, downloading it on first use.

    A cached file is used as is when its size and checksum (where published) match, so a
    second call costs no network access; one that does not match is downloaded again.
    ``"default"`` is the model shipped inside the package and is never downloaded.

    Args:
        name: a name from `list_models`.
        cache: the cache directory; None means `cache_dir`.
        progress: show a progress bar while downloading.
        download: False raises instead of downloading a model that is not cached.

    Returns:
        The path of the weights file.

    Raises:
        ValueError: unknown model name.
        FileNotFoundError: ``"default"`` and the bundled file is missing.
        DownloadError: the download failed (see `download`), or was needed and not allowed,
            or the model must be downloaded by hand (``manual``; the message gives the steps
            and the path to save the file under; the network is not touched).
    """
    info = get_model(name)
    if info.name == DEFAULT_MODEL or info.url is None:
        return bundled_path(info.filename)
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    dest = _inside(root, root / info.filename)
    if _cached(dest, info):
        logger.info("using cached %s for model %r", dest, info.name)
        return dest
    if info.manual is not None:
        raise _manual_download(info, dest)
    if not download:
        raise _refuse_download(info.name, dest)
    logger.info("downloading model %r (%s) from %s", info.name, info.licence, info.url)
    return _download_file(info.url, dest, sha256=info.sha256, progress=progress)


_download_file = download  # `download_model` and `resolve_source` shadow the name


def _looks_like_path(source: str) -> bool:
    return (
        os.sep in source
        or "/" in source
        or source.startswith("~")
        or Path(source).suffix.lower() in _WEIGHT_SUFFIXES
    )


def resolve_source(source: str, *, progress: bool = True, download: bool = True) -> Path:
    """Turn what a user typed into a local weights file: a path, a URL or a model name.

    Args:
        source: an existing file; an ``http(s)://`` or ``file://`` URL (downloaded once into
            ``cache_dir()/urls/<hash of the URL>/<safe file name from the URL>``, see
            `url_cache_path`; a registry model's own URL shares that model's cache entry); or
            a name from `list_models`.
        progress: show a progress bar while downloading.
        download: False raises instead of downloading what is not cached yet (for sources
            read from files, which must not make the machine fetch things).

    Returns:
        The path of a local file.

    Raises:
        FileNotFoundError: ``source`` looks like a path but no file is there, or
            ``"default"`` and the bundled file is missing.
        ValueError: ``source`` is none of the accepted kinds; the message lists them.
        DownloadError: a download failed, or was needed and ``download`` is False.
    """
    source = str(source)
    path = Path(source).expanduser()
    if path.is_file():
        return path
    models = _read_registry()
    if urllib.parse.urlsplit(source).scheme.lower() in ("http", "https", "file"):
        for info in models:
            if info.url == source:
                return download_model(info.name, progress=progress, download=download)
        dest = url_cache_path(source)
        if dest.is_file():
            logger.info("using cached %s for %s", dest, source)
            return dest
        if not download:
            raise _refuse_download(source, dest)
        return _download_file(source, dest, progress=progress)
    if source.lower() in {m.name.lower() for m in models}:
        return download_model(source, progress=progress, download=download)
    if path.exists():
        raise ValueError(f"{path} is a directory; expected a weights file")
    if "://" not in source and _looks_like_path(source):
        raise FileNotFoundError(f"no weights file at {path}")
    raise ValueError(
        f"cannot load {source!r}: expected an existing weights file, an http(s):// or file:// "
        f"URL, or a model name ({', '.join(m.name for m in models)})"
    )
