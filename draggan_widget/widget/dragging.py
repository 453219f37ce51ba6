"""The widget's side of a drag: its runs, their frames on the canvas, and their end.

`DragRunner` steps the session in a worker thread; `DragDriver` numbers each run, encodes
its frames in the worker, draws the newest on the kernel's loop, and reports the run's end
once, whichever comes first: the worker's own end (handed to the loop), a stop, or `join`.
A frame or an end of an older run (one stopped, then started again) is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..drag import DragSession, StepResult
from .canvas import DragCanvas
from .runner import DragRunner, KernelLoop, LatestFrame, RunIds

# Called on the kernel's loop (or by a stop) when a run ends: its error, its last step, and
# whether a stop was asked for.
EndCallback = Callable[[Optional[BaseException], Optional[StepResult], bool], None]


@dataclass
class _Frame:
    run_id: int
    result: StepResult
    data: Optional[bytes]  # the encoded image, or None when the step rendered none


class DragDriver:
    """Runs drags in the worker thread and shows their frames.

    Args:
        loop: the kernel's loop, where frames are drawn and ends reported.
        canvas: encodes frames (in the worker) and draws them (on the loop).
        on_frame: kernel loop, after a frame is drawn: the step's result (points, status).
        on_end: kernel loop (or a stop): the run's end (see `EndCallback`).
    """

    def __init__(
        self,
        loop: KernelLoop,
        canvas: DragCanvas,
        *,
        on_frame: Callable[[StepResult], None],
        on_end: EndCallback,
    ) -> None:
        self._loop, self._canvas = loop, canvas
        self._on_frame, self._on_end = on_frame, on_end
        self._runs = RunIds()
        self._error: Optional[BaseException] = None
        self._last: Optional[StepResult] = None
        self.runner = DragRunner(on_frame=self._frame_from_worker, on_done=self._done_in_worker)
        self._frames: LatestFrame[_Frame] = LatestFrame(loop, self._show_frame)

    @property
    def running(self) -> bool:
        """The worker thread is stepping."""
        return self.runner.running

    @property
    def unfinished(self) -> bool:
        """The last run has not reported its end yet (it may have stopped stepping)."""
        return self._runs.unfinished

    def start(self, session: DragSession) -> None:
        """Start a new run on ``session``; the caller has checked that it has points."""
        self._runs.next()
        self._error, self._last = None, None
        self.runner.start(session)

    def stop(self, timeout: Optional[float] = 30.0) -> None:
        """Stop the run, wait for its step to end, and report its end.

        Raises:
            RuntimeError: the step did not end within ``timeout`` seconds.
        """
        if not self.runner.running and not self.unfinished:
            return
        if not self.runner.stop(timeout):
            raise RuntimeError(f"the drag did not stop within {timeout} s")
        self._finish(self._runs.current)

    def request_stop(self) -> bool:
        """Ask the run to stop after its step, without waiting; False if none runs."""
        if not self.runner.running:
            return False
        self.runner.request_stop()
        return True

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the run to end by itself and report its end; True if it did."""
        done = self.runner.join(timeout)
        if done:
            self._finish(self._runs.current)
        return done

    def close(self) -> None:
        """Stop the worker for good (the widget is closing)."""
        self.runner.stop(timeout=30.0)

    def _frame_from_worker(self, result: StepResult) -> None:
        """Worker thread: encode the frame here, hand it to the loop (newest wins)."""
        data = None if result.image is None else self._canvas.encode(result.image)
        self._last = result
        self._frames.put(_Frame(self._runs.current, result, data))

    def _show_frame(self, frame: _Frame) -> None:
        """Kernel loop: draw the newest frame, then let the widget show its points."""
        if frame.run_id != self._runs.current:
            return
        if frame.data is not None:
            self._canvas.draw_frame(frame.data)
        self._on_frame(frame.result)

    def _done_in_worker(self, error: Optional[BaseException]) -> None:
        self._error = error
        self._loop.call(self._finish, self._runs.current)

    def _finish(self, run_id: int) -> None:
        """Kernel loop (or a stop): show the last frame, then report the end, once."""
        if not self._runs.finish(run_id):
            return
        self._frames.flush()
        self._on_end(self._error, self._last, self.runner.stop_requested)
