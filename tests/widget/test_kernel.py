"""A real ipykernel: comm messages sent as the browser sends them drive the widget, and the
canvas updates (JPEG frames) and status come back on iopub while the drag runs.

The worker thread hands frames to the kernel's event loop; this is the test that the loop
is found and that frames really leave the kernel from there.
"""

from __future__ import annotations

import json
import os
import queue
import re
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from conftest import REPO

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.slow
TIMEOUT = 60.0

SETUP = """
import json, sys
sys.path[:0] = [{repo!r}, {tests!r}]
from conftest import make_generator
from draggan_widget.drag import DragConfig
from draggan_widget.widget import DragWidget
w = DragWidget(make_generator(img_resolution=32), seed=0,
               config=DragConfig(max_steps=100000), device="cpu")
display(w)
print(json.dumps({{
    "canvas": w.canvas.widget.model_id,
    "manager": w.canvas.widget._canvas_manager.model_id,
    "start": w.controls.start.model_id,
    "stop": w.controls.stop.model_id,
    "status": w.status_line.model_id,
    "points_layer": w.canvas.points_layer.model_id,
}}))
"""


class Kernel:
    """A started kernel and its client, with helpers to talk to it like a frontend."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.km = jupyter_client.KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(REPO), env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=TIMEOUT)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def iopub(self, deadline: float) -> Iterator[dict[str, Any]]:
        while time.monotonic() < deadline:
            try:
                yield self.kc.get_iopub_msg(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                return

    def execute(self, code: str) -> str:
        """Run code; return its stdout (raises on an error)."""
        msg_id = self.kc.execute(code)
        out = []
        for msg in self.iopub(time.monotonic() + TIMEOUT):
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)
        raise AssertionError(f"no reply to {code!r}")

    def send_comm(self, comm_id: str, data: dict[str, Any]) -> None:
        """What a widget view sends: a comm_msg on the shell channel."""
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.kc.shell_channel.send(msg)

    def custom(self, comm_id: str, content: dict[str, Any]) -> None:
        self.send_comm(comm_id, {"method": "custom", "content": content})

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Read iopub until a message satisfies ``predicate``; return the messages read."""
        seen = []
        for msg in self.iopub(time.monotonic() + TIMEOUT):
            seen.append(msg)
            if predicate(msg):
                return seen
        raise AssertionError(f"no such message among {len(seen)} read")


def comm_data(msg: dict[str, Any], comm_id: str) -> dict[str, Any] | None:
    if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == comm_id:
        return msg["content"]["data"]
    return None


def status_text(msg: dict[str, Any], ids: dict[str, str]) -> str:
    data = comm_data(msg, ids["status"])
    return (data or {}).get("state", {}).get("value", "") if data else ""


def is_jpeg_frame(msg: dict[str, Any], ids: dict[str, str]) -> bool:
    return comm_data(msg, ids["manager"]) is not None and any(
        bytes(b[:2]) == b"\xff\xd8" for b in msg.get("buffers", [])
    )


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    yield k
    k.close()


def test_browser_messages_drive_the_widget_in_a_kernel(kernel):
    k = kernel
    out = k.execute(SETUP.format(repo=str(REPO), tests=str(REPO / "tests")))
    ids = json.loads(out.strip().splitlines()[-1])

    # a new browser view (a reloaded page) says client_ready and gets the picture again
    k.custom(ids["points_layer"], {"event": "client_ready"})
    k.wait_for(lambda m: is_jpeg_frame(m, ids))

    # two clicks on the canvas: a handle at image (10, 16), its target at (20, 16)
    for x in (160, 320):
        k.custom(ids["canvas"], {"event": "mouse_down", "x": x, "y": 256})
        k.custom(ids["canvas"], {"event": "mouse_up", "x": x, "y": 256})
    k.wait_for(lambda m: "1 point pair" in status_text(m, ids))
    points = k.execute("print(w.session.handles, w.session.targets, w._loop.loop is not None)")
    assert points.strip() == "[(10.0, 16.0)] [(20.0, 16.0)] True"  # the kernel's loop was found

    # Start, as the button's view sends it; frames and step counts come back
    k.custom(ids["start"], {"event": "click"})
    steps: list[int] = []
    frames = 0

    def two_frames_and_steps(msg: dict[str, Any]) -> bool:
        nonlocal frames
        frames += is_jpeg_frame(msg, ids)
        found = re.search(r"step (\d+)", status_text(msg, ids))
        if found:
            steps.append(int(found.group(1)))
        return frames >= 2 and len(set(steps)) >= 2

    k.wait_for(two_frames_and_steps)
    assert steps == sorted(steps) and steps[-1] > steps[0]

    # Stop ends the run: the status says so and the kernel agrees
    k.custom(ids["stop"], {"event": "click"})
    k.wait_for(lambda m: "stopped" in status_text(m, ids))
    running, count = k.execute("print(w.running, w.session.step_count)").split()
    assert running == "False" and int(count) >= steps[-1]
