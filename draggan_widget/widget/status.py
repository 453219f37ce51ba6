"""The status line and the Output area: what the widget is doing, and errors in words.

Every unit of the widget reports through one `StatusBar`, so that a user sees one line that
says what happened and, under it, what to do (or a traceback, when the fault is ours).
"""

from __future__ import annotations

import functools
import logging
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional

import ipywidgets as widgets
import torch

from .. import export
from ..drag import DragSession, StepResult

logger = logging.getLogger(__name__)

# Errors a user causes (a bad file, a folder that cannot be written, a point off the image,
# too high a learning rate, an optional extra not installed): their message says what to do,
# so the Output shows it without a traceback.
USER_ERRORS = (ValueError, OSError, ArithmeticError, export.MissingExtraError)
# Long lines wrap instead of being cut at the widget's edge.
STATUS_STYLE = "font-family: monospace; white-space: normal; overflow-wrap: anywhere"


class StatusBar:
    """The status line (``line``) and the Output area (``output``) under the canvas.

    Args:
        on_text: called with each text shown, first (the widget's ``status`` trait).
    """

    def __init__(self, on_text: Callable[[str], None]) -> None:
        self._on_text = on_text
        self.line = widgets.HTML(layout=widgets.Layout(width="auto"))
        self.output = widgets.Output(
            layout=widgets.Layout(max_height="160px", overflow="auto", width="auto")
        )

    def show(self, text: str, *, error: bool = False) -> None:
        """Show ``text`` in the status line; any other than an error clears the last error."""
        self._on_text(text)
        color = "#c62828" if error else "inherit"
        style = f"{STATUS_STYLE}; color: {color}"
        self.line.value = f'<span style="{style}">{_html(text)}</span>'
        if not error and self.output.outputs:
            self.output.outputs = ()

    def report(self, exc: BaseException, what: str = "error") -> None:
        """Show an error in words in the status line and the Output area. The Output holds
        the latest error only, until an action succeeds."""
        oom = isinstance(exc, torch.cuda.OutOfMemoryError)
        if oom:
            text = f"{what}: out of GPU memory; try fewer points, a smaller model, or device='cpu'"
            torch.cuda.empty_cache()  # give the failed step's memory back for the next try
        else:
            text = f"{what}: {in_words(exc)}"
        self.show(text, error=True)
        self.output.outputs = ()
        if oom or isinstance(exc, USER_ERRORS):  # the message says it all
            self.output.append_stderr(text + "\n")
        else:  # unexpected: keep the traceback for a bug report
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self.output.append_stderr(f"{text}\n\n{tb}")
        logger.debug("%s", text, exc_info=exc)


def reporting(what: str) -> Callable[[Callable[..., Any]], Callable[..., None]]:
    """Decorate a UI callback method so that its errors reach ``self.report(exc, what)``.

    A callback run by ipywidgets or the kernel loop has no caller to raise to: an error
    that is not reported here would reach only the kernel's log.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., None]:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                fn(self, *args, **kwargs)
            except Exception as exc:
                self.report(exc, what)

        return wrapper

    return decorate


def on_click(
    action: Callable[[], Any], what: str, report: Callable[[BaseException, str], None]
) -> Callable[[Any], None]:
    """A button's click handler: runs ``action`` and reports its error as ``what``."""

    def handler(_: Any) -> None:
        try:
            action()
        except Exception as exc:
            report(exc, what.lower())

    return handler


@contextmanager
def quiet() -> Iterator[None]:
    """Silence the session's warnings about handles that cannot move: the widget shows the
    same in its status line and draws those handles hollow."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def describe_idle(
    session: DragSession,
    handles: Sequence[tuple[float, float]],
    pending: Optional[tuple[float, float]],
) -> str:
    """The status line between drags: points, stuck handles, mask, seed, size, device.

    Args:
        session: the session shown.
        handles: the handles drawn (one per point pair).
        pending: the handle waiting for its target, if any.
    """
    s = session
    pairs = len(handles)
    parts = [f"{pairs} point pair{'s' if pairs != 1 else ''}"]
    if pending is not None:
        parts[0] += " + a handle waiting for its target"
    parts += [f"handle {i + 1} {why}" for i, why in s.stuck_points()]
    parts.append("mask painted" if s.mask is not None else "no mask")
    if s.seed is not None:
        parts.append(f"seed {s.seed}")
    height, width = s.shape
    parts.append(f"{width} px" if width == height else f"{width}x{height} px")
    parts.append(str(s.device))
    return " · ".join(parts)


def describe_step(session: DragSession, r: StepResult) -> str:
    """The status line during a drag: step, distances, loss, speed, device, arithmetic."""
    dist = ", ".join(f"{d:.1f}" for d in r.distances)
    return (
        f"step {r.step} · distance {dist} px · loss {r.loss:.3g} · "
        f"{r.ms:.0f} ms/step · {session.device} · {_describe_arithmetic(session)}"
    )


def _describe_arithmetic(session: DragSession) -> str:
    """'auto (bfloat16)' when the config leaves the choice to the device, else the choice."""
    chosen, runs = session.config.precision, session.arithmetic
    return f"arithmetic: {chosen} ({runs})" if chosen == "auto" else f"arithmetic: {runs}"


def in_words(exc: BaseException) -> str:
    """What went wrong, as a sentence for the status line, without Python's class names.

    Errors a user causes carry a message that says what to do; a system error says what the
    system refused and where; anything else is a fault of ours, and the traceback is shown.
    """
    message = str(exc).strip()
    if isinstance(exc, FileNotFoundError) and exc.filename:
        folder = Path(exc.filename).parent
        if not folder.is_dir():
            return f"the folder {folder} does not exist; create it or choose another"
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror.lower()}{where}; choose another file or folder"
    if isinstance(exc, USER_ERRORS) and message:
        return message
    detail = f" ({message})" if message else ""
    return f"something went wrong inside draggan-widget{detail}; the details are below"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
