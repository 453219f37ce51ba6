"""``draggan-widget doctor``: one report to paste into an issue, each problem with its fix.

    draggan-widget doctor                    # or: python -m draggan_widget doctor --device cuda
    import draggan_widget; draggan_widget.doctor()      # in a notebook cell

When the canvas stays blank or a step is slow, the cause is usually outside the package: a
runtime without a GPU, a frontend extension missing from the Jupyter that serves the page,
Colab's widget manager switched off, VS Code without network, a cache folder that cannot be
written. The report checks each in turn, then runs a short drag on the bundled model on the
chosen device, and says for every failing line what to do. Nothing here changes the machine.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import shutil
import statistics
import sys
import tempfile
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional

from . import __version__

Status = Literal["ok", "info", "warn", "fail"]

# The labextension folders (JupyterLab 4 and Notebook 7 load the same ones) each part needs.
FRONTENDS = {
    "ipywidgets": "@jupyter-widgets/jupyterlab-manager",
    "ipycanvas": "ipycanvas",
}
GIB = 2**30
LOW_GPU_MEMORY = 2 * GIB  # a 512-px step needs about 1 GiB (bench/README.md)
LOW_DISK = 1 * GIB  # one 512-px NVIDIA pickle is about 360 MB


@dataclass
class Check:
    """One line of the report: what was looked at, what was found, and what to do."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def text(self) -> str:
        label = "FAIL" if self.status == "fail" else self.status
        line = f"  {label:<5} {self.name:<9} {self.detail}"
        return line + (f"\n{'':17}-> {self.fix}" if self.fix else "")


@dataclass(repr=False)
class Report:
    """Every check in the order they ran."""

    checks: list[Check] = field(default_factory=list)

    def __repr__(self) -> str:  # a cell that ends with doctor() shows one line, not two reports
        return f"<doctor report: {self.summary()}>"

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, 1 otherwise (warnings do not fail)."""
        return 1 if self.failures else 0

    def summary(self) -> str:
        n = len(self.failures)
        if n == 0:
            return "no problem found"
        return f"{n} problem{'s' * (n > 1)}: the lines marked FAIL say what to do (->)"

    def text(self) -> str:
        return "\n".join(
            ["draggan-widget doctor", *(c.text() for c in self.checks), self.summary()]
        )


def _version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    """Whether ``module`` imports: installed metadata alone can outlive a broken install."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def check_package() -> Iterator[Check]:
    """The package and the Python running it (where it is installed is half of most issues)."""
    where = Path(__file__).resolve().parent
    yield Check("package", "ok", f"draggan-widget {__version__} at {where}")
    yield Check(
        "python", "ok", f"{platform.python_version()} on {platform.platform()} ({sys.executable})"
    )


def check_torch() -> Iterator[Check]:
    """PyTorch's version and build: a CPU-only build on a GPU machine is a common surprise."""
    try:
        import torch
    except ImportError:
        yield Check(
            "torch",
            "fail",
            "PyTorch is not installed",
            "install it for your machine (pytorch.org lists the command), then this package",
        )
        return
    hip = getattr(torch.version, "hip", None)
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else f"ROCm {hip}" if hip else "CPU"
    yield Check("torch", "ok", f"{torch.__version__} ({build} build)")


def check_device(device: Optional[str] = None) -> Iterator[Check]:
    """The device a drag would run on, its name and free memory."""
    try:
        import torch

        from .drag import pick_device

        chosen = pick_device(device)
    except ImportError:
        return  # check_torch has said what to do
    except RuntimeError as exc:  # asked for CUDA where there is none, or a bad name
        yield Check("device", "fail", str(exc), "leave --device out to use what is here")
        return
    if chosen.type == "cuda":
        try:
            yield from _cuda(torch, chosen)
        except (RuntimeError, AssertionError) as exc:  # a bad index, a driver torch cannot use
            yield Check(
                "device",
                "fail",
                f"{chosen}: {exc}",
                "check nvidia-smi; the driver must support the CUDA version torch is built for",
            )
    elif chosen.type == "mps":
        yield Check("device", "ok", "mps (Apple GPU)")
    elif torch.version.cuda and device is None:
        yield Check(
            "device",
            "warn",
            "cpu: this PyTorch is built for CUDA but sees no GPU",
            "check nvidia-smi and CUDA_VISIBLE_DEVICES; in Colab: Runtime > Change runtime type",
        )
    else:
        yield Check(
            "device",
            "info" if device == "cpu" else "warn",
            "cpu: 64-px models drag in real time, a 512-px model takes seconds per step",
            ""
            if device == "cpu"
            else "for 512 px use a GPU (Colab: Runtime > Change runtime type > T4 GPU)",
        )


def _cuda(torch: Any, device: Any) -> Iterator[Check]:
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    free, total = torch.cuda.mem_get_info(index)
    name = f"cuda:{index} {props.name}, compute capability {props.major}.{props.minor}"
    yield Check("device", "ok", name)
    memory = f"{free / GIB:.1f} GiB free of {total / GIB:.1f} GiB"
    if free < LOW_GPU_MEMORY:
        yield Check(
            "gpu mem",
            "warn",
            memory,
            "other processes hold the GPU: close other notebooks or restart the runtime",
        )
    else:
        yield Check("gpu mem", "ok", memory)


def labextension_dirs() -> list[Path]:
    """Every folder JupyterLab and Notebook 7 load prebuilt extensions from."""
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return [Path(sys.prefix) / "share" / "jupyter" / "labextensions"]
    return [Path(p) for p in jupyter_path("labextensions")]


def in_colab() -> bool:
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def in_vscode() -> bool:
    return any(k in os.environ for k in ("VSCODE_PID", "VSCODE_CWD", "VSCODE_IPC_HOOK_CLI"))


def check_widgets() -> Iterator[Check]:
    """ipywidgets and ipycanvas in the kernel, and their frontends where Jupyter serves pages."""
    missing = [dist for dist in FRONTENDS if not _importable(dist)]
    found = ", ".join(f"{d} {_version(d)}" for d in FRONTENDS if d not in missing)
    if missing:
        yield Check(
            "widgets",
            "fail",
            f"{' and '.join(missing)} not installed" + (f" ({found} is)" if found else ""),
            f"pip install {' '.join(missing)} (the widget needs them; scripts do not)",
        )
    else:
        yield Check("widgets", "ok", found)
    if in_colab() or in_vscode():
        return  # these frontends bring their own widget manager: see check_frontend
    yield from _labextensions()


def _labextensions() -> Iterator[Check]:
    servers = [f"{d} {_version(d)}" for d in ("jupyterlab", "notebook") if _version(d)]
    dirs = labextension_dirs()
    where = {f: next((d for d in dirs if (d / f).is_dir()), None) for f in FRONTENDS.values()}
    absent = [folder for folder, found in where.items() if found is None]
    if not absent:
        places = ", ".join(sorted({str(d) for d in where.values()}))
        yield Check("frontend", "ok", f"JupyterLab/Notebook 7 extensions in {places}")
    elif servers:
        yield Check(
            "frontend",
            "fail",
            f"{', '.join(servers)} here, but no {' or '.join(absent)} labextension in "
            f"{', '.join(map(str, dirs))}: the canvas will stay blank",
            "pip install --force-reinstall jupyterlab_widgets ipycanvas in the environment "
            "that runs Jupyter, then restart Jupyter and reload the page",
        )
    else:
        yield Check(
            "frontend",
            "info",
            "no JupyterLab or Notebook 7 in this environment (fine for scripts)",
            "if Jupyter runs from another environment, pip install ipywidgets ipycanvas there",
        )


def colab_widget_manager_enabled() -> Optional[bool]:
    """Whether Colab's custom widget manager is on; None when it cannot be told."""
    widgets = sys.modules.get("google.colab.output._widgets")
    if widgets is None or not hasattr(widgets, "_installed_url"):
        return None
    return bool(widgets._installed_url)


def check_frontend() -> Iterator[Check]:
    """The notebook frontend: Colab and VS Code each need something of their own."""
    if in_colab():
        enabled = colab_widget_manager_enabled()
        if enabled:
            yield Check("colab", "ok", "Colab, custom widget manager enabled")
        else:
            state = "not enabled yet" if enabled is False else "state unknown"
            yield Check(
                "colab",
                "warn" if enabled is False else "info",
                f"Colab, custom widget manager {state} (DragWidget enables it when made)",
                "if the canvas stays blank: from google.colab import output; "
                "output.enable_custom_widget_manager(), then show the widget again",
            )
    if in_vscode():
        yield Check(
            "vscode",
            "info",
            "VS Code: it fetches ipycanvas's JavaScript from a CDN",
            "the canvas needs network access there; offline, use JupyterLab",
        )


def check_cache() -> Iterator[Check]:
    """The model cache: downloads land there, so it must be a folder we can write."""
    from .gan.registry import HOME_ENV, cache_dir

    folder = cache_dir()
    fix = f"set {HOME_ENV} to a folder you can write (model downloads go there)"
    problem = _unwritable(folder)
    if problem:
        yield Check("cache", "fail", f"{folder}: {problem}", fix)
        return
    existing = _nearest_existing(folder)
    free = shutil.disk_usage(existing).free
    detail = f"{folder} is writable, {free / GIB:.1f} GiB free"
    if free < LOW_DISK:
        yield Check("cache", "warn", detail, f"free some disk space, or {fix[0].lower()}{fix[1:]}")
    else:
        yield Check("cache", "ok", detail)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _unwritable(folder: Path) -> Optional[str]:
    """Why ``folder`` (or the folder it would be made in) cannot take a file; None if it can.

    Tries a real file rather than trusting permission bits: read-only mounts and root
    differ from what ``os.access`` says. The folder itself is not created.
    """
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"cannot write in {existing} ({exc.strerror or exc})"
    return None


def check_drag(device: Optional[str] = None, steps: int = 20) -> Iterator[Check]:
    """A short drag on the bundled model: ms per step and peak memory on the chosen device."""
    try:
        import torch

        from .drag import DragConfig, pick_device
        from .gan import load_generator

        chosen = pick_device(device)
        G = load_generator("default")
    except (ImportError, RuntimeError):
        return  # the torch and device lines have said what to do
    except (FileNotFoundError, ValueError) as exc:
        yield Check("drag", "fail", f"the bundled model cannot be loaded: {exc}")
        return
    try:
        ms, peak = _timed_drag(torch, G, DragConfig(stop_distance=0.01), chosen, steps)
    except Exception as exc:  # anything a step raises is what the user needs to report
        yield Check(
            "drag",
            "fail",
            f"{steps}-step drag on {chosen} failed: {type(exc).__name__}: {exc}",
            "paste this report into an issue",
        )
        return
    first, rest = ms[0], statistics.median(ms[1:]) if len(ms) > 1 else ms[0]
    detail = (
        f"{steps} steps on {chosen}, {G.img_resolution} px: {rest:.1f} ms/step "
        f"(first {first:.0f} ms), peak {peak}"
    )
    yield Check("drag", "ok", detail)


def _timed_drag(
    torch: Any, G: Any, config: Any, device: Any, steps: int
) -> tuple[list[float], str]:
    """Each step's ms (frame included) and the peak memory, as text, of a drag of ``steps``."""
    from .drag import DragSession

    session = DragSession(G, seed=0, config=config, device=device)
    side = session.resolution
    session.set_points([(0.4 * side, 0.5 * side)], [(0.6 * side, 0.5 * side)])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ms = []
    for _ in range(steps):
        result = session.step(render=True)
        if not all(map(_finite, [result.loss, *result.distances])):
            raise FloatingPointError(f"step {result.step} gave a non-finite loss or distance")
        ms.append(result.ms)
    return ms, _peak_memory(torch, device)


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def _peak_memory(torch: Any, device: Any) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB allocated on the GPU"
    if device.type == "mps":
        return f"{torch.mps.driver_allocated_memory() / 2**20:.0f} MiB held by the MPS driver"
    try:
        import resource
    except ImportError:  # Windows
        return "not measured on this platform"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mib = rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes there, KiB here
    return f"{mib:.0f} MiB resident (the whole process)"


def run_checks(
    device: Optional[str] = None,
    steps: int = 20,
    echo: Optional[Callable[[Check], None]] = None,
) -> Report:
    """Run every check; ``echo`` sees each line as soon as it is known (a drag takes a while).

    Args:
        device: where the drag runs (cpu, cuda, cuda:1, mps); None picks as DragSession does.
        steps: steps of the test drag.
        echo: called with every `Check` as it completes.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    report = Report()
    checks = (
        check_package(),
        check_torch(),
        check_device(device),
        check_widgets(),
        check_frontend(),
        check_cache(),
        check_drag(device, steps),
    )
    for check in checks:  # generators: each runs only when its turn comes
        for line in check:
            report.checks.append(line)
            if echo is not None:
                echo(line)
    return report


def doctor(device: Optional[str] = None, steps: int = 20) -> Report:
    """Print the report (for a notebook cell or a script) and return it.

    Args:
        device: where the test drag runs; None picks CUDA, then MPS, then the CPU.
        steps: steps of the test drag.
    """
    print("draggan-widget doctor", flush=True)
    report = run_checks(device, steps, echo=lambda c: print(c.text(), flush=True))
    print(report.summary(), flush=True)
    return report


class _CallableModule(types.ModuleType):
    """``draggan_widget.doctor()`` works even after ``import draggan_widget.doctor``, which
    makes the package attribute this module rather than the function."""

    def __call__(self, device: Optional[str] = None, steps: int = 20) -> Report:
        return doctor(device, steps)


sys.modules[__name__].__class__ = _CallableModule
