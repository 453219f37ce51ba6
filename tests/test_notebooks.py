"""The tutorial notebooks run top to bottom in fast mode (DRAGGAN_WIDGET_FAST=1)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
DEFAULT = Path(__file__).resolve().parents[1] / "weights" / "default.safetensors"
NEEDS_DEFAULT = {"01_quickstart.ipynb", "02_hyperparameters.ipynb", "04_colab_gpu.ipynb"}


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
