"""Regenerate every published benchmark table in one command.

    .venv/bin/python benchmarks/run_all.py                  # small widths: ~10 min on 2 cores
    .venv/bin/python benchmarks/run_all.py --full-width     # the real models (slow on a CPU)
    .venv/bin/python benchmarks/run_all.py --update BENCHMARKS.md

For each reference model (random weights, or trained ones from --checkpoints DIR) at 2-3
sizes: export (FP32 + mixed FP16 ONNX, timed), TensorRT FP32/FP16 builds where TensorRT and a
GPU exist, PyTorch eager vs ONNX Runtime FP32/FP16 vs Segmenter end to end (vs TensorRT)
latency and throughput, achieved GFLOP/s against numpy's sgemm peak, and `segdeploy verify`
parity. Writes benchmarks/results/<arch>.json, summary.json and BENCHMARKS.generated.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_markdown

HERE = Path(__file__).resolve().parent
MODELS = ("fcn32s", "fcn16s", "fcn8s", "fcn_resnet18", "unet", "unet_valid")
DEFAULT_SIZES = "197x233,256x256,384x384"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated architectures")
    p.add_argument("--width", type=float, default=0.25, help="channel width multiplier")
    p.add_argument("--full-width", action="store_true", help="width 1.0 (the real models)")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="HxW inputs, batch 1")
    p.add_argument("--seconds", type=float, default=1.0,
                   help="measured seconds per backend and size (at least 10 iterations)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="CPU threads [default: all]")
    p.add_argument("--data", default="brain", help="dataset for parity (verify)")
    p.add_argument("--verify-images", type=int, default=4)
    p.add_argument("--checkpoints", type=Path, default=None,
                   help="folder with trained ARCH.pt checkpoints to use instead of random weights")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--update", type=Path, default=None,
                   help="also write the tables into this markdown file between markers")
    p.add_argument("--no-tensorrt", action="store_true", help="skip TensorRT even if present")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (17: legacy exporter)")
    args = p.parse_args(argv)
    if args.full_width:
        args.width = 1.0
    return args


def tensorrt_ready() -> bool:
    """TensorRT importable and a CUDA device visible (the only place plans can be built)."""
    try:
        import tensorrt  # noqa: F401

        from segdeploy.runtime import cuda_memory

        return cuda_memory.device_count() > 0
    except Exception:  # noqa: BLE001 - any failure means "no TensorRT here"
        return False


def make_checkpoint(arch: str, width: float, work: Path, trained: Path | None) -> tuple[Path, int]:
    """A checkpoint to benchmark: the trained one if given, else seeded random weights."""
    import torch

    from segdeploy.data import get_dataset
    from segdeploy.reference_models import get_model
    from segdeploy.reference_models.checkpoint import card_from_model, load_model, save_checkpoint

    if trained is not None and (trained / f"{arch}.pt").is_file():
        model, _ = load_model(trained / f"{arch}.pt")
        return trained / f"{arch}.pt", sum(p.numel() for p in model.parameters())
    ds = get_dataset("brain", split="val")
    torch.manual_seed(0)
    model = get_model(arch, num_classes=ds.num_classes, width=width, in_channels=ds.in_channels)
    card = card_from_model(model, classes=list(ds.classes), mean=list(ds.mean),
                           std=list(ds.std), channel_mode=ds.channel_mode, train_size=[197, 233],
                           trained_on={"name": "brain", "split": "train", "images": 0})
    path = save_checkpoint(work / f"{arch}.pt", model, card)
    return path, sum(p.numel() for p in model.parameters())


def build_plans(fp32: Path, fp16: Path, sizes: list[tuple[int, int]], channels: int,
                min_size: int) -> tuple[dict[str, Path], dict[str, float]]:
    from segdeploy.engine.engine_build import BuildRequest, build_engine
    from segdeploy.engine.profiles import parse_profile

    lo = max(min_size, 32)
    hi_h, hi_w = max(h for h, _ in sizes), max(w for _, w in sizes)
    opt_h, opt_w = sizes[0]
    profile = parse_profile(f"min=1x{channels}x{lo}x{lo},opt=1x{channels}x{opt_h}x{opt_w},"
                            f"max=1x{channels}x{hi_h}x{hi_w}")
    plans, seconds = {}, {}
    for precision, onnx_path in (("fp32", fp32), ("fp16", fp16)):
        t0 = time.perf_counter()
        plan = onnx_path.with_name(f"{onnx_path.name.split('.')[0]}.{precision}.plan")
        build_engine(BuildRequest(onnx_path, output=plan, precision=precision,
                                  profiles=[profile], show_progress=False))
        seconds[precision] = round(time.perf_counter() - t0, 2)
        plans[precision] = plan
    return plans, seconds


def bench_model(arch: str, args: argparse.Namespace, work: Path, use_trt: bool) -> dict[str, Any]:
    from segdeploy.bench.backends import OnnxRuntimeBackend, PyTorchBackend, SegmenterBackend
    from segdeploy.bench.flops import achieved_gflops, count_flops_file
    from segdeploy.bench.harness import run_bench
    from segdeploy.export import ExportOptions, run_export
    from segdeploy.verify.compare import fit_size, run_verify

    ckpt, params = make_checkpoint(arch, args.width, work, args.checkpoints)
    t0 = time.perf_counter()
    exported = run_export(ckpt, ExportOptions(output=str(work / f"{arch}.onnx"), opset=args.opset,
                                              check_sizes=["1x1x97x131"], fp16_images=4,
                                              data=args.data))
    export_s = time.perf_counter() - t0
    card = exported.info.card
    sizes = [fit_size(s, card) for s in args.size_list]
    backends: list[Any] = [
        PyTorchBackend(ckpt, threads=args.threads),
        OnnxRuntimeBackend(exported.onnx_path, threads=args.threads),
        OnnxRuntimeBackend(exported.fp16_path, threads=args.threads),
        SegmenterBackend(exported.onnx_path, threads=args.threads)]
    engines = [exported.onnx_path, exported.fp16_path]
    builds: dict[str, float] = {}
    if use_trt:
        from segdeploy.bench.tensorrt import TensorRTBackend

        plans, builds = build_plans(exported.onnx_path, exported.fp16_path, sizes,
                                    card.in_channels, card.min_size)
        backends += [TensorRTBackend(plans["fp32"], cuda_graph=True),
                     TensorRTBackend(plans["fp16"], cuda_graph=True),
                     SegmenterBackend(plans["fp16"])]
        engines += [plans["fp32"], plans["fp16"]]
    shapes = [(1, card.in_channels, h, w) for h, w in sizes]
    report = run_bench(backends, shapes, warmup=args.warmup, duration=args.seconds,
                       min_iterations=10, threads=args.threads, progress=True,
                       skip_failures=True)
    flops = {s: count_flops_file(str(exported.onnx_path), {"input": list(s)}) for s in shapes}
    rows = []
    for r in report.results:
        row = r.to_dict(with_samples=False)
        f = flops[r.shape]
        if not f.unresolved:
            row["gflop"] = f.gflops
            row["achieved_gflops"] = achieved_gflops(f.total, r.stats.mean_ms)
        rows.append(row)
    verify_sizes = list(dict.fromkeys([fit_size((97, 131), card), sizes[0]]))
    verify = [run_verify(ckpt, e, data=args.data, sizes=verify_sizes,
                         max_images=args.verify_images, threads=args.threads, progress=False)
              for e in engines]
    return {"arch": arch, "parameters": params, "width": args.width,
            "export": {"seconds": round(export_s, 2), "timings": exported.timings,
                       "parity_passed": exported.parity.passed},
            "builds": builds, "bench": rows, "skipped": report.skipped,
            "flops": {"x".join(map(str, s)): f.to_dict() for s, f in flops.items()},
            "verify": verify}


def _plain(obj: Any) -> Any:
    """JSON-safe copy (Paths and other objects as strings)."""
    return json.loads(json.dumps(obj, default=str))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from segdeploy.atomic import write_bytes_atomic, write_json_atomic
    from segdeploy.bench.environment import collect_environment
    from segdeploy.bench.flops import sgemm_peak_gflops
    from segdeploy.verify.parity import parse_sizes

    args.size_list = parse_sizes(args.sizes)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    use_trt = not args.no_tensorrt and tensorrt_ready()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    # best of several tries, before and after the models: a busy machine only lowers it
    peak = max(sgemm_peak_gflops(1024, 10), sgemm_peak_gflops(2048, 3))
    results = []
    with tempfile.TemporaryDirectory(prefix="segdeploy-bench-") as tmp:
        for arch in models:
            print(f"== {arch} (width {args.width})", file=sys.stderr, flush=True)
            result = bench_model(arch, args, Path(tmp), use_trt)
            write_json_atomic(args.out / f"{arch}.json", _plain(result))
            results.append(result)
    peak = max(peak, sgemm_peak_gflops(1024, 10), sgemm_peak_gflops(2048, 3))
    seconds = time.perf_counter() - start
    command = "python benchmarks/run_all.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    summary = {
        "environment": collect_environment(args.threads), "sgemm_peak_gflops": peak,
        "settings": {"models": models, "width": args.width, "sizes": args.sizes,
                     "seconds_per_case": args.seconds, "threads": args.threads,
                     "tensorrt": use_trt, "data": args.data,
                     "verify_images": args.verify_images, "seconds": seconds,
                     "weights": "trained" if args.checkpoints else "random",
                     "command": command},
        "models": results}
    write_json_atomic(args.out / "summary.json", _plain(summary))
    markdown = bench_markdown.render(summary)
    write_bytes_atomic(args.out / "BENCHMARKS.generated.md", markdown.encode())
    if args.update:
        bench_markdown.update_file(args.update, markdown)
    print(markdown)
    print(f"done in {seconds:.0f} s; results in {args.out}", file=sys.stderr)
    return 0 if math.isfinite(peak) else 1


if __name__ == "__main__":
    sys.exit(main())
