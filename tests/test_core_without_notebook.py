"""The core works where the notebook stack is not installed (a GPU server, a batch job)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import REPO

# Each is set to None in sys.modules, which makes its import fail as if it were not installed.
NOTEBOOK_STACK = (
    "ipywidgets",
    "ipycanvas",
    "traitlets",
    "IPython",
    "ipykernel",
    "jupyter_client",
    "jupyter_core",
    "comm",
    "jupyterlab",
    "notebook",
)

SCRIPT = textwrap.dedent(
    f"""
    import sys
    for name in {NOTEBOOK_STACK!r}:
        sys.modules[name] = None

    from draggan_widget import DragConfig, DragSession, load_generator
    from draggan_widget.widget.runner import DragRunner  # threads only, no widgets

    G = load_generator("default")
    s = DragSession(G, seed=0, config=DragConfig(), device="cpu")
    side = s.resolution
    s.set_points([(0.4 * side, 0.5 * side)], [(0.5 * side, 0.5 * side)])
    print("steps", s.run(2, render=True).step)
    try:
        from draggan_widget import DragWidget
    except ImportError as exc:
        print("widget:", exc)
    report = __import__("draggan_widget").doctor(device="cpu", steps=1)
    print("doctor exit", report.exit_code)
    """
)


def test_the_core_drags_without_ipywidgets_and_the_widget_says_what_to_install():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "steps 2" in out
    assert "widget: DragWidget needs the notebook packages" in out
    assert "pip install ipywidgets ipycanvas" in out
    assert "FAIL  widgets   ipywidgets and ipycanvas not installed" in out
    assert "doctor exit 1" in out
