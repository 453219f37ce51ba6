"""The worker thread and the frame hand-off: stop within a step, errors reported, frames dropped."""

from __future__ import annotations

import asyncio
import threading

import pytest
from widget_fakes import TIMEOUT, FakeSession

from draggan_widget.widget.runner import DragRunner, KernelLoop, LatestFrame, RunIds


class Recorder:
    def __init__(self) -> None:
        self.frames: list = []
        self.errors: list = []
        self.done = threading.Event()

    def on_frame(self, result) -> None:
        self.frames.append(result)

    def on_done(self, error) -> None:
        self.errors.append(error)
        self.done.set()


def gated_session() -> FakeSession:
    s = FakeSession()
    s.set_points([(2, 2)], [(30, 2)])
    s.gate = threading.Event()
    return s


def test_runner_steps_until_the_handles_arrive():
    s = FakeSession()
    s.set_points([(2, 2)], [(6, 2)])
    rec = Recorder()
    runner = DragRunner(rec.on_frame, rec.on_done)
    assert runner.start(s)
    assert rec.done.wait(TIMEOUT)
    assert runner.join(TIMEOUT)
    assert rec.errors == [None]
    assert rec.frames[-1].done and not any(r.done for r in rec.frames[:-1])
    assert all(r.image is not None for r in rec.frames)


def test_stop_takes_effect_within_one_step():
    s = gated_session()
    rec = Recorder()
    runner = DragRunner(rec.on_frame, rec.on_done)
    runner.start(s)
    assert s.started.wait(TIMEOUT)  # the first step is in progress
    runner.request_stop()
    s.gate.set()  # let that step finish
    assert runner.join(TIMEOUT)
    assert s.steps_run == 1 and len(rec.frames) == 1 and rec.errors == [None]
    assert runner.stop_requested


def test_start_while_running_starts_nothing():
    s = gated_session()
    rec = Recorder()
    runner = DragRunner(rec.on_frame, rec.on_done)
    assert runner.start(s)
    assert s.started.wait(TIMEOUT)
    assert not runner.start(s)
    runner.request_stop()
    s.gate.set()
    assert runner.join(TIMEOUT) and not runner.running


def test_error_in_a_step_reaches_on_done():
    s = FakeSession(fail_at=3)
    s.set_points([(2, 2)], [(30, 2)])
    rec = Recorder()
    runner = DragRunner(rec.on_frame, rec.on_done)
    runner.start(s)
    assert rec.done.wait(TIMEOUT) and runner.join(TIMEOUT)
    assert len(rec.frames) == 2
    assert isinstance(rec.errors[0], RuntimeError) and "out of memory" in str(rec.errors[0])


def test_max_steps_is_read_before_every_step():
    s = gated_session()
    rec = Recorder()
    runner = DragRunner(rec.on_frame, rec.on_done)
    runner.start(s)
    assert s.started.wait(TIMEOUT)
    s.config.max_steps = 2  # edited while the first step runs
    s.gate.set()
    s.started.clear()
    assert s.started.wait(TIMEOUT)
    s.gate.set()
    assert runner.join(TIMEOUT)
    assert s.steps_run == 2


class ManualLoop(KernelLoop):
    """Collects scheduled calls; the test runs them, like a busy kernel loop would later."""

    def __init__(self) -> None:
        super().__init__(loop=None)
        self.calls: list = []

    def call(self, fn, *args) -> None:
        self.calls.append((fn, args))

    def run_pending(self) -> None:
        calls, self.calls = self.calls, []
        for fn, args in calls:
            fn(*args)


def test_latest_frame_drops_frames_instead_of_queueing():
    loop = ManualLoop()
    shown: list = []
    slot = LatestFrame(loop, shown.append)
    for i in range(5):
        slot.put(i)
    assert len(loop.calls) == 1  # one redraw scheduled, not five
    loop.run_pending()
    assert shown == [4] and slot.dropped == 4
    slot.put(5)
    loop.run_pending()
    assert shown == [4, 5]


def test_latest_frame_flush_draws_the_pending_frame_once():
    loop = ManualLoop()
    shown: list = []
    slot = LatestFrame(loop, shown.append)
    slot.put("a")
    slot.flush()
    loop.run_pending()  # the scheduled drain finds nothing left
    assert shown == ["a"]


def test_kernel_loop_without_a_running_loop_calls_at_once():
    kl = KernelLoop()
    assert kl.loop is None
    seen: list = []
    t = threading.Thread(target=kl.call, args=(lambda: seen.append(threading.get_ident()),))
    t.start()
    t.join(TIMEOUT)
    assert seen == [t.ident]


def test_kernel_loop_runs_worker_calls_on_the_loop_thread():
    async def main() -> tuple[list, int]:
        kl = KernelLoop()  # created on the loop's thread, like a widget in a kernel
        assert kl.loop is asyncio.get_running_loop()
        seen: list = []
        arrived = asyncio.Event()

        def record() -> None:
            seen.append(threading.get_ident())
            arrived.set()

        worker = threading.Thread(target=kl.call, args=(record,))
        worker.start()
        await asyncio.wait_for(arrived.wait(), TIMEOUT)
        worker.join(TIMEOUT)
        kl.call(record)  # on the loop's own thread: runs at once
        return seen, threading.get_ident()

    seen, loop_thread = asyncio.run(main())
    assert seen == [loop_thread, loop_thread]


def test_kernel_loop_falls_back_when_the_loop_is_closed():
    loop = asyncio.new_event_loop()
    kl = KernelLoop(loop)
    loop.close()
    seen: list = []
    kl.call(seen.append, 1)
    assert seen == [1]


@pytest.mark.parametrize("n", [1, 3])
def test_runner_frames_count_matches_steps(n):
    s = FakeSession()
    s.set_points([(2, 2)], [(30, 2)])
    s.config.max_steps = n
    rec = Recorder()
    runner = DragRunner(rec.on_frame, rec.on_done)
    runner.start(s)
    assert runner.join(TIMEOUT)
    assert [r.step for r in rec.frames] == list(range(1, n + 1))


def test_run_ids_let_each_run_end_once_and_drop_an_old_runs_news():
    runs = RunIds()
    first = runs.next()
    assert runs.unfinished and runs.live(first)
    assert runs.finish(first) and not runs.finish(first)  # a stop, then the worker's callback
    assert not runs.unfinished and not runs.live(first)
    second = runs.next()
    assert not runs.finish(first) and not runs.live(first)  # the old run's late end
    assert runs.live(second) and runs.finish(second)


def test_run_ids_finish_once_under_racing_threads():
    runs = RunIds()
    run = runs.next()
    wins = []
    threads = [threading.Thread(target=lambda: wins.append(runs.finish(run))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert wins.count(True) == 1
