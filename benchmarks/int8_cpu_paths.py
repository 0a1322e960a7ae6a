"""The CPU paths of one or more FP32 ONNX models: ONNX Runtime FP32 / INT8, OpenVINO FP32 /
BF16 / INT8, each with agreement, the FP32 noise floor, mIoU, its gate and its speed.

    flock -x /tmp/segdeploy-bench.lock python benchmarks/int8_cpu_paths.py \\
        unet_brain.onnx fcn8s.onnx --data brain --threads 2

Each model is quantized with `segdeploy quantize` (its own gate, speed check and float
layers recorded; the file is written even when slower, and says so). Every path then predicts
the validation images at their own size and at x2 (Segmenter, the same padding and argmax
for all); agreement is against ONNX Runtime FP32, the noise floor is ONNX Runtime FP32 with
itself under +-1 grey level of input noise. Speed: one input per size, every path once per
round in a rotating order, medians, ratio to ONNX Runtime FP32. Writes
benchmarks/results/int8_cpu_paths.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segdeploy.bench.cpu_features import cpu_class, cpu_extensions  # noqa: E402
from segdeploy.bench.environment import cpu_model  # noqa: E402
from segdeploy.comparison import Thresholds  # noqa: E402
from segdeploy.errors import SegdeployError  # noqa: E402
from segdeploy.export.int8_gate import judge, load_split, model_feed  # noqa: E402
from segdeploy.export.noise_gate import SizedGate  # noqa: E402
from segdeploy.export.quantize import QuantizeOptions, quantize_model, read_info  # noqa: E402

#: (label, file key, backend, load options, gate precision)
#: OpenVINO's load-time INT8 cross-check is off: its figures are measured here on real images
PATHS = (("ONNX Runtime FP32", "fp32", "onnxruntime", {"spinning": False}, "fp32"),
         ("ONNX Runtime INT8", "int8", "onnxruntime", {"spinning": False}, "int8"),
         ("OpenVINO FP32", "fp32", "openvino", {"precision": "fp32"}, "fp32"),
         ("OpenVINO BF16", "fp32", "openvino", {"precision": "bf16"}, "bf16"),
         ("OpenVINO INT8 (QDQ file)", "int8", "openvino",
          {"precision": "auto", "crosscheck": False}, "int8"))


def quantize(fp32: Path, data: str, threads: int) -> tuple[Path | None, dict[str, Any]]:
    out = fp32.with_name(fp32.name.removesuffix(".onnx") + ".int8.onnx")
    t0 = time.perf_counter()
    try:
        r = quantize_model(fp32, QuantizeOptions(data=data, output=out, threads=threads,
                                                 allow_slower=True))
    except SegdeployError as exc:
        return None, {"error": str(exc), "seconds": time.perf_counter() - t0}
    return out, {"seconds": r.seconds, "phases": r.phases, "fp32_nodes": r.fp32_nodes,
                 "float_flops_share": {n: r.costs.get(n) for n in r.fp32_nodes},
                 "sensitivity": {n: r.sensitivity.get(n) for n in r.fp32_nodes},
                 "checks": [c.to_dict() for c in r.checks], "decided_by": r.decided_by,
                 "speed": r.speed.to_dict() if r.speed else None, "notes": r.notes}


def parity(gate: SizedGate, seg: Any, precision: str) -> list[dict[str, Any]]:
    """Agreement, floor, mIoU and gate of one loaded path at every gate size."""
    fixed = Thresholds.for_precision(precision)
    rows = []
    for s in gate.scales:
        masks = [seg.predict(im) for im, _ in gate.sets[s]]
        r = judge(gate.reference[s], masks, gate.labels(s), gate.k)
        floor = gate.floor[s]
        limit = min(fixed.min_agreement, floor) if precision == "int8" else fixed.min_agreement
        ok = r.passes(limit, fixed.max_miou_drop)
        rows.append({"size": gate.size_label(s), **r.to_dict(), "noise_floor": floor,
                     "limit": limit, "passes": ok})
    return rows


def speeds(segs: dict[str, Any], feeds: dict[str, Any], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in segs}
    keys = list(segs)
    for seg in segs.values():
        seg.logits(next(iter(feeds.values())))
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t0 = time.perf_counter()
            segs[k].logits(feeds[k])
            times[k].append(1e3 * (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in times.items()}


def bench_model(fp32: Path, data: str, threads: int, rounds: int) -> dict[str, Any]:
    from segdeploy.runtime import Segmenter

    int8, qinfo = quantize(fp32, data, threads)
    info, dtype = read_info(fp32)
    val = load_split(data, info, "val", 16)
    gate = SizedGate(fp32, val, info.card.num_classes, Thresholds.for_precision("int8"),
                     threads=threads)
    files = {"fp32": fp32, "int8": int8}
    rows: dict[str, Any] = {}
    segs = {}
    for label, key, backend, opts, precision in PATHS:
        if files[key] is None:
            continue
        rows[label] = {"file": files[key].name, "backend": backend, "options": opts,
                       "gate_precision": precision}
        try:
            seg = Segmenter.load(files[key], backend=backend, threads=threads, **opts)
            rows[label]["parity"] = parity(gate, seg, precision)
            segs[label] = seg
        except SegdeployError as exc:
            rows[label]["error"] = str(exc)
    for s in gate.scales:
        image = gate.sets[s][0][0]
        feed = model_feed(image, info, dtype)
        ms = speeds(segs, dict.fromkeys(segs, feed), rounds)
        base = ms["ONNX Runtime FP32"]
        for label, v in ms.items():
            rows[label].setdefault("speed", []).append(
                {"shape": list(feed.shape), "median_ms": v, "vs_ort_fp32": base / v})
    for seg in segs.values():
        seg.close()
    return {"model": fp32.name, "quantize": qinfo, "paths": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--data", default="brain")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/int8_cpu_paths.json")
    a = p.parse_args()
    ext = cpu_extensions()
    result = {"cpu": cpu_model(), "extensions": ext, "cpu_class": cpu_class(ext),
              "threads": a.threads, "date": time.strftime("%Y-%m-%d"),
              "models": [bench_model(m, a.data, a.threads, a.rounds) for m in a.models]}
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
