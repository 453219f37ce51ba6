"""The Image tab's model picker: which models to offer, and loading one.

Loading a large model from disk or the network takes seconds, so the Load button loads in
a thread; the generator it returns is handed to the kernel's loop, where the widget swaps
sessions. A script's `load_model` call loads in its own thread and raises on failure.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Optional, Union

import ipywidgets as widgets
import torch
from torch import nn

from ..drag import DragSession
from .runner import KernelLoop
from .status import StatusBar

logger = logging.getLogger(__name__)

Source = Union[str, "os.PathLike[str]"]
# Called with the generator loaded and the source it came from (None for a module given).
ModelCallback = Callable[[nn.Module, Optional[str]], None]


def model_names() -> list[str]:
    """Models the picker offers: ``"default"`` and the registry's names, if it has any."""
    names = ["default"]
    try:
        from ..gan.registry import list_models  # type: ignore[import-not-found]
    except ImportError:
        return names
    try:
        models = list_models()
    except Exception:  # the picker still takes a name or path by hand
        logger.warning("could not list the registry's models", exc_info=True)
        return names
    for m in models:
        name = m if isinstance(m, str) else getattr(m, "name", None)
        if name is None and isinstance(m, dict):
            name = m.get("name")
        if name and name not in names:
            names.append(str(name))
    return names


def session_on(old: DragSession, G: nn.Module, w: Optional[torch.Tensor] = None) -> DragSession:
    """A session on another generator, with ``old``'s config, device and seed (or ``w``)."""
    seed = old.seed if old.seed is not None else old.config.seed
    return DragSession(G, seed=seed, w=w, config=old.config, device=old.device)


class ModelLoader:
    """Loads generators for the widget, at once or in a thread.

    Args:
        loop: the kernel's loop, where a model loaded in the background is handed over.
        status: the widget's status line, for progress and errors.
        button: the Load button, disabled while a model loads.
        running: whether a drag runs (the button stays disabled then).
        on_model: shows a loaded generator (see `ModelCallback`); may raise.
    """

    def __init__(
        self,
        loop: KernelLoop,
        status: StatusBar,
        button: widgets.Button,
        *,
        running: Callable[[], bool],
        on_model: ModelCallback,
    ) -> None:
        self._loop, self._status, self._button = loop, status, button
        self._running, self._on_model = running, on_model
        self.thread: Optional[threading.Thread] = None

    def load_model(self, source: Union[nn.Module, Source], *, background: bool = False) -> None:
        """Switch to another generator: a `Generator`, a path, a registry name or "default".

        The new session keeps the config and device. On failure the current model stays.

        Args:
            source: what to load.
            background: load in a thread (the kernel keeps answering; errors are reported
                in the widget); otherwise load here and raise on failure.

        Raises:
            RuntimeError: ``background`` and a model is already loading.
        """
        if not isinstance(source, (str, os.PathLike)):
            self._on_model(source, None)
            return
        from ..gan import load_generator

        if not background:
            self._on_model(load_generator(source), os.fspath(source))
            return
        if self.thread is not None and self.thread.is_alive():
            raise RuntimeError("a model is already loading; wait for it")
        self._status.show(f"loading {source} ...")
        self._button.disabled = True

        def load() -> None:
            try:
                G = load_generator(source)
            except Exception as exc:
                self._loop.call(self._loaded, None, exc, source)
            else:
                self._loop.call(self._loaded, G, None, source)

        self.thread = threading.Thread(target=load, name="drag-load-model", daemon=True)
        self.thread.start()

    def _loaded(self, G: Any, error: Optional[BaseException], source: Source) -> None:
        """Kernel loop: show the model loaded, or why it could not be."""
        self._button.disabled = self._running()
        if error is not None:
            self._status.report(error, f"loading {source}")
            return
        try:
            self._on_model(G, os.fspath(source))
        except Exception as exc:
            self._status.report(exc, f"loading {source}")
