"""The link between the session's `DragConfig` and the panel's controls, both ways.

``w.config`` is a thin proxy (`LiveConfig`) on ``session.config``: reads come from the
session's `DragConfig`, writes go through `ConfigLink`, which lets `DragConfig` validate the
value, then moves the control. We chose the proxy over a traitlets mirror of the config
because the session's `DragConfig` stays the only copy of each value (a mirror is a second
copy that must be kept in sync both ways and would duplicate `DragConfig`'s validation), and
over polling because polling needs a timer and lags. A direct edit of ``w.session.config``
also takes effect at the next step; the control follows after ``w.refresh()``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from ..drag import DragConfig, DragSession
from .controls import CONFIG_FIELDS, DragControls
from .status import StatusBar

RENEWS_IMAGE = ("seed", "truncation_psi")  # config fields that draw a new image


class ConfigLink:
    """Writes config values to the session and shows them on the controls.

    Args:
        session: the session now shown (the widget swaps sessions).
        controls: the panel whose controls follow the config.
        status: where an edit that `DragConfig` refuses is reported.
        stop: stops a run, before a value that draws a new image is set.
        on_new_image: shows the session after a new seed or ψ drew a new image.
    """

    def __init__(
        self,
        session: Callable[[], DragSession],
        controls: DragControls,
        status: StatusBar,
        *,
        stop: Callable[[], None],
        on_new_image: Callable[[], None],
    ) -> None:
        self._controls, self._session = controls, session
        self._stop, self._on_new_image, self._report = stop, on_new_image, status.report

    @property
    def config(self) -> DragConfig:
        """The session's own `DragConfig`."""
        return self._session().config

    def set(self, name: str, value: Any) -> None:
        """Set one field; see `DragWidget.set_config`."""
        cfg = self.config
        if name not in {f.name for f in dataclasses.fields(cfg)}:
            raise AttributeError(f"DragConfig has no field {name!r}")
        if name in RENEWS_IMAGE and getattr(cfg, name) != value:
            self._stop()
            setattr(cfg, name, value)
            self._renew(name == "seed")
        else:
            setattr(cfg, name, value)
        if name in CONFIG_FIELDS:
            self._controls.show(name, getattr(cfg, name))

    def replace(self, config: DragConfig) -> None:
        """Give the session another `DragConfig`; a new seed or ψ draws a new image.

        Raises:
            TypeError: ``config`` is not a `DragConfig`.
        """
        if isinstance(config, LiveConfig):
            return
        if not isinstance(config, DragConfig):
            raise TypeError(f"config must be a DragConfig, got {type(config).__name__}")
        old = self.config
        renew = any(getattr(old, f) != getattr(config, f) for f in RENEWS_IMAGE)
        if renew:
            self._stop()
        self._session().config = config
        if renew:
            self._renew(old.seed != config.seed)
        self._controls.show_config(config)

    def _renew(self, new_seed: bool) -> None:
        s = self._session()
        if new_seed or s.seed is not None:  # a latent from elsewhere (a photo) has no seed
            s.set_seed(s.config.seed)
        self._on_new_image()

    def from_ui(self, name: str, value: Any) -> None:
        """A control's edit: set it, or report why not and move the control back."""
        try:
            self.set(name, value)
        except Exception as exc:
            self._report(exc, name)
            self._controls.show(name, getattr(self.config, name))  # undo the edit


class LiveConfig:
    """``w.config``: the session's `DragConfig`, whose writes move the widget's controls.

    ``w.config.lr = 1e-3`` validates the value (a bad one raises `ValueError` and changes
    nothing), stores it in ``w.session.config`` (the next step uses it) and moves the slider.
    Reads and methods (``w.config.asdict()``) are the `DragConfig`'s own.
    """

    __slots__ = ("_link",)

    def __init__(self, link: ConfigLink) -> None:
        object.__setattr__(self, "_link", link)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._link.config, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._link.set(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._link.config)))

    def __repr__(self) -> str:
        return f"LiveConfig({self._link.config!r})"
