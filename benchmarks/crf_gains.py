"""Dense CRF gains, measured (BENCHMARKS.md "Dense CRF post-processing").

    .venv/bin/python benchmarks/crf_gains.py --models models/ \
        --out benchmarks/results/crf_gains.json

Exported models made by `segdeploy train` + `segdeploy export --no-fp16` (the commands are
in MODELS and the JSON; --train makes the ones models/ lacks): a coarse FCN-32s on brain
(8 epochs), `make demo`'s brain U-Net, and two U-Nets on nuclei (sharp maps).
For each: the validation split's mIoU and boundary F (2 px) without the CRF, with DeepLab
v2's default parameters, and after `segdeploy crf-tune` (run as the CLI does, writing the
card only when mIoU improves, on the whole split and on held-out halves: each half scored
with the parameters tuned on the other); the numpy fallback's agreement
with pydensecrf2 on the model's real probabilities; and the CRF's time per megapixel with
each engine (interleaved, image by image). Run the timing under the exclusive lock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: name -> (dataset, `segdeploy train` arguments); brain_unet is `make demo`'s model
MODELS = {
    "brain_fcn32s": ("brain", ["fcn32s", "--data", "brain", "--width", "0.25", "--epochs", "8",
                               "--image-size", "full", "--seed", "0"]),
    "brain_unet": ("brain", ["unet", "--data", "brain", "--width", "0.25", "--batch-norm",
                             "--epochs", "8", "--image-size", "160", "--seed", "0"]),
    "nuclei_unet": ("nuclei", ["unet", "--data", "nuclei", "--width", "0.25", "--batch-norm",
                               "--epochs", "6", "--image-size", "128", "--seed", "0"]),
    "nuclei_unet_w05": ("nuclei", ["unet", "--data", "nuclei", "--width", "0.5",
                                   "--batch-norm", "--epochs", "20", "--image-size", "128",
                                   "--seed", "0"]),
}


def make_model(name: str, folder: Path) -> Path:
    """models/NAME.onnx, trained and exported with the commands in MODELS if missing."""
    onnx = folder / f"{name}.onnx"
    if onnx.is_file():
        return onnx
    ckpt = folder / f"{name}.pt"
    cli = [sys.executable, "-m", "segdeploy"]
    subprocess.run([*cli, "train", *MODELS[name][1], "-o", str(ckpt), "--no-progress"],
                   check=True)
    subprocess.run([*cli, "export", str(ckpt), "-o", str(onnx), "--no-fp16"], check=True)
    return onnx


def crf_seconds(samples: list[Any], engines: list[str]) -> dict[str, float]:
    """Seconds per megapixel of the default CRF per engine, engines alternating per image."""
    from segdeploy.runtime.crf import CRFParams, dense_crf

    spent = dict.fromkeys(engines, 0.0)
    pixels = 0
    for s in samples:
        pixels += s.target.size
        for engine in engines:
            t0 = time.perf_counter()
            dense_crf(s.probs, s.image, CRFParams(), engine=engine)  # type: ignore[arg-type]
            spent[engine] += time.perf_counter() - t0
    return {e: round(spent[e] / (pixels / 1e6), 3) for e in engines}


def agreement(samples: list[Any]) -> float:
    """Share of pixels where the numpy fallback's masks equal pydensecrf2's (defaults)."""
    from segdeploy.runtime.crf import CRFParams, dense_crf

    same = total = 0
    for s in samples:
        real = dense_crf(s.probs, s.image, CRFParams(), engine="pydensecrf2").argmax(0)
        ours = dense_crf(s.probs, s.image, CRFParams(), engine="numpy").argmax(0)
        same += int((real == ours).sum())
        total += real.size
    return round(same / total, 6)


def measure(name: str, onnx: Path, budget: float, trials: int) -> dict[str, Any]:
    from segdeploy import crf_tuning as ct
    from segdeploy.cli.main import main
    from segdeploy.data import dataset_for_model
    from segdeploy.onnx_metadata import read_onnx_export_info
    from segdeploy.runtime import Segmenter
    from segdeploy.runtime.crf import CRFParams, have_pydensecrf

    data = MODELS[name][0]
    with Segmenter.load(onnx) as seg:
        ds = dataset_for_model(seg.card, data, "val")
        samples = ct.collect(seg, ds, range(len(ds)))
        card = seg.card
    report = onnx.with_suffix(".crf-tune.json")
    try:
        main(["crf-tune", str(onnx), "--data", data, "--time-budget", str(budget),
              "--max-trials", str(trials), "--json", str(report)])
    except SystemExit as exc:
        if exc.code:
            raise
    tuned = json.loads(report.read_text())
    stored = read_onnx_export_info(onnx).card.crf
    return {
        "model": onnx.name, "data": data, "arch": card.arch,
        "output_stride": card.output_stride, "val_images": len(samples),
        "image_size": list(samples[0].target.shape),
        "train_command": "segdeploy train " + " ".join(MODELS[name][1]),
        "without_crf": ct.score(samples, None).to_dict(),
        "crf_defaults": ct.score(samples, CRFParams()).to_dict(),
        "crf_tuned": tuned["with"], "tuned_params": tuned["params"],
        "crf_tuned_held_out": tuned["held_out"],
        "crf_tune": {k: tuned[k] for k in ("helps", "written", "stopped_by", "seconds")}
        | {"trials": len(tuned["trials"])},
        "card_crf_after_tuning": stored,
        "fallback_agreement": agreement(samples) if have_pydensecrf() else None,
    }


def oracle(data: str, budget: float, trials: int) -> dict[str, Any]:
    """A map the CRF cannot improve: the labels themselves as probabilities (0.9 on the true
    class, the rest spread evenly) on the real val images. Tuning must leave it off."""
    from segdeploy import crf_tuning as ct
    from segdeploy.data import get_dataset

    ds = get_dataset(data, "val")
    samples = []
    for image, mask in ds:
        k = ds.num_classes
        probs = np.full((k, *mask.shape), 0.1 / (k - 1), np.float32)
        for c in range(k):
            probs[c][mask == c] = 0.9
        samples.append(ct.Sample(image, probs, mask))
    result = ct.tune_checked(samples, time_budget=budget, max_trials=trials)
    return {"data": data, "val_images": len(samples), "helps": result.helps(0.001),
            "without_crf": result.without.to_dict(), "crf_defaults": result.defaults.to_dict(),
            "crf_tuned": result.best.to_dict(),
            "crf_tuned_held_out": result.held_out.to_dict() if result.held_out else None,
            "trials": len(result.trials)}


def timing(name: str, onnx: Path) -> dict[str, Any]:
    """Seconds per megapixel of the default CRF, each engine, on the model's val images."""
    from segdeploy import crf_tuning as ct
    from segdeploy.data import dataset_for_model
    from segdeploy.runtime import Segmenter
    from segdeploy.runtime.crf import have_pydensecrf

    with Segmenter.load(onnx) as seg:
        ds = dataset_for_model(seg.card, MODELS[name][0], "val")
        samples = ct.collect(seg, ds, range(len(ds)))
    engines = ["pydensecrf2", "numpy"] if have_pydensecrf() else ["numpy"]
    crf_seconds(samples[:2], engines)  # warm-up
    return {"seconds_per_megapixel": crf_seconds(samples, engines),
            "classes": int(samples[0].probs.shape[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, required=True,
                        help="folder holding (or receiving, with --train) the ONNX models")
    parser.add_argument("--train", action="store_true", help="train + export missing models")
    parser.add_argument("--only", choices=sorted(MODELS), action="append")
    parser.add_argument("--time-budget", type=float, default=240.0)
    parser.add_argument("--max-trials", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/crf_gains.json"))
    parser.add_argument("--phase", choices=["gains", "oracle", "timing"], action="append",
                        help="gains (tuning; the shared lock), oracle (the labels as the "
                             "map: tuning must leave the CRF off) and/or timing (run it under "
                             "the exclusive lock) [default: all]; results merge into --out")
    args = parser.parse_args()
    from segdeploy.atomic import write_json_atomic
    from segdeploy.bench.cpu_features import cpu_extensions

    phases = args.phase or ["gains", "oracle", "timing"]
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results = old.get("results", {})
    if "oracle" in phases:
        results["brain_oracle"] = oracle("brain", args.time_budget, args.max_trials)
        print(json.dumps(results["brain_oracle"], indent=1))
    for name in args.only or (MODELS if phases != ["oracle"] else []):
        onnx = make_model(name, args.models) if args.train else args.models / f"{name}.onnx"
        entry = results.get(name, {})
        if "gains" in phases:
            entry.update(measure(name, onnx, args.time_budget, args.max_trials))
        if "timing" in phases:
            entry.update(timing(name, onnx))
        results[name] = entry
        print(json.dumps({name: entry}, indent=1))
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())
    write_json_atomic(args.out, {
        "machine": {"cpu": cpu, "extensions": cpu_extensions(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "numpy": np.__version__},
        "commands": sorted({*old.get("commands", []),
                            "python benchmarks/crf_gains.py " + " ".join(sys.argv[1:])}),
        "boundary_tolerance_px": 2, "results": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
