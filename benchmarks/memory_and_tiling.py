"""Per registered model: Segmenter's memory estimate against the measured peak at two sizes,
and how much automatic tiling changes the masks (issue 18's tables in BENCHMARKS.md).

    .venv/bin/python benchmarks/memory_and_tiling.py [--epochs 3] [--width 0.25] [--json F]

Each model is trained briefly on the built-in brain MRI (so its logits have real margins:
random-weight models tie everywhere and say nothing about tiling), exported to ONNX, then:
- memory: a fresh process predicts one image of each size untiled and reports its peak
  resident growth (VmHWM after a peak reset - VmRSS before) and the Segmenter's estimate;
- tiling: a 700x900 mosaic of real validation slices, predicted untiled and auto-tiled under a
  small budget (the measured overlap), agreement of the two masks.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEAK = """
import json, sys
import numpy as np
from segdeploy.runtime import Segmenter

def status_kib(key):  # VmHWM / VmRSS: ru_maxrss carries the parent's peak across exec
    with open("/proc/self/status") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith(key + ":"))

seg = Segmenter.load(sys.argv[1], memory_budget="64G", threads=1)
side = int(sys.argv[2])
seg._needs_tiling(1, 60000, 60000)  # measure the model now, before the baseline
image = np.random.default_rng(0).integers(0, 256, (side, side, seg.channels), np.uint8)
open("/proc/self/clear_refs", "w").write("5")  # VmHWM back to the current size
base = status_kib("VmRSS") * 1024
seg.predict(image)
peak = status_kib("VmHWM") * 1024
print(json.dumps({"real": (peak - base) / side / side, "estimate": seg.bytes_per_pixel}))
"""


def train_export(arch: str, out: Path, epochs: int, width: float) -> Path:
    from segdeploy.export import ExportOptions, run_export
    from segdeploy.training import TrainConfig, train

    ckpt = out / f"{arch}.pt"
    extra = {"batch_norm": True} if arch.startswith("unet") else {}
    train(TrainConfig(arch=arch, data="brain", width=width, epochs=epochs, lr=3e-3,
                      batch_size=8, image_size=(128, 128), seed=0, device="cpu",
                      output=str(ckpt), progress=False, verbose=False, **extra))
    return run_export(ckpt, ExportOptions(output=str(out / f"{arch}.onnx"), opset=17,
                                          fp16=False, check_sizes=["97x131"])).onnx_path


def peak(onnx: Path, side: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", PEAK, str(onnx), str(side)],
                          capture_output=True, text=True, timeout=900, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def tiling(onnx: Path) -> dict[str, float]:
    import warnings

    import numpy as np

    from segdeploy.data import get_dataset
    from segdeploy.runtime import Segmenter

    ds = get_dataset("brain", "val")
    tiles = [ds[(3 * i) % len(ds)][0] for i in range(16)]
    rows = [np.concatenate(tiles[4 * r:4 * r + 4], axis=1) for r in range(4)]
    image = np.ascontiguousarray(np.concatenate(rows, axis=0)[:700, :900])
    with Segmenter.load(onnx, memory_budget="64G") as seg:
        untiled = seg.predict(image)
    with Segmenter.load(onnx, memory_budget="40M") as seg, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiled = seg.predict(image)
        radius, tile = seg._radius, seg._auto_tile()
    return {"agreement": float((tiled == untiled).mean()), "radius": radius or 0,
            "tile": tile[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="*")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--sizes", type=int, nargs=2, default=(512, 1024))
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    from segdeploy.reference_models import list_models

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.models or list_models():
            t0 = time.perf_counter()
            onnx = train_export(arch, Path(tmp), args.epochs, args.width)
            row = {"model": arch, "width": args.width,
                   **{f"mem_{s}": peak(onnx, s) for s in args.sizes}, **tiling(onnx),
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("| model | real B/px " + " | real B/px ".join(map(str, args.sizes))
          + " | estimate B/px | influence radius | auto tile | tiled == untiled |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        mem = [r[f"mem_{s}"] for s in args.sizes]
        print(f"| {r['model']} | " + " | ".join(f"{m['real']:.0f}" for m in mem)
              + f" | {mem[0]['estimate']} | {r['radius']} | {r['tile']} | "
              f"{100 * r['agreement']:.3f}% |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
