"""A real browser: JupyterLab in headless Chromium runs a notebook with the widget; clicks,
a brush stroke and Start/Stop act on the canvas, whose pixels and step counter change.

Needs Debian's chromium (``apt-get install chromium``; Playwright's own browsers cannot
be downloaded here) and ``pip install jupyterlab playwright``. The screenshot is saved as
``artifacts/widget_browser.png``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 60_000


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    for module in ("playwright", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install jupyterlab playwright)"
    return None


pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
]

DEFAULT_MODEL = REPO / "weights" / "default.safetensors"
SEED = 1  # the face of the close-eyes edit (draggan_widget.train.edits.EDITS[0])


def _drag_points() -> tuple[tuple[float, float], tuple[float, float]]:
    """A handle and its target in image pixels of the 64-px image the cell shows.

    With the bundled face model: the left upper lid and the close-eyes edit's target below
    it, found by the bundled landmark detector, so that two clicks and Start close an eye
    (what a person does). Without it: fixed points on a random generator's image.
    """
    if not DEFAULT_MODEL.exists():
        return (20.0, 30.0), (36.0, 30.0)
    from draggan_widget import DragSession, load_generator
    from draggan_widget.train.edits import EDITS, load_detector, place

    spec = EDITS[0]
    assert spec.seed == SEED
    image = DragSession(load_generator("default"), seed=SEED, device="cpu").image()
    edit = place(spec, image, load_detector())
    return edit.handles[0], edit.targets[0]


MODEL = (
    'load_generator("default")'
    if DEFAULT_MODEL.exists()
    else "make_generator(img_resolution=64, w_dim=32, seed=3)"
)
# What a user types; only the random stand-in needs the tests' helpers on the path.
SETUP = (
    ""
    if DEFAULT_MODEL.exists()
    else f"import sys\nsys.path[:0] = [{str(REPO / 'tests')!r}]\n"
    "from conftest import make_generator\n"
)
CELL = f"""\
{SETUP}from draggan_widget import DragConfig, DragWidget, load_generator

w = DragWidget({MODEL}, seed={SEED}, config=DragConfig(max_steps=100000), device="cpu")
w"""


def _notebook(path: Path) -> None:
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "drag",
                "metadata": {},
                "outputs": [],
                "source": CELL,
            }
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[str]:
    """A JupyterLab server on 127.0.0.1 in a temporary directory; yields the notebook URL."""
    root = tmp_path_factory.mktemp("lab")
    _notebook(root / "drag.ipynb")
    settings = root / ".settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    token, port = secrets.token_hex(16), _free_port()
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        JUPYTER_CONFIG_DIR=str(root / ".config"),
        JUPYTER_RUNTIME_DIR=str(root / ".runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(root / ".settings"),
    )
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={root / '.workspaces'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers often run as root
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            log.append(line)
            lines.put(line)
        lines.put(None)  # the server exited

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                pytest.fail("JupyterLab did not start:\n" + "".join(log[-30:]))
            if f"127.0.0.1:{port}/" in line:
                break
        yield f"http://127.0.0.1:{port}/lab/tree/drag.ipynb?token={token}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root / ".runtime", ignore_errors=True)


STATUS_JS = """() => {
  const el = [...document.querySelectorAll('.widget-html-content span')]
      .find(s => /point pair|step \\d+|stopped|arrived|error/.test(s.textContent));
  return el ? el.textContent : '';
}"""

# Sum of the image layer's pixels (the bottom canvas of the MultiCanvas view).
IMAGE_SUM_JS = """() => {
  const c = document.querySelector('.ipycanvas-multicanvas canvas, canvas');
  const all = [...document.querySelectorAll('canvas')].filter(e => e.width === 512);
  const img = all[0];
  const d = img.getContext('2d').getImageData(0, 0, img.width, img.height).data;
  let s = 0; for (let i = 0; i < d.length; i += 7) s += d[i];
  return s;
}"""


def _step(text: str) -> int:
    found = re.search(r"step (\d+)", text)
    return int(found.group(1)) if found else -1


def test_drag_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(lab)
            page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
            page.keyboard.press("Shift+Enter")
            status = lambda: page.evaluate(STATUS_JS)  # noqa: E731
            page.wait_for_function(f"() => ({STATUS_JS})().includes('point pair')")

            canvases = page.locator(".jp-OutputArea canvas")
            box = canvases.last.bounding_box()
            assert box is not None and box["width"] > 100
            k = box["width"] / 512  # CSS px per canvas px

            def button(text: str):
                return page.locator(".jp-OutputArea button", has_text=text).first

            def at(x: float, y: float) -> tuple[float, float]:
                return box["x"] + x * k, box["y"] + y * k

            # a handle and its target: two clicks (the canvas shows the 64-px image 8x)
            (hx, hy), (tx, ty) = _drag_points()
            page.mouse.click(*at(8 * hx, 8 * hy))
            page.mouse.click(*at(8 * tx, 8 * ty))
            page.wait_for_function(f"() => ({STATUS_JS})().startsWith('1 point pair')")

            # a brush stroke around them: the region that may change
            button("Brush").click()
            cx, cy = 4 * (hx + tx), 4 * (hy + ty)
            page.mouse.move(*at(cx - 80, cy))
            page.mouse.down()
            for dx in range(-60, 81, 20):
                page.mouse.move(*at(cx + dx, cy))
            page.mouse.up()
            page.wait_for_function(f"() => ({STATUS_JS})().includes('mask painted')")

            before = page.evaluate(IMAGE_SUM_JS)
            button("Start").click()
            page.wait_for_function(
                f"() => /step (\\d\\d+)/.test(({STATUS_JS})())"  # ten steps at least
            )
            first = _step(status())
            page.wait_for_function(
                f"() => {{ const m = ({STATUS_JS})().match(/step (\\d+)/);"
                f" return m && +m[1] > {first}; }}"
            )
            assert _step(status()) > first
            after = page.evaluate(IMAGE_SUM_JS)
            assert after != before  # the frames reached the canvas

            button("Stop").click()
            page.wait_for_function(f"() => ({STATUS_JS})().startsWith('stopped')")
            stopped_at = _step(status())
            assert stopped_at >= first
            if DEFAULT_MODEL.exists():  # unmasked, as the canonical edit: the eye closes
                button("Clear mask").click()
                button("Start").click()
                page.wait_for_function(
                    f"() => {{ const s = ({STATUS_JS})(), m = s.match(/step (\\d+)/);"
                    f" return s.startsWith('arrived') || (m && +m[1] > {stopped_at + 150}); }}",
                    timeout=4 * TIMEOUT_MS,
                )
                if not status().startswith("arrived"):  # the e2e test asserts arrival
                    button("Stop").click()
                    page.wait_for_function(f"() => ({STATUS_JS})().startsWith('stopped')")
            page.screenshot(path=str(ARTIFACTS / "widget_browser.png"), full_page=False)
            page.locator(".jp-OutputArea .lm-TabBar-tab", has_text="Image").click()
            page.screenshot(path=str(ARTIFACTS / "widget_browser_image_tab.png"))
            assert not button("Start").is_disabled()
        finally:
            browser.close()
