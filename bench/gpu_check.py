"""Every check that needs a CUDA GPU, in one script that writes one JSON file.

    PYTHONPATH=. python bench/gpu_check.py                        # on a GPU: a few minutes
    PYTHONPATH=. python bench/gpu_check.py --device cpu --quick   # tiny models, seconds (tests)
    PYTHONPATH=. python bench/gpu_check.py --device cpu --sections memory --res 1024

Sections; each records its figures and ``ok``, and one that raises is recorded while the rest
run on:

- ``parity``: the test pickles on the device against the CPU in float32 (``force_fp32``),
  and with their fp16 blocks in float16 (the branch only CUDA takes; forced on a CPU),
  within one 8-bit level of the image (tests/gan/test_fp16.py says why).
- ``speed``: ms per drag step, ours with its frame (float32 and bfloat16) against the
  official step (bench/official_step.py), NVIDIA's FFHQ configs at 512 and 1024 px, 1 and
  5 points (bench/drag_speed.py's timing).
- ``memory``: peak memory of two drag steps, ours against official, each in a fresh process:
  ``torch.cuda.max_memory_allocated`` on a GPU, peak RSS (``resource``) on a CPU. The goal
  is at most 0.6x of official, and 1024 px within a 15 GB T4.
- ``long_drag``: 1000 steps: the allocated memory does not grow, no step gives NaN.
- ``host_syncs``: host syncs per step (``torch.cuda.set_sync_debug_mode``); at most one
  besides the frame's copy. On a CPU the scalar reads that would sync are counted instead.
- ``frames``: the widget runner's frame loop (worker thread, JPEG, one-slot hand-off) without
  a browser: frames per second at 512 px.

Needs torch, numpy, Pillow and the package's own light requirements (safetensors, tqdm), no
Jupyter stack. Run it from the repository root: it reads tests/data/ and bench/.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import platform
import statistics
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from draggan_widget.gan import stylegan2
from draggan_widget.gan.formats import load_file

try:
    from drag_speed import bench_one
    from gpu_memory import MIB, VARIANTS, measure_step, memory
    from gpu_setup import drag_session, make_generator
except ImportError:  # run as a module from the repo root
    from bench.drag_speed import bench_one
    from bench.gpu_memory import MIB, VARIANTS, measure_step, memory
    from bench.gpu_setup import drag_session, make_generator

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
PICKLES = ("sg2_32_tiny", "sg2_32_cond_clamp")
ONE_LEVEL = 2 / 255  # one 8-bit level of an image in [-1, 1]


@contextlib.contextmanager
def fp16_blocks_on(device: torch.device) -> Iterator[None]:
    """Let fp16 blocks run in float16 on ``device`` (CUDA does already; a CPU is forced)."""
    before = stylegan2.FP16_DEVICE_TYPES
    stylegan2.FP16_DEVICE_TYPES = before | {device.type}
    try:
        yield
    finally:
        stylegan2.FP16_DEVICE_TYPES = before


# ------------------------------------------------------------------ parity


def parity(device: torch.device, args: argparse.Namespace) -> dict:
    """The test pickles on ``device`` against float32 on the CPU."""
    rows = {name: parity_one(name, device) for name in PICKLES}
    ok = all(r["ok"] for r in rows.values())
    return {"ok": ok, "pickles": rows, "tolerance": {"float32": 1e-3, "fp16_max": ONE_LEVEL}}


def parity_one(name: str, device: torch.device) -> dict:
    G = load_file(DATA / f"{name}.pkl")
    ws = torch.load(DATA / f"{name}.ref.pt", weights_only=True)["ws"]
    reference = G.synthesis(ws, noise_mode="const", force_fp32=True)
    on_device = copy.deepcopy(G).to(device)
    with torch.no_grad(), fp16_blocks_on(device):
        full = on_device.synthesis(ws.to(device), noise_mode="const", force_fp32=True).cpu()
        half = on_device.synthesis(ws.to(device), noise_mode="const").cpu()
    d32, d16 = (full - reference).abs(), (half - reference).abs()
    fp16 = [r for r in G.synthesis.block_resolutions if getattr(G.synthesis, f"b{r}").use_fp16]
    row = {
        "fp16_blocks": fp16,
        "float32_max_diff": float(d32.max()),
        "fp16_max_diff": float(d16.max()),
        "fp16_mean_diff": float(d16.mean()),
    }
    row["ok"] = bool(
        d32.max() <= 1e-3
        and d16.max() <= ONE_LEVEL
        and d16.mean() <= ONE_LEVEL / 10
        and torch.isfinite(half).all()
    )
    return row


# ------------------------------------------------------------------ speed


def speed(device: torch.device, args: argparse.Namespace) -> dict:
    """ms per step, ours against official (bench/drag_speed.py's interleaved timing)."""
    repeats = 1 if args.quick else 10
    rows = []
    for res in args.res:
        G = make_generator(res, args.quick)
        name = f"{'tiny' if args.quick else 'ffhq'}-config-{res}"
        rows.extend(bench_one(G, name, n, device, repeats) for n in args.points)
    return {"ok": True, "repeats": repeats, "rows": rows}  # figures to read, not a pass/fail


# ------------------------------------------------------------------ memory


# ------------------------------------------------------------------ long drag


def long_drag(device: torch.device, args: argparse.Namespace) -> dict:
    """Many steps: allocated memory stays flat (CUDA) and every step stays finite."""
    steps = 10 if args.quick else 1000
    res = 64 if args.quick else 512
    session = drag_session(res, 5, device, args.quick)
    allocated, bad = [], None
    for i in range(steps):
        r = session.step(render=True)
        if not np.isfinite([r.loss, *r.distances, *np.ravel(r.points)]).all():
            bad = r.step
            break
        if i in (9, steps - 1) and device.type == "cuda":
            torch.cuda.synchronize()
            allocated.append(torch.cuda.memory_allocated(device))
    growth = (allocated[-1] - allocated[0]) / MIB if len(allocated) == 2 else None
    return {
        "ok": bad is None and (growth is None or growth <= 1.0),
        "resolution": res,
        "steps": steps,
        "first_non_finite_step": bad,
        "allocated_growth_mib": growth,
        "final_distances": [round(d, 2) for d in r.distances],
    }


# ------------------------------------------------------------------ host syncs


class ScalarReads(TorchDispatchMode):
    """Counts reads of a tensor's value on the host (``.item()``, ``bool()``, ``float()``):
    each is a sync on a GPU. A CPU stand-in for ``set_sync_debug_mode``; copies to the
    host (``.cpu()``, ``.tolist()``) are not seen here."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


def count_syncs(device: torch.device, fn: Callable[[], Any]) -> int:
    if device.type != "cuda":
        with ScalarReads() as reads:
            fn()
        return reads.count
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def host_syncs(device: torch.device, args: argparse.Namespace) -> dict:
    """Syncs per step without and with the frame; the frame itself needs one (its copy)."""
    res = 64 if args.quick else 512
    session = drag_session(res, 5, device, args.quick)
    for _ in range(2):  # the first step builds the drag; count steady steps
        session.step(render=True)
    without = [count_syncs(device, lambda: session.step(render=False)) for _ in range(3)]
    with_frame = [count_syncs(device, lambda: session.step(render=True)) for _ in range(3)]
    return {
        "ok": max(without) <= 1 and max(with_frame) <= max(without) + 1,
        "counted": "cuda sync debug warnings" if device.type == "cuda" else "host scalar reads",
        "per_step_without_frame": without,
        "per_step_with_frame": with_frame,
    }


# ------------------------------------------------------------------ frames


def frame_encoder() -> tuple[Callable[[np.ndarray], bytes], str]:
    """The widget's encoder, or where ipycanvas is missing the same JPEG through Pillow."""
    try:
        from draggan_widget.widget.canvas import encode_frame
    except ImportError:
        from PIL import Image

        def encode_frame(image: np.ndarray) -> bytes:
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, "JPEG", quality=85)
            return buf.getvalue()

        return encode_frame, "Pillow JPEG q85 (ipycanvas not installed)"
    return encode_frame, "draggan_widget.widget.canvas.encode_frame"


def frames(device: torch.device, args: argparse.Namespace) -> dict:
    """The runner's loop as the widget drives it, the browser replaced by a frame counter."""
    from draggan_widget.widget.runner import DragRunner, KernelLoop, LatestFrame

    steps = 5 if args.quick else 100
    res = 64 if args.quick else 512
    session = drag_session(res, 1, device, args.quick)
    session.step(render=True)  # the drag's set-up is not part of the loop's rate
    encode, encoder = frame_encoder()
    drawn, encode_ms, done = [], [], threading.Event()
    errors: list[BaseException | None] = []
    slot = LatestFrame(KernelLoop(), lambda data: drawn.append(len(data)))

    def on_frame(result: Any) -> None:
        t = time.perf_counter()
        data = encode(result.image)
        encode_ms.append((time.perf_counter() - t) * 1000)
        slot.put(data)

    def on_done(error: BaseException | None) -> None:
        errors.append(error)
        done.set()

    start = time.perf_counter()
    DragRunner(on_frame, on_done).start(session, max_steps=steps)
    done.wait()
    seconds = time.perf_counter() - start
    if errors[0] is not None:
        raise errors[0]
    return {
        "ok": len(drawn) + slot.dropped == steps,
        "resolution": res,
        "steps": steps,
        "frames_per_second": round(len(drawn) / seconds, 2),
        "encode_ms_median": round(statistics.median(encode_ms), 2),
        "frame_kib_median": round(statistics.median(drawn) / 1024, 1),
        "dropped": slot.dropped,
        "encoder": encoder,
    }


# ------------------------------------------------------------------ main

SECTIONS: dict[str, Callable[[torch.device, argparse.Namespace], dict]] = {
    "parity": parity,
    "speed": speed,
    "memory": memory,
    "long_drag": long_drag,
    "host_syncs": host_syncs,
    "frames": frames,
}


def machine(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
        )
    return info


def run_sections(device: torch.device, args: argparse.Namespace) -> dict:
    """Each section in turn; past ``--budget`` seconds the rest are skipped, not started."""
    start, results = time.perf_counter(), {}
    for name in args.sections:
        if time.perf_counter() - start > args.budget:
            results[name] = {"ok": None, "skipped": f"over the {args.budget} s budget"}
            continue
        t = time.perf_counter()
        try:
            results[name] = SECTIONS[name](device, args)
        except Exception as exc:  # recorded; the other sections still run
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            results[name]["traceback"] = traceback.format_exc(limit=8)
        results[name]["seconds"] = round(time.perf_counter() - t, 1)
        print(json.dumps({name: results[name]}), flush=True)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny models and few steps")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--res", nargs="+", type=int, help="speed/memory (default 512 1024)")
    parser.add_argument("--points", nargs="+", type=int, default=[1, 5])
    parser.add_argument("--out", default="gpu_check.json", help="the JSON file to write")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds before skipping")
    parser.add_argument("--child-memory", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.res is None:
        args.res = [64] if args.quick else [512, 1024]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the checks and write the JSON; 1 when a section raised, else 0."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.child_memory:
        row = measure_step(args.child_memory, args.res[0], args.points[0], device, args.quick)
        print(json.dumps(row))
        return 0
    start = time.perf_counter()
    sections = run_sections(device, args)
    report = {
        "machine": machine(device),
        "quick": args.quick,
        "seconds": round(time.perf_counter() - start, 1),
        "ok": all(s["ok"] is not False for s in sections.values()),
        "sections": sections,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}: ok={report['ok']} in {report['seconds']} s", flush=True)
    return 1 if any("error" in s for s in sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
