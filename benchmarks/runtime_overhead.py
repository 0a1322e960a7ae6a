"""Overhead of segdeploy.runtime over a bare onnxruntime.InferenceSession.run (BENCHMARKS.md).

    .venv/bin/python benchmarks/runtime_overhead.py                      # fcn8s, width 0.25
    .venv/bin/python benchmarks/runtime_overhead.py --arch unet --width 0.5 --threads 2
    .venv/bin/python benchmarks/runtime_overhead.py --onnx model.onnx --json out.json

The same ONNX file and the same 1x3x256x256 input go through (a) a bare InferenceSession,
(b) OnnxRuntimeRunner.infer (feed checks incl. the NaN scan, output selection) and
(c) Segmenter.logits; the calls are interleaved in rotating order so that load on a shared
machine hits all three alike, and medians are compared. It also times Segmenter.predict end
to end on uint8 images (pad, normalise, infer, argmax, crop) against the bare session run on
the already prepared input. Without --onnx, a reference model is built with random weights
and exported (needs torch; the timed part does not).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

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
    proto = export_onnx(DeployWrapper(model, mean=card.mean, std=card.std).eval(), card)
    set_metadata(proto, ExportInfo(card=card).to_metadata_props())
    path = folder / f"{arch}_w{width}.onnx"
    onnx.save(proto, str(path))
    return path


def interleaved(fns: dict[str, object], repeats: int) -> dict[str, list[float]]:
    """Call every function once per round, rotating the order each round; seconds per call."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            fns[name]()  # type: ignore[operator]
            times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, help="an ONNX file with segdeploy metadata")
    ap.add_argument("--arch", default="fcn8s")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads, all sessions")
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    report(args, measure(args))


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds per call of each measured path, interleaved round-robin."""
    import onnxruntime as ort

    from segdeploy.imaging import normalize
    from segdeploy.runtime import OnnxRuntimeRunner, Segmenter
    from segdeploy.runtime.preprocess import (
        argmax_classes,
        choose_padding,
        reflect_pad,
        to_model_input,
    )
    from segdeploy.runtime.runner import check_feeds, check_output_names

    with tempfile.TemporaryDirectory() as tmp:
        path = args.onnx or export_reference(args.arch, args.width, args.classes, Path(tmp))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        bare = ort.InferenceSession(str(path), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
        runner = OnnxRuntimeRunner(path, providers="cpu", threads=args.threads).activate()
        seg = Segmenter.load(path, providers="cpu", threads=args.threads)
        h, w = args.size
        image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        x = normalize(image, seg.card.mean, seg.card.std)[None]
        feeds = {"input": x}
        for _ in range(3):  # warm-up: first runs allocate arenas
            bare.run(["logits"], feeds)
            runner.infer(feeds, output_names=["logits"])
            seg.predict(image)
        np.testing.assert_array_equal(bare.run(["logits"], feeds)[0], seg.logits(x))

        times = interleaved({
            "bare InferenceSession.run": lambda: bare.run(["logits"], feeds),
            "OnnxRuntimeRunner.infer": lambda: runner.infer(feeds, output_names=["logits"]),
            "Segmenter.logits": lambda: seg.logits(x),
            f"Segmenter.predict uint8 {h}x{w}": lambda: seg.predict(image),
        }, args.repeats)
        odd = np.random.default_rng(1).integers(0, 256, (197, 233, 3), dtype=np.uint8)
        x_odd = normalize(odd, seg.card.mean, seg.card.std)[None]
        times.update(interleaved({
            "bare run 197x233": lambda: bare.run(["logits"], {"input": x_odd}),
            "Segmenter.predict uint8 197x233": lambda: seg.predict(odd),
        }, args.repeats))
        # the runtime's own work per call, isolated: feed checks (dtype, shape, NaN scan),
        # and Segmenter.predict's pre/post-processing
        specs = runner.input_specs()
        layout = choose_padding(h, w, boxes=seg._boxes, multiple=seg._align,
                                min_size=seg.card.min_size)
        logits = bare.run(["logits"], feeds)[0]
        times.update(interleaved({
            "runner checks only (no inference)": lambda: (
                check_feeds(specs, feeds), check_output_names(["logits"], ["logits"])),
            "predict: pad + normalise only": lambda: to_model_input(
                reflect_pad(image[None], layout), dtype=np.float32, layout="NCHW",
                mean=seg.card.mean, std=seg.card.std),
            "predict: argmax + crop only": lambda: argmax_classes(logits)[0, :h, :w],
        }, args.repeats))
        seg.close()
        runner.close()
    return times


def report(args: argparse.Namespace, times: dict[str, list[float]]) -> None:
    """The Markdown table published in BENCHMARKS.md (and --json)."""
    import onnxruntime as ort

    h, w = args.size
    base = statistics.median(times["bare InferenceSession.run"])  # also the base of the "only" rows
    base_odd = statistics.median(times["bare run 197x233"])
    rows = []
    for name, values in times.items():
        med = statistics.median(values)
        ref = base_odd if "197x233" in name else base
        rows.append({"call": name, "median_ms": round(med * 1e3, 3),
                     "p10_ms": round(float(np.percentile(values, 10)) * 1e3, 3),
                     "p90_ms": round(float(np.percentile(values, 90)) * 1e3, 3),
                     "vs_bare": (f"{med / ref * 100:.2f}% of it" if "only" in name
                                 else f"{(med / ref - 1) * 100:+.2f}%")})
    model = str(args.onnx) if args.onnx else f"{args.arch} width {args.width} ({args.classes} cl.)"
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, " \
              f"onnxruntime {ort.__version__}, {args.threads} threads"
    print(f"model: {model}; input 1x3x{h}x{w}; {args.repeats} interleaved rounds; {machine}")
    print("| call | median ms | p10 | p90 | vs bare run |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['call']} | {r['median_ms']} | {r['p10_ms']} | {r['p90_ms']} | "
              f"{r['vs_bare']} |")
    if args.json:
        args.json.write_text(json.dumps({"model": model, "machine": machine,
                                         "repeats": args.repeats, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
