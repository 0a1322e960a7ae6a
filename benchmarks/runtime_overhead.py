"""Overhead of Segmenter.predict over a bare onnxruntime session, per registered model.

    .venv/bin/python benchmarks/runtime_overhead.py                   # all models, width 0.25
    .venv/bin/python benchmarks/runtime_overhead.py --models fcn8s unet --repeats 40
    .venv/bin/python benchmarks/runtime_overhead.py --onnx model.onnx --json out.json

For every model (a reference model built with random weights and exported, needs torch; or
the given --onnx), the same uint8 image goes through Segmenter.predict (pad, normalise,
infer, argmax, crop) while a bare InferenceSession.run gets the float32 input predict
really feeds (the padded size; for unet_valid that includes its context) ready made, and
fetches what predict fetches (`logits`, or `mask` for a --with-argmax export). The calls
alternate in rotating order so that load on a shared machine hits both alike; medians are
compared. Alongside, the host-side parts alone, in thread CPU time: pad + normalise, the
argmax (+ crop) predict does, and the np.argmax it replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def export_reference(arch: str, width: float, num_classes: int, folder: Path) -> Path:
    import onnx
    import torch

    from segdeploy.export.onnx_export import DeployWrapper, export_onnx, set_metadata
    from segdeploy.manifest import ExportInfo
    from segdeploy.reference_models import get_model
    from segdeploy.reference_models.checkpoint import card_from_model

    torch.manual_seed(0)
    model = get_model(arch, num_classes=num_classes, width=width, in_channels=3).eval()
    card = card_from_model(model)
    proto = export_onnx(DeployWrapper(model, mean=card.mean, std=card.std).eval(), card,
                        opset=17)
    set_metadata(proto, ExportInfo(card=card).to_metadata_props())
    path = folder / f"{arch}_w{width}.onnx"
    onnx.save(proto, str(path))
    return path


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Call every function once per round, rotating the order each round; seconds per call."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = clock()
            fns[name]()
            times[name].append(clock() - t0)
    return times


def measure_model(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One model: bare run vs predict (wall, interleaved) and the host parts (CPU time)."""
    import onnxruntime as ort

    from segdeploy.runtime import Segmenter
    from segdeploy.runtime.preprocess import (
        argmax_classes,
        choose_padding,
        reflect_pad,
        to_model_input,
    )

    h, w = args.size
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    with Segmenter.load(path, providers="cpu", threads=args.threads) as seg:
        seg.predict(image)  # a valid-mode model measures its margin here
        layout = choose_padding(h, w, boxes=seg._boxes, multiple=seg._align,
                                min_size=seg.card.min_size, margin=seg._margin,
                                base=seg._base)
        padded = reflect_pad(image[None], layout)

        def prepare() -> np.ndarray:
            return to_model_input(reflect_pad(image[None], layout), dtype=seg._spec.dtype,
                                  layout=seg._layout, mean=seg.card.mean, std=seg.card.std)

        feeds = {seg.info.input_name: prepare()}
        fetch = seg._mask_name or seg._logits_name
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
            opts.add_session_config_entry(key, "0")  # as OnnxRuntimeRunner does by default
        bare = ort.InferenceSession(str(path), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
        for _ in range(2):
            bare.run([fetch], feeds)
            seg.predict(image)
        out = bare.run([seg._logits_name], feeds)[0]
        wall = interleaved({"bare": lambda: bare.run([fetch], feeds),
                            "predict": lambda: seg.predict(image)}, args.repeats)
        top, left = layout.top - (padded.shape[1] - out.shape[-2]) // 2, \
            layout.left - (padded.shape[2] - out.shape[-1]) // 2
        crop = out[..., top:top + h, left:left + w]
        host = interleaved({"prepare": prepare,
                            "argmax": lambda: argmax_classes(crop, seg.mask_dtype),
                            "np.argmax": lambda: np.argmax(out, axis=1).astype(np.uint8)},
                           args.repeats, clock=time.thread_time)
        bare_ms, pred_ms = (statistics.median(wall[k]) * 1e3 for k in ("bare", "predict"))
        return {"model": seg.card.arch, "classes": seg.num_classes,
                "input": "x".join(map(str, feeds[seg.info.input_name].shape)),
                "bare_ms": round(bare_ms, 2), "predict_ms": round(pred_ms, 2),
                "overhead_pct": round((pred_ms / bare_ms - 1) * 100, 2),
                **{f"{k}_cpu_ms": round(statistics.median(v) * 1e3, 3)
                   for k, v in host.items()}}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    from segdeploy.reference_models import list_models

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, nargs="*", help="ONNX files with segdeploy metadata")
    ap.add_argument("--models", nargs="*", default=list_models(),
                    help="reference models to build and export [default: all registered]")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads, all sessions")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = args.onnx or [export_reference(m, args.width, args.classes, Path(tmp))
                              for m in args.models]
        for path in paths:
            rows.append(measure_model(path, args))
            print(f"measured {rows[-1]['model']}", flush=True)
    report(args, rows)


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The Markdown table published in BENCHMARKS.md (and --json)."""
    import onnxruntime as ort

    from segdeploy.bench.cpu_features import cpu_extensions

    h, w = args.size
    machine = (f"{cpu_name()}, {os.cpu_count()} CPUs ({', '.join(cpu_extensions())}), "
               f"onnxruntime {ort.__version__}, numpy {np.__version__}, "
               f"{args.threads} threads")
    print(f"image {h}x{w} uint8; {args.repeats} interleaved rounds; {machine}")
    print("| model | classes | model input | bare run ms | predict ms | overhead | "
          "pad + normalise (CPU ms) | argmax + crop (CPU ms) | np.argmax before (CPU ms) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['classes']} | {r['input']} | {r['bare_ms']} | "
              f"{r['predict_ms']} | {r['overhead_pct']:+.1f} % | {r['prepare_cpu_ms']} | "
              f"{r['argmax_cpu_ms']} | {r['np.argmax_cpu_ms']} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "repeats": args.repeats,
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
