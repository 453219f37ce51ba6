"""The worker threads (a drag, a photo's projection) and their hand-off to the kernel's loop.

The optimisation runs in one worker thread so the kernel stays responsive: button clicks
and mouse events are handled while it runs. The worker never touches a widget. ipycanvas
batches draw commands in one global cache (``hold_canvas``) that is not thread-safe, and
ipywidgets expects state changes from the kernel thread, so every UI update is handed to
the kernel's asyncio loop with ``loop.call_soon_threadsafe``.

Frames are dropped, not queued: `LatestFrame` keeps only the newest one, and at most one
redraw is scheduled at a time. A slow frontend or a busy kernel therefore sees the latest
image, never a backlog of stale ones. A photo's projection (`BackgroundJob`) hands over its
progress the same way.

`warm_optimizer` is the one other thread: it only imports, so it touches neither a widget
nor a session.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import Any, Callable, Generic, Optional, Protocol, TypeVar

import torch

logger = logging.getLogger(__name__)

T = TypeVar("T")

_warm_lock = threading.Lock()
_warm_thread: Optional[threading.Thread] = None


def warm_optimizer() -> None:
    """Build a throw-away Adam once per process, in a daemon thread, and return at once.

    The first ``torch.optim.Adam`` of a process imports ``torch._dynamo`` (1.5-2.5 s on a
    CPU), and the first drag step builds one, so the first Start waited for that import.
    Begun when a widget is made, the import is over before the user has placed a handle and
    its target. A Start that comes sooner waits on Python's import lock for the rest of it,
    never longer than it would have without the warm-up. The same import already happens in
    a worker thread (the runner's first step), so this adds no new kind of concurrency.
    """
    global _warm_thread
    with _warm_lock:
        if _warm_thread is not None or "torch._dynamo" in sys.modules:
            return
        _warm_thread = threading.Thread(target=_build_adam, name="drag-warm-optimizer", daemon=True)
        _warm_thread.start()


def _build_adam() -> None:
    try:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    except Exception:  # only a head start: the first step builds its own optimiser anyway
        logger.debug("optimiser warm-up failed", exc_info=True)


class Steppable(Protocol):
    """What the runner needs of a session (`DragSession` satisfies it)."""

    config: Any

    def step(self, *, render: bool = True) -> Any: ...


class KernelLoop:
    """Runs callables on the kernel's event loop, from any thread.

    Create it on the kernel thread (a widget's constructor runs there), so that
    ``asyncio.get_running_loop()`` finds the kernel's loop. Outside a kernel (scripts,
    tests) there is no running loop: then `call` runs the callable at once, under a lock,
    in the calling thread, which is still safe because only one thread draws at a time.

    Args:
        loop: the loop to use; None takes the running loop of the calling thread, if any.
    """

    def __init__(self, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self.loop = loop
        self._loop_thread = threading.get_ident() if loop is not None else None
        self._lock = threading.RLock()

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop: scheduled from other threads, at once on its own."""
        loop = self.loop
        if (
            loop is not None
            and threading.get_ident() != self._loop_thread
            and not loop.is_closed()
            and loop.is_running()
        ):
            try:
                loop.call_soon_threadsafe(fn, *args)
                return
            except RuntimeError:  # closed between the check and the call: run it here
                pass
        with self._lock:
            fn(*args)


class RunIds:
    """Numbers a unit's runs, so that each reports its end once and late news is dropped.

    A run's end can be reported three ways: the worker's callback on the loop, a stop, or a
    join; whichever comes first `finish`es it, the others find it finished. Frames and
    progress of a run that is no longer `current` are stale.
    """

    def __init__(self) -> None:
        self.current = 0
        self._finished = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        """Number a new run; it is `current` from now on."""
        self.current += 1
        return self.current

    @property
    def unfinished(self) -> bool:
        """The current run has not reported its end."""
        return self._finished != self.current

    def live(self, run_id: int) -> bool:
        """``run_id`` is the current run and has not ended: its news is worth showing."""
        return run_id == self.current and self._finished != run_id

    def finish(self, run_id: int) -> bool:
        """Mark ``run_id`` ended; True only the first time, and only for the current run."""
        with self._lock:
            if not self.live(run_id):
                return False
            self._finished = run_id
            return True


class LatestFrame(Generic[T]):
    """A one-slot buffer between the worker and the loop: the newest item wins.

    `put` stores the item and schedules one `consume` on the loop unless one is already
    pending; an item that is replaced before the loop gets to it is dropped (and counted).

    Args:
        loop: where ``consume`` runs.
        consume: called with the newest item, on the loop.
    """

    def __init__(self, loop: KernelLoop, consume: Callable[[T], None]) -> None:
        self._loop = loop
        self._consume = consume
        self._lock = threading.Lock()
        self._item: Optional[T] = None
        self._scheduled = False
        self.dropped = 0

    def put(self, item: T) -> None:
        """Offer a frame (any thread); replaces a frame the loop has not drawn yet."""
        with self._lock:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            if self._scheduled:
                return
            self._scheduled = True
        self._loop.call(self._drain)

    def flush(self) -> None:
        """Consume the pending frame now, if any (call on the loop, e.g. after a stop)."""
        self._drain()

    def _drain(self) -> None:
        with self._lock:
            item, self._item = self._item, None
            self._scheduled = False
        if item is not None:
            self._consume(item)


class Worker:
    """One worker thread at a time, and a stop flag it checks between its steps.

    The bookkeeping shared by `DragRunner` (session steps) and `BackgroundJob` (one long
    function, such as a photo's projection): neither lets two threads work at once, and both
    stop only between steps, because a step cut short would leave half-updated tensors.

    Args:
        name: the thread's name (shown in debuggers and thread dumps).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def stop_requested(self) -> bool:
        """Whether a stop was asked for since the last start."""
        return self._stop.is_set()

    def _spawn(self, target: Callable[..., None], *args: Any) -> bool:
        if self.running:
            return False
        self._stop.clear()
        self._thread = threading.Thread(target=target, args=args, name=self._name, daemon=True)
        self._thread.start()
        return True

    def request_stop(self) -> None:
        """Ask the worker to stop after the step in progress; returns at once."""
        self._stop.set()

    def stop(self, timeout: Optional[float] = 30.0) -> bool:
        """Ask the worker to stop and wait for it (one step at most).

        Returns:
            True when no worker is alive afterwards.
        """
        self._stop.set()
        return self.join(timeout)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the worker to end. True when no worker is alive afterwards."""
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)  # on_done may call stop() from the worker itself
        return not self.running


class DragRunner(Worker):
    """Steps a session in a worker thread until it arrives, ``max_steps`` pass, or a stop.

    Only the runner calls ``session.step()`` while it runs. The stop flag is checked between
    steps, so a stop takes effect within one step.

    Args:
        on_frame: called in the worker thread with each `StepResult`; it must not touch
            widgets (hand the frame to the loop instead).
        on_done: called in the worker thread once the loop ends, with the exception that
            ended it or None.
        render: ask each step for its image.
    """

    def __init__(
        self,
        on_frame: Callable[[Any], None],
        on_done: Callable[[Optional[BaseException]], None],
        *,
        render: bool = True,
    ) -> None:
        super().__init__("drag-runner")
        self._on_frame, self._on_done = on_frame, on_done
        self._render = render

    def start(self, session: Steppable, *, max_steps: Optional[int] = None) -> bool:
        """Start stepping ``session`` in a new worker thread.

        Args:
            session: what to step.
            max_steps: steps of this run; None reads ``session.config.max_steps`` before
                every step, so a change made while it runs applies at once.

        Returns:
            False if a run is already going (nothing started), else True.
        """
        return self._spawn(self._loop, session, max_steps)

    def _loop(self, session: Steppable, max_steps: Optional[int]) -> None:
        error: Optional[BaseException] = None
        try:
            steps = 0
            while not self._stop.is_set():
                result = session.step(render=self._render)
                steps += 1
                self._on_frame(result)
                limit = session.config.max_steps if max_steps is None else max_steps
                if result.done or steps >= limit:
                    break
        except Exception as exc:  # handed to the UI by on_done, not swallowed
            logger.debug("drag run failed", exc_info=True)
            error = exc
        finally:
            self._on_done(error)


class BackgroundJob(Worker, Generic[T]):
    """Runs one long function in a worker thread; it polls ``stopped()`` between its steps.

    For work that is not a series of session steps, such as projecting a photo, whose loop
    lives in the library (`invert.project` calls back after every step). Like `DragRunner`,
    the job never touches a widget: ``on_done`` receives the outcome in the worker thread and
    hands it to the loop.

    Args:
        name: the thread's name.
    """

    def start(
        self,
        work: Callable[[Callable[[], bool]], T],
        on_done: Callable[[Optional[T], Optional[BaseException]], None],
    ) -> bool:
        """Run ``work(stopped)`` in a new worker thread, then ``on_done(result, error)`` there.

        Args:
            work: the function; it should return soon after ``stopped()`` turns True.
            on_done: called in the worker thread with the result (None on error) and the
                exception that ended ``work`` (None on success).

        Returns:
            False if a job is already running (nothing started), else True.
        """
        return self._spawn(self._run, work, on_done)

    def _run(
        self,
        work: Callable[[Callable[[], bool]], T],
        on_done: Callable[[Optional[T], Optional[BaseException]], None],
    ) -> None:
        result: Optional[T] = None
        error: Optional[BaseException] = None
        try:
            result = work(self._stop.is_set)
        except Exception as exc:  # handed to the UI by on_done, not swallowed
            logger.debug("%s failed", self._name, exc_info=True)
            error = exc
        finally:
            on_done(result, error)
