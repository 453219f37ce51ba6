"""The ``draggan-widget`` command line: demo, models and version, and its one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from conftest import REPO, make_generator
from draggan_widget import __version__, save_generator
from draggan_widget.__main__ import demo_points, main


@pytest.fixture
def tiny_model(tmp_path):
    return save_generator(make_generator(), tmp_path / "tiny.safetensors")


def test_demo_writes_an_animated_gif_and_reports_progress(tiny_model, tmp_path, capsys):
    out = tmp_path / "gifs" / "demo.gif"  # a missing folder is made
    argv = ["demo", "--model", str(tiny_model), "--out", str(out), "--steps", "4"]
    code = main([*argv, "--device", "cpu", "--every", "1", "--seed", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    with Image.open(out) as gif:
        assert gif.n_frames > 1
    assert lines[1].startswith("step    1  distance")  # no handle starts within 1 px
    assert " steps in " in lines[-1] and lines[-1].endswith(f"wrote {out}")


def test_demo_points_scale_with_the_image_side():
    handles, targets = demo_points(64)
    big_handles, big_targets = demo_points(512)
    assert len(handles) == len(targets) >= 1
    assert big_handles == [(8 * x, 8 * y) for x, y in handles]
    assert big_targets == [(8 * x, 8 * y) for x, y in targets]
    assert all(0 < v < 64 for p in handles + targets for v in p)


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines[1:-1]]
    assert "default" in names and "ffhq-512" in names
    assert lines[0].split()[:4] == ["name", "px", "family", "aspect"]
    human = next(line.split() for line in lines if line.startswith("human-512"))
    assert human[1:4] == ["512", "stylegan2", "1:2"]  # 512 high, 256 wide


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "{tmp}/missing.safetensors"], "no weights file at"),
        (["--model", "no-such-model"], "cannot load 'no-such-model'"),
        (["--out", "{tmp}/demo.mp4"], "must name a .gif file"),
        (["--device", "not-a-device"], "--device not-a-device"),
    ],
)
def test_user_errors_give_one_line_and_exit_2(argv, message, tmp_path, capsys):
    code = main(["demo", *(a.format(tmp=tmp_path) for a in argv)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_usage_errors_exit_2_without_raising(capsys):
    assert main(["demo", "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
    assert main([]) == 2


def test_version_runs_as_a_module():
    done = subprocess.run(
        [sys.executable, "-m", "draggan_widget", "version"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"draggan-widget {__version__}"
