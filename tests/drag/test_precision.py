"""`DragConfig.precision`: what 'auto' picks per device, and every choice drags on the CPU."""

from __future__ import annotations

import pytest
import torch

from conftest import make_generator
from draggan_widget import DragConfig, DragSession
from draggan_widget.drag import precision
from draggan_widget.drag.precision import resolve_precision

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda", 0), torch.device("mps")


@pytest.fixture(scope="module")
def G64():
    return make_generator(img_resolution=64, w_dim=32)


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Set what the CPU probe answers."""

    def set_answer(value: bool) -> None:
        monkeypatch.setattr(precision, "cpu_has_bf16", lambda: value)

    return set_answer


def test_auto_on_a_cpu_follows_its_bfloat16_instructions(cpu_bf16):
    cpu_bf16(True)
    assert resolve_precision("auto", CPU) == "bfloat16"
    cpu_bf16(False)
    assert resolve_precision("auto", CPU) == "float32"


@pytest.mark.parametrize(("capability", "expected"), [((8, 0), "bfloat16"), ((7, 5), "float16")])
def test_auto_on_cuda_takes_bfloat16_from_ampere_and_float16_before(
    monkeypatch, capability, expected
):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", CUDA) == expected  # A100-like, T4-like


def test_auto_on_mps_stays_float32_and_explicit_choices_are_kept():
    assert resolve_precision("auto", MPS) == "float32"
    for choice in ("float32", "bfloat16", "float16"):
        assert resolve_precision(choice, CUDA) == choice


def test_the_default_is_auto_and_the_paper_runs_float32():
    assert DragConfig().precision == "auto"
    assert DragConfig.paper().precision == "float32"
    with pytest.raises(ValueError, match="precision must be one of auto, float32"):
        DragConfig(precision="int8")


def drag(G, choice: str) -> DragSession:
    s = DragSession(G, seed=1, config=DragConfig(lr=0.01, hold=0.0, precision=choice), device="cpu")
    s.set_points([(20.5, 30.5)], [(30.5, 30.5)])
    return s


@pytest.mark.parametrize("choice", ["float32", "bfloat16", "float16"])
def test_every_forced_choice_moves_the_handle_on_the_cpu(G64, choice):
    s = drag(G64, choice)
    first = s.step(render=True)
    for _ in range(14):
        last = s.step(render=False)
    assert s._drag.key.precision == choice
    assert first.image.shape == (64, 64, 3)
    assert last.distances[0] < first.distances[0] - 2.0


def test_auto_is_resolved_once_for_the_drag(G64, cpu_bf16):
    cpu_bf16(False)
    s = drag(G64, "auto")
    s.step(render=False)
    assert s.arithmetic == "float32" and s._drag.key.precision == "float32"


def test_float32_builds_no_autocast(G64, monkeypatch):
    """Building an autocast object raises on MPS before torch 2.5: float32 must not build one."""

    def refuse(*args, **kwargs):
        raise AssertionError("autocast built in float32")

    monkeypatch.setattr(torch, "autocast", refuse)
    drag(G64, "float32").step(render=True)


def test_a_step_inside_inference_mode_still_drags(G64):
    s = drag(G64, "float32")
    with torch.inference_mode():
        first = s.step(render=False)
        second = s.step(render=False)
    assert second.step == first.step + 1
    assert s.ws.requires_grad is False and not s.ws.is_inference()
