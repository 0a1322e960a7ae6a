"""Two models used in turn in one process: each one's latency alone vs alternating, with
ONNX Runtime's thread spinning on and off (BENCHMARKS.md, "ONNX Runtime thread spinning").

    .venv/bin/python benchmarks/two_models.py unet.onnx fcn8s.onnx --rounds 15
    .venv/bin/python benchmarks/two_models.py            # reference unet + fcn8s, width 0.25

Each model is opened twice through Segmenter.load (ONNX Runtime, `--threads` intra-op
threads), once with spinning=True (ONNX Runtime's own default) and once with spinning=False
(segdeploy's). Every round, for each setting in rotating order: model A twice and B twice
(the second call of each is its "alone" time: the same model ran just before), then A, B,
A, B ("alternating": the other model ran just before), after a pause (--settle) in which
the other setting's spinning threads go idle. Medians over the rounds; the ratio
alternating / alone is what a second model costs each one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SETTINGS = (True, False)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def one_round(calls: list[Callable[[], Any]], times: dict[str, list[list[float]]]) -> None:
    """Alone (each model right after itself), then alternating (right after the other)."""
    for i, call in enumerate(calls):
        call()
        times["alone"][i].append(timed(call))
    for _ in range(2):
        for i, call in enumerate(calls):
            times["alternating"][i].append(timed(call))


def measure(paths: list[Path], args: argparse.Namespace) -> list[dict[str, Any]]:
    from segdeploy.runtime import Segmenter

    h, w = args.size
    segs = {s: [Segmenter.load(p, providers="cpu", threads=args.threads, spinning=s)
                for p in paths] for s in SETTINGS}
    try:
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (h, w, seg.channels), dtype=np.uint8)
                  for seg in segs[True]]
        calls = {s: [lambda seg=seg, im=im: seg.predict(im)
                     for seg, im in zip(segs[s], images, strict=True)] for s in SETTINGS}
        for s in SETTINGS:  # warm-up: arenas, the first runs' allocations
            for call in calls[s] * 2:
                call()
        times = {s: {kind: [[] for _ in paths] for kind in ("alone", "alternating")}
                 for s in SETTINGS}
        for r in range(args.rounds):
            for s in (SETTINGS if r % 2 == 0 else SETTINGS[::-1]):
                time.sleep(args.settle)  # the other setting's spinning threads go idle
                one_round(calls[s], times[s])
    finally:
        for seg in [seg for group in segs.values() for seg in group]:
            seg.close()
    rows = []
    for s in SETTINGS:
        for i, path in enumerate(paths):
            alone = statistics.median(times[s]["alone"][i]) * 1e3
            alternating = statistics.median(times[s]["alternating"][i]) * 1e3
            rows.append({"model": path.name, "spinning": s, "alone_ms": round(alone, 2),
                         "alternating_ms": round(alternating, 2),
                         "ratio": round(alternating / alone, 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("onnx", type=Path, nargs="*", help="two ONNX files [default: reference "
                                                       "unet and fcn8s, random weights]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--size", type=int, nargs=2, default=[197, 233], metavar=("H", "W"))
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds of pause before each setting's turn, so that threads "
                         "still spinning from the other setting do not slow it")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.onnx and len(args.onnx) != 2:
        sys.exit("give two ONNX files (or none)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.onnx:
            paths = list(args.onnx)
        else:
            sys.path.insert(0, str(Path(__file__).parent))
            from runtime_overhead import export_reference

            paths = [export_reference(m, 0.25, 21, Path(tmp)) for m in ("unet", "fcn8s")]
        rows = measure(paths, args)
    report(args, rows)


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    import onnxruntime as ort

    from segdeploy.bench.cpu_features import cpu_extensions

    h, w = args.size
    print(f"Segmenter.predict, {h}x{w} uint8, {args.rounds} interleaved rounds, "
          f"{args.threads} threads; {os.cpu_count()} CPUs ({', '.join(cpu_extensions())}); "
          f"onnxruntime {ort.__version__}")
    print("| model | spinning | alone ms | alternating ms | alternating / alone |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        label = "on (ORT default)" if r["spinning"] else "off (segdeploy default)"
        print(f"| {r['model']} | {label} | {r['alone_ms']} | {r['alternating_ms']} | "
              f"{r['ratio']:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"rounds": args.rounds, "threads": args.threads,
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
