"""The tutorial notebooks run top to bottom in fast mode (DRAGGAN_WIDGET_FAST=1)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
DEFAULT = Path(__file__).resolve().parents[1] / "weights" / "default.safetensors"
NEEDS_DEFAULT = {"01_quickstart.ipynb", "02_hyperparameters.ipynb", "04_colab_gpu.ipynb"}
WHEEL = "/content/draggan_widget-0.1.0-py3-none-any.whl"


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs(name, monkeypatch, tmp_path):
    if name in NEEDS_DEFAULT and not DEFAULT.exists():
        pytest.skip("needs the bundled default model (weights/default.safetensors)")
    monkeypatch.setenv("DRAGGAN_WIDGET_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors


def colab_install_cell() -> str:
    nb = nbformat.read(NOTEBOOKS / "04_colab_gpu.ipynb", as_version=4)
    return next(c.source for c in nb.cells if "PACKAGE_SOURCE =" in c.source)


def test_notebook_04_without_the_package_or_a_source_says_what_to_set(monkeypatch):
    monkeypatch.delenv("DRAGGAN_WIDGET_SOURCE", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # a fresh runtime
    with pytest.raises(RuntimeError, match="set PACKAGE_SOURCE .* DRAGGAN_WIDGET_SOURCE"):
        exec(colab_install_cell(), {})


def run_install_cell(monkeypatch) -> list:
    """Execute the install cell in a fresh runtime with a source set; the pip calls it made."""
    monkeypatch.setenv("DRAGGAN_WIDGET_SOURCE", WHEEL)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    exec(colab_install_cell(), {})
    return calls


def test_notebook_04_installs_from_the_source_in_the_environment(monkeypatch):
    (cmd, kw), *more = run_install_cell(monkeypatch)
    assert not more and kw == {"check": True}
    assert cmd[:5] == [sys.executable, "-m", "pip", "install", "-q"] and cmd[-1] == WHEEL


def test_notebook_04_cannot_replace_the_installed_torch(monkeypatch):
    """Colab's torch is a CUDA build: the install pins it, and never asks pip to upgrade."""
    ((cmd, _),) = run_install_cell(monkeypatch)
    pins = Path(cmd[cmd.index("-c") + 1]).read_text().split()
    assert pins == [f"torch=={importlib.metadata.version('torch')}"]
    assert not {"-U", "--upgrade", "--force-reinstall", "--no-deps", "torch"} & set(cmd)


def test_notebook_04_enables_colab_widgets_before_any_widget_is_shown(monkeypatch):
    enabled = []
    output = types.ModuleType("google.colab.output")
    output.enable_custom_widget_manager = lambda: enabled.append(True)
    colab = types.ModuleType("google.colab")
    colab.output = output
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    run_install_cell(monkeypatch)
    assert enabled == [True]
    nb = nbformat.read(NOTEBOOKS / "04_colab_gpu.ipynb", as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    install = next(i for i, s in enumerate(code) if "PACKAGE_SOURCE =" in s)
    first_widget = next(i for i, s in enumerate(code) if "Widget(" in s)
    assert install < first_widget
