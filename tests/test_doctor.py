"""``draggan-widget doctor``: the report here, and the failures it must catch, simulated."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

import draggan_widget
from draggan_widget.__main__ import main

DOCTOR = importlib.import_module("draggan_widget.doctor")  # the module, not the function


@pytest.fixture
def plain_jupyter(monkeypatch):
    """Neither Colab nor VS Code, whatever runs the tests."""
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    for key in ("COLAB_RELEASE_TAG", "VSCODE_PID", "VSCODE_CWD", "VSCODE_IPC_HOOK_CLI"):
        monkeypatch.delenv(key, raising=False)


def by_name(report) -> dict:
    return {c.name: c for c in report.checks}


def test_the_report_here_passes_and_times_a_drag(plain_jupyter, tmp_path, monkeypatch):
    monkeypatch.setenv("DRAGGAN_WIDGET_HOME", str(tmp_path / "cache"))
    report = DOCTOR.run_checks(device="cpu", steps=3)
    checks = by_name(report)
    assert report.exit_code == 0, report.text()
    for name in ("package", "torch", "device", "widgets", "frontend", "cache", "drag"):
        assert name in checks
    assert checks["drag"].status == "ok"
    assert "3 steps on cpu" in checks["drag"].detail and "ms/step" in checks["drag"].detail
    assert "peak" in checks["drag"].detail
    assert not (tmp_path / "cache").exists()  # checked, not created


def test_a_missing_frontend_fails_and_says_how_to_fix_it(plain_jupyter, tmp_path, monkeypatch):
    monkeypatch.setattr(DOCTOR, "labextension_dirs", lambda: [tmp_path])
    report = DOCTOR.run_checks(device="cpu", steps=1)
    frontend = by_name(report)["frontend"]
    assert report.exit_code == 1
    assert frontend.status == "fail" and "labextension" in frontend.detail
    assert "pip install" in frontend.fix and "restart Jupyter" in frontend.fix
    assert "FAIL  frontend" in report.text() and "-> pip install" in report.text()


def test_an_unwritable_cache_fails(plain_jupyter, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DRAGGAN_WIDGET_HOME", str(blocker / "cache"))
    cache = by_name(DOCTOR.run_checks(device="cpu", steps=1))["cache"]
    assert cache.status == "fail" and "is a file" in cache.detail
    assert "DRAGGAN_WIDGET_HOME" in cache.fix


def test_missing_widget_packages_name_what_to_install(plain_jupyter, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipycanvas", None)  # its import fails, as if not there
    widgets = by_name(DOCTOR.run_checks(device="cpu", steps=1))["widgets"]
    assert widgets.status == "fail" and widgets.fix.startswith("pip install ipycanvas")


def test_no_cuda_fails_the_device_and_skips_the_drag(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    checks = by_name(DOCTOR.run_checks(device="cuda", steps=1))
    assert checks["device"].status == "fail" and "no CUDA GPU" in checks["device"].detail
    assert "drag" not in checks


@pytest.mark.parametrize("url, status", [(None, "warn"), ("https://cdn/manager.js", "ok")])
def test_colab_reports_its_widget_manager(url, status, monkeypatch):
    widgets = types.ModuleType("google.colab.output._widgets")
    widgets._installed_url = url
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setitem(sys.modules, "google.colab.output._widgets", widgets)
    colab = by_name(DOCTOR.run_checks(device="cpu", steps=1))["colab"]
    assert colab.status == status
    assert ("enable_custom_widget_manager" in colab.fix) == (status == "warn")


def test_vscode_is_told_that_the_canvas_needs_network(plain_jupyter, monkeypatch):
    monkeypatch.setenv("VSCODE_PID", "1234")
    vscode = by_name(DOCTOR.run_checks(device="cpu", steps=1))["vscode"]
    assert "CDN" in vscode.detail and "network" in vscode.fix


def test_command_exits_0_here_and_1_with_the_frontend_hidden(
    plain_jupyter, tmp_path, monkeypatch, capsys
):
    assert main(["doctor", "--device", "cpu", "--steps", "2"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("no problem found")
    monkeypatch.setattr(DOCTOR, "labextension_dirs", lambda: [tmp_path])
    assert main(["doctor", "--device", "cpu", "--steps", "2"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  frontend" in out and "1 problem" in out


def test_doctor_is_callable_from_the_package_in_a_cell(plain_jupyter, capsys):
    assert callable(draggan_widget.doctor)  # the module itself, once imported as such
    report = draggan_widget.doctor(device="cpu", steps=1)
    assert capsys.readouterr().out.startswith("draggan-widget doctor\n")
    assert repr(report).startswith("<doctor report: ")
