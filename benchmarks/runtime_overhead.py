"""Overhead of Segmenter.predict over a bare onnxruntime session, per registered model.

    .venv/bin/python benchmarks/runtime_overhead.py                   # all models, width 0.25
    .venv/bin/python benchmarks/runtime_overhead.py --models fcn8s unet --repeats 40
    .venv/bin/python benchmarks/runtime_overhead.py --onnx model.onnx --json out.json

For every model (a reference model built with random weights and exported, needs torch; or
the given --onnx), the same uint8 image goes through Segmenter.predict (pad, normalise,
infer, argmax, crop) while a bare InferenceSession.run (the Segmenter's own session: two
sessions of one file differ by up to 8 % on the same machine) gets the input predict
really feeds (the padded size; for unet_valid that includes its context) ready made, and
fetches what predict fetches (`logits`, or `mask` for a --with-argmax export). The two
calls run back to back in alternating order, so that load on a shared machine hits both
alike; the overhead is the median of the per-round ratios predict / bare (wall time), and
also the ratio of the median process CPU times (all threads; insensitive to other jobs).
For a default export a third call runs too: the bare run followed by np.argmax, what a
hand-written loop needs to get the same mask ("predict vs bare + np.argmax").
Alongside, the host-side parts alone, in thread CPU time: pad + normalise, the argmax
(+ crop) predict does, and the np.argmax it replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def export_reference(arch: str, width: float, num_classes: int, folder: Path, *,
                     in_graph: bool = False) -> Path:
    """A reference model with random weights, exported (in_graph: as `segdeploy export
    --with-preprocess --with-argmax` does: uint8 NHWC in, `logits` and `mask` out)."""
    import onnx
    import torch

    from segdeploy.export.onnx_export import DeployWrapper, export_onnx, output_names
    from segdeploy.manifest import ExportInfo
    from segdeploy.onnx_metadata import set_metadata
    from segdeploy.reference_models import get_model
    from segdeploy.reference_models.checkpoint import card_from_model

    torch.manual_seed(0)
    model = get_model(arch, num_classes=num_classes, width=width, in_channels=3).eval()
    card = card_from_model(model)
    wrapper = DeployWrapper(model, mean=card.mean, std=card.std, preprocess=in_graph,
                            argmax=in_graph).eval()
    proto = export_onnx(wrapper, card, opset=17)
    info = ExportInfo(card=card, output_names=output_names(in_graph),
                      input_dtype="uint8" if in_graph else "float32",
                      preprocess_in_graph=in_graph, argmax_in_graph=in_graph, opset=17,
                      input_layout="NHWC" if in_graph else "NCHW")
    set_metadata(proto, info.to_metadata_props())
    path = folder / f"{arch}_w{width}{'_ingraph' if in_graph else ''}.onnx"
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


def paired(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """The calls back to back, the order rotating each round: wall and process CPU seconds
    (key + "_cpu")."""
    names = list(fns)
    times: dict[str, list[float]] = {k: [] for n in names for k in (n, n + "_cpu")}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
            times[name + "_cpu"].append(time.process_time() - c0)
    return times


def measure_model(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One model: bare run vs predict (wall, interleaved) and the host parts (CPU time)."""

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
        # the Segmenter's own session: two sessions of one file differ by up to 8 % here
        # (memory placement), which is not the Segmenter's cost
        bare = seg.runner.session
        for _ in range(2):
            bare.run([fetch], feeds)
            seg.predict(image)
        out = bare.run([seg._logits_name], feeds)[0]
        calls = {"bare": lambda: bare.run([fetch], feeds), "predict": lambda: seg.predict(image)}
        if not seg._mask_name:  # what a hand-written loop needs for the same mask
            calls["bare_np"] = lambda: np.argmax(bare.run([fetch], feeds)[0], axis=1).astype(
                np.uint8)
        wall = paired(calls, args.repeats)
        top, left = layout.top - (padded.shape[1] - out.shape[-2]) // 2, \
            layout.left - (padded.shape[2] - out.shape[-1]) // 2
        crop = out[..., top:top + h, left:left + w]
        host = interleaved({"prepare": prepare,
                            "argmax": lambda: argmax_classes(crop, seg.mask_dtype),
                            "np.argmax": lambda: np.argmax(out, axis=1).astype(np.uint8)},
                           args.repeats, clock=time.thread_time)
        med = {k: statistics.median(v) * 1e3 for k, v in wall.items()}
        ratios = [p / b for p, b in zip(wall["predict"], wall["bare"], strict=True)]
        in_graph = bool(seg._mask_name)
        return {"model": seg.card.arch + (" (in-graph pre + argmax)" if in_graph else ""),
                "in_graph": in_graph, "classes": seg.num_classes,
                "input": "x".join(map(str, feeds[seg.info.input_name].shape)),
                "bare_ms": round(med["bare"], 2), "predict_ms": round(med["predict"], 2),
                "overhead_pct": round((statistics.median(ratios) - 1) * 100, 2),
                "cpu_overhead_pct": round((med["predict_cpu"] / med["bare_cpu"] - 1) * 100, 2),
                "vs_bare_np_pct": round((statistics.median(
                    p / b for p, b in zip(wall["predict"], wall["bare_np"], strict=True)) - 1)
                    * 100, 2) if "bare_np" in wall else None,
                **{f"{k}_cpu_ms": round(statistics.median(v) * 1e3, 3)
                   for k, v in host.items()}}


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
    ap.add_argument("--in-graph", action="store_true",
                    help="also measure each model exported with --with-preprocess --with-argmax")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = (False, True) if args.in_graph else (False,)
        paths = args.onnx or [export_reference(m, args.width, args.classes, Path(tmp),
                                               in_graph=g) for m in args.models for g in variants]
        for path in paths:
            rows.append(measure_model(path, args))
            print(f"measured {rows[-1]['model']}", flush=True)
    report(args, rows)


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The Markdown table published in BENCHMARKS.md (and --json)."""
    import onnxruntime as ort

    from segdeploy.bench.cpu_features import cpu_extensions
    from segdeploy.bench.environment import cpu_model

    h, w = args.size
    machine = (f"{cpu_model()}, {os.cpu_count()} CPUs ({', '.join(cpu_extensions())}), "
               f"onnxruntime {ort.__version__}, numpy {np.__version__}, "
               f"{args.threads} threads")
    print(f"image {h}x{w} uint8; {args.repeats} interleaved rounds; {machine}")
    print("| model | classes | model input | bare run ms | predict ms | overhead (paired "
          "median) | CPU-time overhead | pad + normalise (CPU ms) | argmax + crop (CPU ms) | "
          "np.argmax before (CPU ms) | predict vs bare + np.argmax |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['classes']} | {r['input']} | {r['bare_ms']} | "
              f"{r['predict_ms']} | {r['overhead_pct']:+.1f} % | "
              f"{r['cpu_overhead_pct']:+.1f} % | {r['prepare_cpu_ms']} | "
              f"{'in graph' if r['in_graph'] else r['argmax_cpu_ms']} | "
              f"{r['np.argmax_cpu_ms']} | "
              f"{'-' if r['vs_bare_np_pct'] is None else format(r['vs_bare_np_pct'], '+.1f')} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "repeats": args.repeats,
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
