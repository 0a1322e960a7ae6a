"""Images/s of `segdeploy.scale.predict_on_ray` (a local Ray cluster) with 1 and 2 actors.

    .venv/bin/python -m tests.scale.make_model .scale-model        # 400 real MRI crops (torch)
    .venv/bin/python benchmarks/streams.py --export-only fcn.onnx  # or any .onnx
    flock /tmp/segdeploy-bench.lock .venv-scale/bin/python benchmarks/ray_scale.py \\
        --model fcn.onnx --images .scale-model/images --json out.json

Runs in the Ray venv (`make scale-venv`). Each run writes into a fresh folder (nothing to
resume), rounds alternate the order of the two pool sizes; images/s counts the masks written
over the wall time of predict_on_ray, cluster start and shutdown included, as a user sees it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from segdeploy.scale import predict_on_ray

    results: dict[str, list[float]] = {"1 actor": [], "2 actors": []}
    plans = {}
    for r in range(args.repeats):
        order = [1, 2] if r % 2 == 0 else [2, 1]
        for actors in order:
            out = Path(tempfile.mkdtemp(prefix="ray-bench-"))
            t0 = time.perf_counter()
            report = predict_on_ray(args.model, [args.images], out, actors=actors)
            wall = time.perf_counter() - t0
            shutil.rmtree(out)
            key = f"{actors} actor{'s' * (actors > 1)}"
            results[key].append(report.written / wall)
            plans[key] = {"num_cpus": report.plan.num_cpus, "threads": report.plan.threads,
                          "images": report.written, "failures": len(report.failures)}
            print(key, round(report.written / wall, 1), "images/s", flush=True)
    summary = {k: {"images_per_s": round(statistics.median(v), 1), **plans[k]}
               for k, v in results.items()}
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
