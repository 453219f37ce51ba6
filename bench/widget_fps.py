"""ms per widget frame: encode + send through ipycanvas, JPEG against PNG, same process.

    PYTHONPATH=. python bench/widget_fps.py [--res 64 256 512] [--repeats 40]

One frame is what `DragWidget` does per drag step: encode the image (in the worker
thread) and send it with ``putImageData`` (on the kernel loop). The comm's ``send`` is
replaced by a function that only records the message size, so the figures are the
kernel's cost, without the websocket. Variants, on the same image:

- **ours_jpeg**: `DragCanvas.encode` (JPEG q85; 4:4:4 up to 256 px) + `DragCanvas.draw_frame`
  (transform + ``putImageData`` of the ready bytes, one batched message). What ships.
- **ipycanvas_jpeg**: ``Canvas.put_image_data(rgb)``: ipycanvas encodes JPEG q75 itself.
- **png_rgba**: ``Canvas.put_image_data(rgba)``: ipycanvas encodes PNG (the exact-pixels
  path, and the baseline).

The image is seeded multi-octave value noise: smooth regions, texture and edges, which
compresses about like a photograph (pure noise would be unfair to both codecs).
Prints one JSON document: machine, configuration, then per resolution the median ms
(encode, send, total), the message bytes, and png_rgba / ours_jpeg.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from typing import Any, Callable

import ipycanvas
import numpy as np
import PIL
from common import machine, median_ms
from ipycanvas import canvas as ipc
from PIL import Image

from draggan_widget.widget.canvas import DragCanvas, batched


def photo_like(res: int, seed: int = 0) -> np.ndarray:
    """``res x res x 3`` uint8 multi-octave value noise (1/f amplitude), seeded."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((res, res, 3), np.float32)
    amp, total = 1.0, 0.0
    size = 4
    while size <= res:
        small = rng.random((size, size, 3), dtype=np.float32)
        layer = Image.fromarray((small * 255).astype(np.uint8)).resize((res, res), Image.BICUBIC)
        acc += amp * np.asarray(layer, np.float32)
        total += amp
        amp *= 0.55
        size *= 2
    return np.clip(acc / total, 0, 255).astype(np.uint8)


class SizeRecorder:
    """Stands in for the canvas manager's comm ``send``: records bytes, sends nothing."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, content: Any, buffers: Any = None) -> None:
        self.sizes.append(sum(memoryview(b).nbytes for b in buffers or []))


def bench_res(res: int, repeats: int, recorder: SizeRecorder) -> dict[str, Any]:
    canvas = DragCanvas(res)
    layer = canvas.image_layer
    rgb = photo_like(res)
    rgba = np.concatenate([rgb, np.full((res, res, 1), 255, np.uint8)], axis=2)
    data = canvas.encode(rgb)

    def last_size(fn: Callable[[], Any]) -> int:
        recorder.sizes.clear()
        fn()
        return recorder.sizes[-1]

    def ipycanvas_put(arr: np.ndarray) -> Callable[[], None]:
        def put() -> None:
            with batched():
                layer.put_image_data(arr)

        return put

    ours_encode = median_ms(lambda: canvas.encode(rgb), repeats)
    ours_send = median_ms(lambda: canvas.draw_frame(data), repeats)
    ours_total = median_ms(lambda: canvas.draw_frame(canvas.encode(rgb)), repeats)
    ipy_jpeg = median_ms(ipycanvas_put(rgb), repeats)
    png = median_ms(ipycanvas_put(rgba), repeats)
    result = {
        "res": res,
        "display_px": canvas.widget.width,
        "ours_jpeg": {
            "encode_ms": round(ours_encode, 3),
            "send_ms": round(ours_send, 3),
            "total_ms": round(ours_total, 3),
            "bytes": last_size(lambda: canvas.draw_frame(data)),
        },
        "ipycanvas_jpeg": {
            "total_ms": round(ipy_jpeg, 3),
            "bytes": last_size(ipycanvas_put(rgb)),
        },
        "png_rgba": {"total_ms": round(png, 3), "bytes": last_size(ipycanvas_put(rgba))},
    }
    result["png_over_ours"] = round(png / ours_total, 1)
    result["ours_under_10ms"] = ours_total < 10.0
    canvas.widget.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()

    recorder = SizeRecorder()
    ipc._CANVAS_MANAGER.send = recorder  # no frontend: measure the kernel's side only
    results = [bench_res(res, args.repeats, recorder) for res in args.res]
    print(
        json.dumps(
            {
                "machine": {
                    **machine(),
                    "cpu_count": os.cpu_count(),
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                    "pillow": PIL.__version__,
                    "ipycanvas": ipycanvas.__version__,
                },
                "config": {
                    "repeats": args.repeats,
                    "statistic": "median",
                    "image": "seeded multi-octave value noise, RGB uint8",
                    "ours": "JPEG q85 (4:4:4 up to 256 px, else 4:2:0), sent pre-encoded",
                    "ipycanvas_jpeg": "put_image_data(rgb): JPEG q75 4:2:0",
                    "png_rgba": "put_image_data(rgba): PNG, Pillow's default level",
                    "comm": "send replaced by a size recorder (no websocket)",
                },
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
