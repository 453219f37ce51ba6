"""The Files tab's work: where files go, and sessions saved and read back.

A relative name goes into the tab's folder (created when first written), so that a
notebook's outputs gather beside it. Every write either succeeds and says where in the
status line, or raises with the reason; the widget stays as it was.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Callable, Optional, Union

import ipywidgets as widgets
from torch import nn

from .. import export, session_files
from ..drag import DragSession
from .status import StatusBar, quiet

logger = logging.getLogger(__name__)

Source = Union[str, "os.PathLike[str]"]
OUT_DIR = "draggan-output"  # files with relative names go here, beside the notebook


class SessionFiles:
    """The Files tab's writes and reads, and where they go.

    Args:
        folder: the Files tab's folder box (read at every write: the user may edit it).
        status: where each write says what it wrote.
        session: the session now shown.
        model_source: where its generator came from, if known (a saved session names it).
        stop_drag: stops a running drag, so that a saved latent and its points belong together.
        on_load: shows a session read back, and the path it came from.
    """

    def __init__(
        self,
        folder: widgets.Text,
        status: StatusBar,
        *,
        session: Callable[[], DragSession],
        model_source: Callable[[], Optional[str]],
        stop_drag: Callable[[], None],
        on_load: Callable[[DragSession, Path], None],
    ) -> None:
        self._folder, self._status = folder, status
        self._session, self._model_source = session, model_source
        self._stop_drag, self._on_load = stop_drag, on_load

    @property
    def out_dir(self) -> Path:
        """Where files given by a relative name go (the Files tab's folder), absolute."""
        return Path(self._folder.value.strip() or OUT_DIR).expanduser().absolute()

    def _path(self, path: Source, *, create: bool = True) -> Path:
        """``path`` itself when absolute, else inside `out_dir` (created when ``create``)."""
        path = Path(path).expanduser()
        if path.is_absolute():
            return path
        if create:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / path

    def save_png(self, path: Source = "draggan.png") -> Path:
        """Save the current image (not the overlays) as PNG; returns the path."""
        return self._save(path, ".png", lambda p: export.save_png(self._session().image(), p))

    def save_gif(self, path: Source = "draggan.gif") -> Path:
        """Save the current (or last) drag as an animated GIF, with its points drawn.

        One frame per step, as the canvas showed it, then the final image; a small model's
        frames are enlarged so that the animation can be seen. A running drag is saved as
        far as it got.

        Args:
            path: the file to write, ending in ``.gif``.

        Returns:
            The path written.

        Raises:
            ValueError: another suffix, or no drag to save (none ran since the last edit).
            OSError: the file cannot be written; nothing is left behind.
        """
        return self._save(path, ".gif", lambda p: export.save_gif(self._session(), p, overlay=True))

    def save_mp4(self, path: Source = "draggan.mp4") -> Path:
        """Save the current (or last) drag as an H.264 MP4 video, with its points drawn.

        The same frames as `save_gif`, in a file that is smaller and keeps every colour
        (a GIF has 256); ``path`` ends in ``.mp4``, and the errors are `save_gif`'s. It needs
        the ``[video]`` extra (imageio and imageio-ffmpeg), checked before anything is
        written: without it, `export.MissingExtraError` says what to install, and the session
        and its drag stay as they were.
        """
        return self._save(path, ".mp4", lambda p: export.save_mp4(self._session(), p, overlay=True))

    def save_session(self, path: Source = "draggan-session.json") -> Path:
        """Save latent, points, mask, config and seed, to go on later with `load_session`.

        A running drag is stopped first, so the latent and the points saved belong together.
        The session names the model it was made with when the widget knows where that came
        from (``"default"``, a registry name, a path); otherwise (a generator passed in, a
        pivotally tuned one, one from a loaded session) the generator is saved beside it
        (``*.generator.safetensors``), because nothing else could bring it back.

        Args:
            path: ``edit.json`` or ``edit``; the latent goes to ``edit.latents.pt`` beside it.

        Returns:
            The path of the JSON file.

        Raises:
            OSError: the files cannot be written.
        """
        self._stop_drag()
        session = self._session()
        source = self._model_source() or _known_source(session.G)
        generator: session_files.GeneratorMode = "reference" if source is not None else "embed"
        out = session_files.save_session(
            session, self._path(path), model=source, generator=generator
        )
        self._status.show(f"saved {out}" + (" and its generator" if source is None else ""))
        return out

    def load_session(self, path: Source = "draggan-session.json") -> None:
        """Replace latent, points, mask and config by a session saved with `save_session`.

        The file is read and checked completely before anything changes: a missing, corrupt
        or foreign file is reported and the widget stays as it was. The generator is the one
        saved with the session, else the model it names. The loaded session's history starts
        at its latent.

        Args:
            path: ``edit.json`` or ``edit``.

        Raises:
            FileNotFoundError: no such session, or a file it names is missing.
            ValueError: a corrupt, truncated or inconsistent session.
        """
        path = self._path(path, create=False)
        with quiet():
            session = session_files.load_session(path, device=self._session().device)
        self._on_load(session, path)

    def _save(self, path: Source, suffix: str, write: Callable[[Path], object]) -> Path:
        """Check the file name's suffix, write the file, and say where in the status line."""
        path = self._path(_file_path(path, suffix))
        write(path)
        self._status.show(f"saved {path}")
        return path


@functools.lru_cache(maxsize=1)
def _bundled_digest() -> tuple[str, str]:
    """The bundled model's architecture (as JSON) and weights digest, computed once."""
    from ..gan import load_generator

    G = load_generator("default")
    return json.dumps(G.init_kwargs, sort_keys=True), session_files.generator_sha256(G)


def _known_source(G: nn.Module) -> Optional[str]:
    """``"default"`` when ``G`` holds the bundled model's weights, else None.

    A generator handed to the widget as a module has no name; a saved session can still
    name the bundled model instead of embedding a copy of it, once the weights match.
    """
    try:
        kwargs, digest = _bundled_digest()
    except Exception:  # no bundled model to compare with: the session embeds the generator
        logger.warning("could not read the bundled model to compare with", exc_info=True)
        return None
    same_shape = json.dumps(getattr(G, "init_kwargs", None), sort_keys=True) == kwargs
    return "default" if same_shape and session_files.generator_sha256(G) == digest else None


def _file_path(path: Source, suffix: str) -> Path:
    path = Path(path).expanduser()
    if path.suffix.lower() != suffix:
        raise ValueError(f"the file name must end in {suffix}, got {str(path)!r}")
    return path
