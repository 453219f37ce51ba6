"""The ``draggan-widget`` command: a drag without Jupyter, the list of models, the version.

    python -m draggan_widget demo --out demo.gif             # a drag on the bundled model
    python -m draggan_widget demo --model ffhq-512 --device cuda --steps 300
    python -m draggan_widget models                          # what --model accepts by name
    python -m draggan_widget version
    python -m draggan_widget doctor                          # what to paste into an issue

``demo`` widens the smile of a generated face: it drags both corners of the mouth outward
and up, by 4% of the image side each way, and writes the drag as a GIF with the points
drawn. It is meant for headless servers and for a first check that an installation works,
so it prints its progress instead of drawing a widget.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from . import __version__

if TYPE_CHECKING:
    from .drag import StepResult

Point = tuple[float, float]

# (handle, target) as fractions of the image side: the mouth's corners, moved out and up.
# They sit where the corners are on average in the default model's faces and in FFHQ.
DEMO_DRAG: tuple[tuple[Point, Point], ...] = (
    ((0.40, 0.70), (0.36, 0.66)),
    ((0.60, 0.70), (0.64, 0.66)),
)


class CommandError(Exception):
    """A mistake the user can fix (a bad path, an unknown model): reported in one line."""


def demo_points(side: Union[int, tuple[int, int]]) -> tuple[list[Point], list[Point]]:
    """The demo's handles and targets in image pixels of a ``side``-px model.

    Fractions of the image rather than pixels, so that the same drag makes sense on the
    64-px default model and on a 1024-px FFHQ one; x is a fraction of the width and y of
    the height, so a portrait model (StyleGAN-Human's 2:1) keeps them on its image.

    Args:
        side: the generator's ``img_resolution``, or its image's ``(height, width)``.

    Returns:
        ``(handles, targets)``, each a list of ``(x, y)``.
    """
    height, width = (side, side) if isinstance(side, int) else side
    handles = [(hx * width, hy * height) for (hx, hy), _ in DEMO_DRAG]
    targets = [(tx * width, ty * height) for _, (tx, ty) in DEMO_DRAG]
    return handles, targets


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (one sub-command per task), for `main` and for docs."""
    parser = argparse.ArgumentParser(
        prog="draggan-widget",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the package does")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run a drag headless and write it as a GIF")
    demo.add_argument("--out", default="demo.gif", help="the GIF to write (default demo.gif)")
    demo.add_argument(
        "--model",
        default="default",
        help="a path, URL or registry name, as load_generator takes (default: the bundled one)",
    )
    demo.add_argument("--seed", type=int, default=0, help="the image's seed (default 0)")
    demo.add_argument(
        "--steps", type=_positive_int, default=200, help="the most steps to run (default 200)"
    )
    demo.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: CUDA, MPS, then CPU)")
    demo.add_argument(
        "--every", type=_positive_int, default=10, help="print a line every N steps (default 10)"
    )
    demo.set_defaults(run=_demo)

    models = commands.add_parser("models", help="list the models --model accepts by name")
    models.set_defaults(run=_models)

    version = commands.add_parser("version", help="print the versions of the package and torch")
    version.set_defaults(run=_version)

    doctor = commands.add_parser(
        "doctor", help="check the installation and run a short drag; exits 1 on a problem"
    )
    doctor.add_argument("--device", help="where the drag runs (default: CUDA, MPS, then CPU)")
    doctor.add_argument(
        "--steps", type=_positive_int, default=20, help="steps of the test drag (default 20)"
    )
    doctor.set_defaults(run=_doctor)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from .drag import DragSession, pick_device
    from .export import save_gif
    from .gan import load_generator
    from .gan.registry import DownloadError

    out = Path(args.out).expanduser()
    if out.suffix.lower() != ".gif":
        raise CommandError(f"--out must name a .gif file, got {args.out!r}")
    try:
        device = pick_device(args.device)
    except RuntimeError as exc:  # no CUDA, or not a device name torch knows
        raise CommandError(f"--device {args.device}: {exc}") from None
    try:
        G = load_generator(args.model)
    except (FileNotFoundError, ValueError, DownloadError) as exc:
        raise CommandError(str(exc)) from None

    session = DragSession(G, seed=args.seed, device=device)
    handles, targets = demo_points(session.shape)
    session.set_points(handles, targets)
    pairs = ", ".join(
        f"({h[0]:.0f}, {h[1]:.0f}) -> ({t[0]:.0f}, {t[1]:.0f})" for h, t in zip(handles, targets)
    )
    print(
        f"model {args.model}: {session.width}x{session.height} px, seed {args.seed}, {device}; "
        f"widening the smile: {pairs}"
    )

    def report(result: StepResult) -> None:
        if result.step % args.every == 0:
            print(_describe(result))

    start = time.perf_counter()
    try:
        last = session.run(args.steps, report, render=True)
    except FloatingPointError as exc:  # a model whose gradients blow up at the default lr
        raise CommandError(str(exc)) from None
    seconds = time.perf_counter() - start

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_gif(session, out)
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc}") from None
    outcome = "arrived" if last.done else "not arrived (--steps to go on)"
    distances = ", ".join(f"{d:.1f}" for d in last.distances)
    print(
        f"{outcome} after {last.step} steps in {seconds:.1f} s "
        f"({1000 * seconds / last.step:.0f} ms/step); final distances {distances} px; "
        f"wrote {out}"
    )
    return 0


def _describe(result: StepResult) -> str:
    """One progress line: the step, each handle's distance to its target, loss, time."""
    distances = ", ".join(f"{d:.1f}" for d in result.distances)
    return (
        f"step {result.step:4d}  distance {distances} px  "
        f"loss {result.loss:.4g}  {result.ms:.0f} ms"
    )


def _models(args: argparse.Namespace) -> int:
    from .gan.registry import bundled_path, cache_dir, list_models

    rows = [("name", "px", "family", "aspect", "format", "local", "description")]
    manual = []
    for m in list_models():
        local = "cached" if (cache_dir() / m.filename).is_file() else ""
        if not local and m.manual is not None:
            local = "manual"  # never downloaded; the steps are printed after the table
            manual.append(m)
        if m.url is None:
            try:
                bundled_path(m.filename)  # raises when the file is not there
                local = "bundled"
            except FileNotFoundError:
                local = "missing"
        px = str(m.resolution or "?")
        rows.append((m.name, px, m.family, m.aspect, m.format, local, m.description))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        print("  ".join([*cells, row[-1]]))
    for m in manual:
        print(
            f"{m.name} (manual): download it by hand from {m.url}: {m.manual}; "
            f"save it as {cache_dir() / m.filename}"
        )
    print(f"downloads go to {cache_dir()} (set DRAGGAN_WIDGET_HOME to change it)")
    return 0


def _version(args: argparse.Namespace) -> int:
    import torch

    gpu = "no CUDA device"
    if torch.cuda.is_available():
        gpu = f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}"
    print(f"draggan-widget {__version__}")
    print(f"torch {torch.__version__} ({gpu}), Python {platform.python_version()}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor

    return doctor(args.device, args.steps).exit_code


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command line; returns the exit status instead of exiting.

    Args:
        argv: the arguments after the program name; None reads ``sys.argv``.

    Returns:
        0 on success, 1 when ``doctor`` found a problem, 2 for a usage error or a mistake the
        user can fix (reported on stderr in one line, without a traceback), 130 when
        interrupted.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits after --help and on usage errors
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
