"""Wall time of `segdeploy quantize` before / after calibrate-once, against its floor.

    flock -x /tmp/segdeploy-bench.lock python benchmarks/quantize_time.py MODEL.onnx \\
        --before-root /path/to/old/checkout

Runs the command of both checkouts on one model (same data, threads), then times one
calibration pass (ONNX Runtime's calibrator over the calibration images) and one validation
pass (ONNX Runtime FP32 masks of the validation images): the issue's target is quantize <=
2 x (calibration + validation). Writes benchmarks/results/quantize_time.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(root: Path, model: Path, out: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(root)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "segdeploy", "quantize", str(model), "-o", str(out),
                    *args], cwd=root, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def floor_passes(model: Path, data: str, calib_n: int, val_n: int, threads: int) -> dict:
    """Seconds of one calibration pass and one FP32 validation pass."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    from segdeploy.export.int8_gate import (
        CalibrationFeeds,
        common_crops,
        load_split,
        model_feed,
        predict_masks,
    )
    from segdeploy.export.quantize import read_info

    info, dtype = read_info(model)
    calib = load_split(data, info, "train", calib_n)
    crops, _ = common_crops([im for im, _ in calib], info)
    feeds = CalibrationFeeds(info.input_name, [model_feed(im, info, dtype) for im in crops])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cal = create_calibrator(model, augmented_model_path=str(Path(tmp) / "aug.onnx"),
                                calibrate_method=CalibrationMethod.Percentile,
                                extra_options={"percentile": 99.999})
        cal.collect_data(feeds)
        cal.compute_data()
        calibration = time.perf_counter() - t0
    val = load_split(data, info, "val", val_n)
    t0 = time.perf_counter()
    predict_masks(model, [im for im, _ in val], threads=threads)
    return {"calibration_pass_s": calibration, "validation_pass_s": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("--before-root", type=Path, required=True, help="checkout of the old code")
    p.add_argument("--data", default="brain")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/quantize_time.json")
    a = p.parse_args()
    from segdeploy.machine import cpu_model

    base = ["--data", a.data, "--threads", str(a.threads)]
    # the default gate, and a strict one every-layer INT8 fails (the float fallback runs)
    gates = {"default gate": [], "strict gate (99.8 %, 0.3 mIoU)": [
        "--min-agreement", "99.8", "--max-miou-drop", "0.3"]}
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in gates.items():
            before = run_cli(a.before_root, a.model, Path(tmp) / "before.onnx", [*base, *extra])
            after = run_cli(ROOT, a.model, Path(tmp) / "after.onnx",
                            [*base, *extra, "--allow-slower"])
            runs[name] = {"before_s": before, "after_s": after}
    floor = floor_passes(a.model, a.data, 32, 16, a.threads)
    floor_s = floor["calibration_pass_s"] + floor["validation_pass_s"]
    for r in runs.values():
        r["after_vs_floor"] = r["after_s"] / floor_s
    result = {"model": str(a.model), "runs": runs, **floor, "target_vs_floor": 2.0,
              "cpu": cpu_model()}
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
