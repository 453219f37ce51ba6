"""Save and load whole sessions, and read latents others saved.

A saved session is two or three files next to each other::

    edit.json                    what a person can read and diff: model (id and a sha256 of
                                 its weights), config, points, mask (run-length), seed
    edit.latents.pt              the latent and the feature warp masked drags made (when
                                 they made one), ``torch.save`` of plain tensors, read back
                                 with ``torch.load(weights_only=True)``: loading runs no code
    edit.generator.safetensors   only with ``generator="embed"``: the generator itself, for
                                 a pivotally tuned copy that exists nowhere else

The JSON holds the sha256 of each file beside it, so a latent from another save is refused
instead of being silently paired with the wrong points. A save writes every file to a
temporary name first and renames them into place only when all are written, the JSON last,
so a failed save leaves the previous one loadable.

A session file may come from someone else, so `load_session` trusts nothing in it: sizes are
bounded before anything is allocated, the model it names is never downloaded unless the
caller allows it, and every fault is a `SessionFileError` that names the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Literal, Optional, Union

import numpy as np
import torch
from torch import Tensor

from . import __version__
from .drag import DragConfig, DragSession
from .drag.config import ADDED_FIELDS, REMOVED_FIELDS
from .gan.formats import WeightsFileError, load_generator, save_generator
from .gan.formats.safe_pickle import torch_load_weights_only
from .gan.registry import DownloadError
from .gan.stylegan2 import Generator, image_shape

logger = logging.getLogger(__name__)

__all__ = ["SessionFileError", "generator_sha256", "load_latent", "load_session", "save_session"]

PathLike = Union[str, "os.PathLike[str]"]
GeneratorMode = Literal["reference", "embed"]
OnMismatch = Literal["error", "warn"]

SESSION_FORMAT = "draggan-widget-session"
SESSION_VERSION = 1
LATENT_KEYS = ("ws", "w", "latent")  # ours, NVIDIA's projected_w.npz, DragGAN's inversion


class SessionFileError(ValueError):
    """A session file (or a file it names) is corrupt, truncated, foreign, inconsistent or
    asks for too much; the message names the file. Nothing was loaded."""


# ----------------------------------------------------------------------------- latents


def _latent_shape(w: Any, what: str, G: Optional[Generator]) -> Tensor:
    """A W latent ``[1, w_dim]`` or a W+ latent ``[1, L, w_dim]`` (``[1, num_ws, w_dim]`` if G)."""
    if isinstance(w, np.ndarray):
        if not np.issubdtype(w.dtype, np.floating):
            raise ValueError(f"{what}: a latent must hold floats, got {w.dtype}")
        w = torch.from_numpy(w.copy())
    if not isinstance(w, Tensor) or not w.is_floating_point():
        raise ValueError(f"{what}: expected a float array or tensor, got {type(w).__name__}")
    w = w.detach().float().cpu()
    shape = list(w.shape)
    if w.ndim == 1 or (w.ndim == 3 and shape[0] == 1 and shape[1] == 1):
        w = w.reshape(1, -1)  # W: one style
    elif w.ndim == 2 and shape[0] > 1:
        w = w[None]  # W+ without the batch axis
    elif not (w.ndim == 2 or (w.ndim == 3 and shape[0] == 1)):
        raise ValueError(
            f"{what}: a latent must be [w_dim], [1, w_dim], [num_ws, w_dim] or "
            f"[1, num_ws, w_dim], got {shape}"
        )
    if not torch.isfinite(w).all():
        raise ValueError(f"{what}: the latent contains NaN or infinity")
    if G is None:
        return w
    if w.shape[-1] != G.w_dim or (w.ndim == 3 and w.shape[1] != G.num_ws):
        raise ValueError(
            f"{what}: a latent of shape {shape} does not fit this generator "
            f"(num_ws={G.num_ws}, w_dim={G.w_dim})"
        )
    return w.reshape(1, 1, -1).repeat(1, G.num_ws, 1) if w.ndim == 2 else w


def _pick(obj: Any, what: str) -> Any:
    """The latent in a loaded dict (``ws``, ``w`` or ``latent``), or the object itself."""
    if not isinstance(obj, dict):
        return obj
    for key in LATENT_KEYS:
        if key in obj:
            return obj[key]
    raise ValueError(f"{what} holds no latent: expected one of the keys {LATENT_KEYS}")


def _read_latent_file(path: Path) -> Any:
    """The array or tensor in a ``.npy``, ``.npz`` or ``torch.save`` file, by its content."""
    with path.open("rb") as f:
        head = f.read(6)
    try:
        if head == b"\x93NUMPY":
            return np.load(path, allow_pickle=False)
        if head[:2] == b"PK":
            with zipfile.ZipFile(path) as z:
                is_npz = all(n.endswith(".npy") for n in z.namelist())
            if is_npz:
                with np.load(path, allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
                return arrays if len(arrays) != 1 else next(iter(arrays.values()))
        return torch_load_weights_only(path)  # its refusals never advise weights_only=False
    except (ValueError, OSError, EOFError, RuntimeError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"{path} is not a latent file this package reads (a .npy, .npz or torch.save "
            f"file of plain tensors), or it is truncated: {exc}"
        ) from exc
    except pickle.UnpicklingError as exc:  # an object refused, or not a pickle
        raise ValueError(
            f"{path}: not loaded: it is not a torch.save file of plain tensors ({exc}); "
            "nothing in it was run"
        ) from exc


def load_latent(path: PathLike, G: Optional[Generator] = None) -> Tensor:
    """Read a latent saved by this package, NVIDIA's projector or the DragGAN GUI.

    Reads ``.npy`` (``allow_pickle=False``), ``.npz`` (key ``w``: NVIDIA's
    ``projected_w.npz``) and ``torch.save`` files (a tensor, or a dict with ``ws``, ``w`` or
    ``latent``; read with ``weights_only=True``), told apart by content, not name. Shapes
    ``[1, num_ws, w_dim]``, ``[num_ws, w_dim]``, ``[1, w_dim]`` and ``[w_dim]`` are accepted.

    Args:
        path: the file.
        G: if given, check the latent fits it and return ``[1, num_ws, w_dim]``.

    Returns:
        ``[1, w_dim]`` (W) or ``[1, num_ws, w_dim]`` (W+), float32 on the CPU; always
        ``[1, G.num_ws, G.w_dim]`` when ``G`` is given. `DragSession` takes either.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a latent file, truncated, pickled objects, a wrong shape, NaN.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no latent file at {path}")
    arrays = _read_latent_file(path)
    if isinstance(arrays, dict) and "feature_warp" in arrays:
        logger.warning(
            "%s also holds the feature warp of a saved session's drags, which a latent alone "
            "does not carry: the image will differ; load_session keeps both",
            path,
        )
    return _latent_shape(_pick(arrays, str(path)), str(path), G)


# ----------------------------------------------------------------------------- sessions


def generator_sha256(G: Generator) -> str:
    """A sha256 of the generator's architecture and weights, independent of the file format.

    The same weights give the same digest whether they came from a pickle, a ``.pt`` or our
    safetensors, on any device; a pivotally tuned copy gets a digest of its own.
    """
    h = hashlib.sha256(json.dumps(G.init_kwargs, sort_keys=True).encode())
    for name, t in sorted(G.state_dict().items()):
        t = t.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{list(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _rle_encode(mask: np.ndarray) -> list[int]:
    """Run lengths of a bool mask, row-major, starting with a run of False (maybe 0 long)."""
    flat = mask.ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return [0, *runs] if flat[0] else runs


def _rle_decode(runs: Any, height: Any, width: Any, max_side: int) -> np.ndarray:
    """The ``height x width`` bool mask of `_rle_encode`'s runs.

    The size is checked against ``max_side`` (the generator's longer side) before anything
    is allocated: a session file could otherwise ask for a mask of any size.
    """
    ok = isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0
    if not ok or not isinstance(runs, list) or not all(isinstance(r, int) and r >= 0 for r in runs):
        raise ValueError("the mask must have positive height and width and runs of ints >= 0")
    if height > max_side or width > max_side:
        raise ValueError(
            f"the mask is {height}x{width}, larger than the generator's images "
            f"({max_side} px on the longer side)"
        )
    if sum(runs) != height * width:
        raise ValueError(f"the mask's runs cover {sum(runs)} pixels, not {height}x{width}")
    values = np.arange(len(runs)) % 2 == 1  # False, True, False, ...
    return np.repeat(values, runs).reshape(height, width)


def _session_paths(path: PathLike) -> tuple[Path, Path, Path]:
    """The files of session ``edit``: ``edit.json``, ``edit.latents.pt``, ``edit.generator...``."""
    path = Path(path).expanduser()
    base = path.with_suffix("") if path.suffix == ".json" else path
    return (
        base.with_name(base.name + ".json"),
        base.with_name(base.name + ".latents.pt"),
        base.with_name(base.name + ".generator.safetensors"),
    )


def _temporary(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _session_doc(
    session: DragSession, model: Optional[str], files: dict[str, Any]
) -> dict[str, Any]:
    """What the JSON of a saved session holds (see the module docstring)."""
    G, mask = session.G, session.mask
    return {
        "format": SESSION_FORMAT,
        "version": SESSION_VERSION,
        "saved_by": f"draggan-widget {__version__}",
        "model": {
            "id": model,
            "weights_sha256": generator_sha256(G),
            "img_resolution": G.img_resolution,
            "img_height": image_shape(G)[0],
            "img_width": image_shape(G)[1],
            "num_ws": G.num_ws,
            "w_dim": G.w_dim,
        },
        "files": files,
        "seed": session.seed,
        "step_count": session.step_count,
        "config": session.config.asdict(),
        "handles": [list(p) for p in session.handles],
        "targets": [list(p) for p in session.targets],
        "mask": None
        if mask is None
        else {"height": mask.shape[0], "width": mask.shape[1], "rle": _rle_encode(mask)},
    }


def save_session(
    session: DragSession,
    path: PathLike,
    *,
    model: Optional[str] = None,
    generator: GeneratorMode = "reference",
) -> Path:
    """Save a session so the drag can be continued or redone elsewhere (`load_session`).

    Stop any running drag first (the widget does): the session is read field by field.
    All files are written to temporary names first and moved into place together, the JSON
    last, so a save that fails (a full disk, a value JSON cannot hold) leaves an earlier save
    at ``path`` as it was.

    Args:
        session: the session.
        path: ``edit.json`` or ``edit``; the latent goes to ``edit.latents.pt`` beside it.
        model: how to get the generator back: a `load_generator` source (``"default"``, a
            registry name, a path or URL). The weights' sha256 is saved too, so the wrong
            model is caught at load time.
        generator: ``"reference"`` saves only ``model`` and the sha256; ``"embed"`` also
            writes the generator (``edit.generator.safetensors``), needed after pivotal
            tuning, whose tuned copy exists nowhere else.

    Returns:
        The path of the JSON file.
    """
    if generator not in ("reference", "embed"):
        raise ValueError(f"generator must be 'reference' or 'embed', got {generator!r}")
    json_path, latents_path, gen_path = _session_paths(path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    targets = [latents_path] + ([gen_path] if generator == "embed" else []) + [json_path]
    temps = {target: _temporary(target) for target in targets}
    try:
        warp = session.feature_warp
        arrays = {"ws": session.ws.detach().cpu()}
        if warp is not None:
            arrays["feature_warp"] = warp.cpu()
        torch.save(arrays, temps[latents_path])
        files: dict[str, Any] = {
            "latents": {"name": latents_path.name, "sha256": _file_sha256(temps[latents_path])}
        }
        if generator == "embed":
            save_generator(session.G, temps[gen_path])
            files["generator"] = {"name": gen_path.name, "sha256": _file_sha256(temps[gen_path])}
        doc = _session_doc(session, model, files)
        lines = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items())
        temps[json_path].write_text("{\n" + lines + "\n}\n", encoding="utf-8")  # diffable
        for target in targets:  # the JSON last: it is what makes the new files the session
            temps[target].replace(target)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    logger.info("saved session to %s", json_path)
    return json_path


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"no session file at {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SessionFileError(
            f"{path} is not a session file (not JSON, or truncated): {exc!r}"
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != SESSION_FORMAT:
        raise SessionFileError(f"{path} is JSON but not a draggan-widget session file")
    if doc.get("version") != SESSION_VERSION:
        raise SessionFileError(
            f"{path} is a session of format version {doc.get('version')!r}; this draggan-widget "
            f"({__version__}) reads version {SESSION_VERSION}"
        )
    return doc


def _checked_file(json_path: Path, entry: Any, what: str) -> Path:
    """A file named in the session, present and with the sha256 the session recorded."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise SessionFileError(
            f"{json_path}: the entry for the {what} file is missing or malformed"
        )
    path = json_path.with_name(Path(entry["name"]).name)  # never outside the session's folder
    if not path.is_file():
        raise FileNotFoundError(f"{json_path}: its {what} file {path} is missing")
    if _file_sha256(path) != entry.get("sha256"):
        raise SessionFileError(
            f"{path} is not the {what} file saved with {json_path.name} (its sha256 differs): "
            "it was changed, truncated, or comes from another save"
        )
    return path


def _config(json_path: Path, fields: Any) -> DragConfig:
    if not isinstance(fields, dict):
        raise SessionFileError(f"{json_path}: 'config' must be an object")
    for name, neutral in REMOVED_FIELDS.items():
        if name in fields and fields[name] != neutral:
            raise SessionFileError(
                f"{json_path}: config.{name} = {fields[name]!r}, but this version has no "
                f"{name} (it measured no better than off and was removed); set it to "
                f"{neutral!r} in the file to load the session without it"
            )
    fields = {**ADDED_FIELDS, **{k: v for k, v in fields.items() if k not in REMOVED_FIELDS}}
    known = {k: v for k, v in fields.items() if k in DragConfig.__dataclass_fields__}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        logger.warning(
            "%s: ignoring config fields this version does not know: %s", json_path, unknown
        )
    if isinstance(known.get("feature_res"), float):
        raise SessionFileError(f"{json_path}: config.feature_res must be an integer or null")
    try:
        return DragConfig(**known)
    except (TypeError, ValueError) as exc:
        raise SessionFileError(f"{json_path}: invalid config: {exc}") from exc


def _generator_for(
    json_path: Path,
    model: Any,
    entry: Any,
    G: Optional[Generator],
    on_mismatch: OnMismatch,
    allow_download: bool,
) -> Generator:
    """The generator given, else the embedded one, else ``model.id``; checked against the save."""
    if not isinstance(model, dict):
        raise SessionFileError(f"{json_path}: 'model' is missing or malformed")
    if G is None:
        if entry is not None:
            G = load_generator(_checked_file(json_path, entry, "generator"))
        elif isinstance(model.get("id"), str):
            try:
                G = load_generator(model["id"], download=allow_download)
            except DownloadError as exc:
                raise DownloadError(
                    f"{json_path} names the model {model['id']!r}: {exc}; to let a session "
                    "file fetch it, pass load_session(..., allow_download=True)"
                ) from exc
        else:
            raise SessionFileError(
                f"{json_path} names no model and embeds none: pass the generator, "
                "load_session(path, G=...)"
            )
    height, width = image_shape(G)
    arch = {k: getattr(G, k) for k in ("img_resolution", "num_ws", "w_dim")}
    arch.update(img_height=height, img_width=width)
    shape_keys = ("img_height", "img_width")  # absent from files saved before portraits
    saved = {k: model.get(k, arch[k] if k in shape_keys else None) for k in arch}
    if arch != saved:
        raise SessionFileError(
            f"{json_path} was saved with a generator of {saved}; this one has {arch}"
        )
    if generator_sha256(G) != model.get("weights_sha256"):
        message = (
            f"{json_path} was saved with other weights (sha256 {model.get('weights_sha256')}, "
            f"model {model.get('id')!r}); the drag will not look the same"
        )
        if on_mismatch == "error":
            raise SessionFileError(message + "; pass on_mismatch='warn' to load it anyway")
        logger.warning(message)
    return G


def _points(json_path: Path, doc: dict[str, Any], key: str) -> list[list[float]]:
    value = doc.get(key)
    ok = isinstance(value, list) and all(
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
        for p in value
    )
    if not ok:
        raise SessionFileError(f"{json_path}: '{key}' must be a list of [x, y] pairs")
    return value


def _mask(json_path: Path, mask_doc: Any, G: Generator) -> Optional[np.ndarray]:
    if mask_doc is None:
        return None
    if not isinstance(mask_doc, dict):
        raise SessionFileError(f"{json_path}: 'mask' must be an object or null")
    try:
        return _rle_decode(
            mask_doc.get("rle"), mask_doc.get("height"), mask_doc.get("width"), G.img_resolution
        )
    except ValueError as exc:
        raise SessionFileError(f"{json_path}: {exc}") from exc


# What reading a hostile or damaged session can raise from inside json, numpy or torch; each
# becomes a SessionFileError naming the file.
SESSION_CONTENT_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    ZeroDivisionError,
    RecursionError,
    MemoryError,
)


def load_session(
    path: PathLike,
    G: Optional[Generator] = None,
    *,
    device: Union[str, torch.device, None] = None,
    on_mismatch: OnMismatch = "error",
    allow_download: bool = False,
) -> DragSession:
    """Load a session saved by `save_session`: latent, feature warp, points, mask, config
    and seed.

    Everything is read and checked before the session is built, so a bad file raises and
    nothing is half loaded. The loaded session starts a fresh history: its current latent
    is its starting point (undo and reset go no further back).

    Args:
        path: ``edit.json`` (or ``edit``).
        G: the generator; None loads the embedded one, else the saved model id.
        device: see `DragSession` (None: CUDA, then MPS, then CPU).
        on_mismatch: when G's weights differ from the saved sha256: ``"error"`` or
            ``"warn"`` (e.g. to try a drag on a retrained model).
        allow_download: let the saved model id (a URL or registry name) be downloaded when it
            is not in the cache. Off by default: a session file from elsewhere must not make
            this machine fetch things.

    Returns:
        A new `DragSession`.

    Raises:
        FileNotFoundError: the JSON or a file it names is missing.
        SessionFileError: (a ValueError naming the file) a corrupt, truncated, foreign,
            oversized or inconsistent file; another generator.
        WeightsFileError: the embedded generator or the model the session names is unusable.
        DownloadError: the model named is not cached and ``allow_download`` is False, or its
            download failed.
    """
    if on_mismatch not in ("error", "warn"):
        raise ValueError(f"on_mismatch must be 'error' or 'warn', got {on_mismatch!r}")
    json_path = _session_paths(path)[0]
    try:
        return _load_session(json_path, G, device, on_mismatch, allow_download)
    except (SessionFileError, WeightsFileError, DownloadError, FileNotFoundError):
        raise
    except SESSION_CONTENT_ERRORS as exc:
        raise SessionFileError(
            f"{json_path}: the session cannot be loaded ({type(exc).__name__}: {exc})"
        ) from exc


def _load_session(
    json_path: Path,
    G: Optional[Generator],
    device: Union[str, torch.device, None],
    on_mismatch: OnMismatch,
    allow_download: bool,
) -> DragSession:
    doc = _read_json(json_path)
    config = _config(json_path, doc.get("config"))
    handles, targets = _points(json_path, doc, "handles"), _points(json_path, doc, "targets")
    seed, step_count = doc.get("seed"), doc.get("step_count", 0)
    if not (seed is None or (isinstance(seed, int) and not isinstance(seed, bool))):
        raise SessionFileError(f"{json_path}: 'seed' must be an integer or null, got {seed!r}")
    if not isinstance(step_count, int) or step_count < 0:
        raise SessionFileError(f"{json_path}: 'step_count' must be an integer >= 0")
    files = doc.get("files")
    if not isinstance(files, dict):
        raise SessionFileError(f"{json_path}: 'files' is missing or malformed")
    latents_path = _checked_file(json_path, files.get("latents"), "latents")
    G = _generator_for(
        json_path, doc.get("model"), files.get("generator"), G, on_mismatch, allow_download
    )
    mask = _mask(json_path, doc.get("mask"), G)
    try:
        arrays = _read_latent_file(latents_path)
        ws = _latent_shape(_pick(arrays, str(latents_path)), str(latents_path), G)
    except ValueError as exc:
        raise SessionFileError(str(exc)) from exc
    warp = arrays.get("feature_warp") if isinstance(arrays, dict) else None
    try:
        session = DragSession(G, w=ws, config=config, device=device, feature_warp=warp)
        session.set_points(handles, targets)
        session.set_mask(mask)
    except ValueError as exc:
        raise SessionFileError(f"{json_path}: {exc}") from exc
    session.seed = seed
    session.step_count = step_count
    logger.info("loaded session from %s", json_path)
    return session
