"""The Photo tab's work: projecting a photo into the generator in a worker thread.

Projection takes hundreds of steps, so it runs like a drag: the worker never touches a
widget, its progress goes through a one-slot buffer to the kernel's loop (newest wins),
and its result is handed to the loop, where the widget swaps in the projected latent (and
the pivotally tuned generator). Each projection is numbered, so that the end of one that
was stopped or superseded is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn

from .. import invert
from ..drag import DragSession
from .controls import PHOTO_STEPS, DragControls
from .runner import BackgroundJob, KernelLoop, LatestFrame, RunIds
from .status import StatusBar, reporting

TUNE_STEPS = 350  # pivotal-tuning steps of a photo (PTI's own choice)
PHOTO_STAGES = {"w": "projecting into W", "w+": "refining in W+", "pti": "pivotal tuning"}

# Called on the kernel's loop with the projection's generator (tuned or not) and latent.
PhotoCallback = Callable[[nn.Module, torch.Tensor], None]


@dataclass
class _PhotoStep:
    job: int
    progress: invert.Progress
    steps: int  # projection steps asked for (W and W+ together)


@dataclass
class _PhotoOutcome:
    job: int
    result: Optional[tuple[nn.Module, torch.Tensor, invert.ProjectionReport]]
    error: Optional[BaseException]
    notes: list[str]  # what was done to the photo to fit the model (crop, resize, ...)


class PhotoProjection:
    """Projects photos in the background, shows their progress, hands over the result.

    Args:
        session: the session now shown (its generator and image shape).
        loop: the kernel's loop, where progress and the result are shown.
        status: the widget's status line, for progress, outcome and errors.
        controls: the Photo tab's upload, step count and tuning choice.
        stop: stops a drag or a projection before another projection starts.
        on_busy: called with True when a projection starts and False when it has ended
            (the widget disables what its result would overwrite).
        on_photo: called with the projected generator and latent, to show them.
    """

    def __init__(
        self,
        session: Callable[[], DragSession],
        loop: KernelLoop,
        status: StatusBar,
        controls: DragControls,
        *,
        stop: Callable[[], None],
        on_busy: Callable[[bool], None],
        on_photo: PhotoCallback,
    ) -> None:
        self._loop, self._status, self._controls = loop, status, controls
        self.report = status.report  # what @reporting calls
        self._session, self._stop = session, stop
        self._on_busy, self._on_photo = on_busy, on_photo
        self.job: BackgroundJob[Any] = BackgroundJob("drag-photo")
        self._runs = RunIds()
        self._outcome: Optional[_PhotoOutcome] = None
        self._steps: LatestFrame[_PhotoStep] = LatestFrame(loop, self._show_step)
        controls.upload.observe(self._on_upload, "value")

    def edit_photo(
        self,
        image: invert.ImageInput,
        *,
        steps: int = PHOTO_STEPS,
        tune: bool = False,
        tune_steps: int = TUNE_STEPS,
    ) -> None:
        """Find a photo in the generator's latent space, in the background, then drag it.

        Projection takes hundreds of steps, so it runs in a worker thread (see
        `invert.edit_photo`) while the kernel keeps answering; the status line shows its
        progress. When it ends, the widget shows the projected latent, on the tuned
        generator if ``tune``, with no points and no history: click handles and targets to
        drag the photo. Stop (or `stop`) cancels it between two steps and leaves the image
        as it was; `wait` waits for it.

        Args:
            image: the photo: an image file's bytes (an upload), a path, a PIL image or an
                ``H x W x 3`` uint8 array. It is cropped at its centre to the model's aspect
                and resized to the model's size (the status line says so).
            steps: projection steps (W, then W+).
            tune: then pivotally tune a copy of the generator so that the latent shows the
                photo itself rather than the model's closest image (slower; the tuned copy
                is saved with the session).
            tune_steps: steps of the tuning.

        Raises:
            ValueError, FileNotFoundError, TypeError: not an image, or bad step counts;
                checked before anything starts, so nothing changes.
            RuntimeError: a running drag or projection did not stop.
        """
        _check_count("steps", steps)
        _check_count("tune_steps", tune_steps)
        session = self._session()
        G = session.G
        prepared = invert.prepare_image(image, session.shape)  # fails here, not in the worker
        self._stop()
        self._start(G, prepared, steps=steps, pti_steps=tune_steps if tune else 0)

    def project_upload(self) -> None:
        """The Project button: project the photo chosen, with the tab's settings."""
        k = self._controls
        if not k.upload.value:
            raise ValueError("choose a photo first (Choose photo), then press Project")
        content = k.upload.value[0]["content"]
        self.edit_photo(bytes(content), steps=k.photo_steps.value, tune=k.tune.value)

    def _start(
        self, G: nn.Module, prepared: invert.PreparedImage, *, steps: int, pti_steps: int
    ) -> None:
        """Project ``prepared`` into ``G`` in the worker (any run has been stopped)."""
        if not self.job.join(30.0):  # a finished job's thread may still be on its way out
            raise RuntimeError("the last photo projection has not ended yet; try again")
        job = self._runs.next()
        self._on_busy(True)
        self._status.show(f"projecting the photo in {steps} steps · Stop cancels it")

        def work(stopped: Callable[[], bool]) -> Any:
            def progress(step: invert.Progress) -> bool:
                self._steps.put(_PhotoStep(job, step, steps))
                return not stopped()

            return invert.edit_photo(
                G, prepared.image, steps=steps, pti_steps=pti_steps, progress=progress
            )

        def on_done(result: Any, error: Optional[BaseException]) -> None:
            self._outcome = _PhotoOutcome(job, result, error, prepared.notes)
            self._loop.call(self._finish, job)

        self.job.start(work, on_done)

    def stop(self, timeout: Optional[float] = 30.0) -> None:
        """Cancel the projection between two steps; the image stays as it was.

        Raises:
            RuntimeError: the step did not end within ``timeout`` seconds.
        """
        if not self.job.stop(timeout):
            raise RuntimeError(f"the photo projection did not stop within {timeout} s")
        self._finish(self._runs.current)

    def request_stop(self) -> None:
        """Ask the projection to stop after its step, without waiting."""
        self.job.request_stop()
        self._status.show("cancelling the photo after this step ...")

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the projection to end by itself and show its outcome; True if it did."""
        if not self.job.join(timeout):
            return False
        self._finish(self._runs.current)
        return True

    def close(self) -> None:
        """Stop the worker for good (the widget is closing)."""
        self.job.stop(timeout=30.0)

    @reporting("photo")
    def _on_upload(self, change: dict[str, Any]) -> None:
        """A photo is chosen: say its name and size, and what Project will do."""
        if not change["new"]:
            return
        photo = change["new"][0]
        size = photo.get("size") or len(photo.get("content", b""))
        self._status.show(
            f"photo {photo.get('name', '')} ({size / 1024:.0f} KB) chosen · Project finds it in "
            f"the model in {self._controls.photo_steps.value} steps"
        )

    def _show_step(self, item: _PhotoStep) -> None:
        """Kernel loop: the projection's progress in the status line."""
        if not self._runs.live(item.job):
            return
        p = item.progress
        stage = PHOTO_STAGES.get(p.stage, p.stage)
        done, total = p.step, p.total
        if p.stage != "pti":  # W, then W+: one count over the steps asked for
            total = item.steps
            done = p.step if p.stage == "w" else total - p.total + p.step
        self._status.show(f"{stage} · step {done}/{total} · PSNR {p.psnr:.1f} dB · Stop cancels it")

    @reporting("photo")
    def _finish(self, job: int) -> None:
        """Kernel loop (or a stop, or `join`): show the photo, or why not; end being busy."""
        if not self._runs.finish(job):
            return
        outcome = self._outcome
        assert outcome is not None and outcome.job == job, "the worker reports before it ends"
        try:
            if outcome.error is not None:
                self.report(outcome.error, "photo")
            elif self.job.stop_requested or outcome.result is None:
                self._status.show("photo projection cancelled; the image is as it was")
            else:
                G, ws, report = outcome.result
                self._on_photo(G, ws)
                summary = "; ".join([report.summary(), *outcome.notes])
                self._status.show(f"photo: {summary} · click a handle, then its target")
        finally:
            self._on_busy(False)


def _check_count(name: str, value: Any) -> None:
    """Raise unless ``value`` is an integer >= 0 (a step count)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
