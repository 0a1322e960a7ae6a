"""Requests/s and p50/p99 latency through Triton (HTTP, gRPC) vs in-process Segmenter.predict,
at several concurrencies (BENCHMARKS.md, "Serving on Triton").

    .venv-serving/bin/python benchmarks/triton_serving.py build/serving/unet_brain.onnx \\
        --images build/serving/brain_val_images.npz --concurrency 1 8 32 --seconds 4 --rounds 2

Runs in the serving venv (tritonclient, nvidia-pytriton). It writes a repository with
`segdeploy triton`'s code (one instance, dynamic batching up to --max-batch), starts a real
tritonserver on 127.0.0.1 and, for each mode and concurrency C, runs C client threads that
each send one real image per request, in turn, for --seconds (after a warm-up); the modes
take turns, --rounds times. In-process: C threads share one Segmenter (ONNX Runtime's
session is thread-safe). Triton: one client per thread. Latency is per request, wall clock,
client side; Triton's own statistics give the mean batch (inferences / executions). Server
and clients share this machine's CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def run_clients(make: Callable[[], Any], images: list[np.ndarray], concurrency: int,
                seconds: float, warmup: float = 1.0) -> list[float]:
    """C threads calling make().predict(image) until the clock runs out: the latencies."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    t_start = [0.0]  # set when every client is connected and warm, before any is released
    barrier = threading.Barrier(concurrency + 1,
                                action=lambda: t_start.__setitem__(0, time.perf_counter()))

    def worker(k: int) -> None:
        seg = make()
        try:
            for im in images[:2]:
                seg.predict(im)
            barrier.wait()
            i = k
            while time.perf_counter() < t_start[0] + warmup + seconds:
                t0 = time.perf_counter()
                seg.predict(images[i % len(images)])
                if t0 >= t_start[0] + warmup:
                    latencies[k].append(time.perf_counter() - t0)
                i += 1
        finally:
            if hasattr(seg, "url"):
                seg.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    for t in threads:
        t.join()
    return [x for lat in latencies for x in lat]


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    flat = sorted(latencies)
    return {"requests": len(flat), "rps": len(flat) / seconds,
            "p50_ms": 1e3 * statistics.median(flat),
            "p99_ms": 1e3 * flat[min(len(flat) - 1, int(0.99 * len(flat)))]}


def triton_counts(address: str, model: str) -> tuple[int, int]:
    import tritonclient.http as http

    with http.InferenceServerClient(address) as client:
        s = client.get_inference_statistics(model)["model_stats"][0]
    return int(s["inference_count"]), int(s["execution_count"])


def measure(modes: dict[str, Callable[[], Any]], images: list[np.ndarray], c: int,
            args: argparse.Namespace, address: str) -> list[dict[str, Any]]:
    """--rounds rounds of every mode in rotating order (a load change on the shared machine
    then hits every mode alike); latencies pooled over the rounds."""
    pooled: dict[str, list[float]] = {m: [] for m in modes}
    counts = {m: [0, 0] for m in modes}
    names = list(modes)
    for r in range(args.rounds):
        for mode in names[r % len(names):] + names[:r % len(names)]:
            before = triton_counts(address, "seg")
            pooled[mode] += run_clients(modes[mode], images, c, args.seconds)
            after = triton_counts(address, "seg")
            counts[mode][0] += after[0] - before[0]
            counts[mode][1] += after[1] - before[1]
    rows = []
    for mode in names:
        row = {"mode": mode, "concurrency": c,
               **summary(pooled[mode], args.seconds * args.rounds)}
        if mode != "in-process" and counts[mode][1]:
            row["mean_batch"] = counts[mode][0] / counts[mode][1]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help=".onnx written by segdeploy export / quantize")
    p.add_argument("--images", required=True, help=".npz of HxWxC uint8 images")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--seconds", type=float, default=4.0, help="per mode and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--json", help="write the results here too")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    from segdeploy.bench.cpu_features import cpu_extensions
    from segdeploy.bench.environment import cpu_model
    from segdeploy.runtime import Segmenter
    from segdeploy.serving.local_server import LocalTriton
    from segdeploy.serving.triton_repo import RepoOptions, write_repository

    args = parse_args(argv)
    with np.load(args.images) as z:
        images = [z[k] for k in z.files]
    work = Path(tempfile.mkdtemp(prefix="triton-bench-"))
    write_repository(args.model, work / "repo", RepoOptions(name="seg", max_batch=args.max_batch))
    local = Segmenter.load(args.model)
    rows: list[dict[str, Any]] = []
    with LocalTriton(work / "repo", work / "server") as server:
        modes = {"in-process": lambda: local,
                 "triton-http": lambda: Segmenter.load(f"triton://{server.http_address}/seg"),
                 "triton-grpc": lambda: Segmenter.load(f"grpc://{server.grpc_address}/seg")}
        for c in args.concurrency:
            rows += measure(modes, images, c, args, server.http_address)
    local.close()
    size = "x".join(str(d) for d in images[0].shape)
    result = {"cpu": cpu_model(), "extensions": cpu_extensions(), "cores": os.cpu_count(),
              "model": str(args.model), "image": size, "images": len(images), "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


def markdown(result: dict[str, Any]) -> str:
    lines = ["| mode | concurrency | requests/s | p50 ms | p99 ms | mean batch |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        batch = f"{r['mean_batch']:.1f}" if "mean_batch" in r else "-"
        lines.append(f"| {r['mode']} | {r['concurrency']} | {r['rps']:.1f} | {r['p50_ms']:.1f} "
                     f"| {r['p99_ms']:.1f} | {batch} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
