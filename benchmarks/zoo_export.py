"""Export time and parity of third-party zoo models (random weights): the BENCHMARKS.md
"Bring your own model" table. Needs the zoo venv (`make zoo-venv`):

    .venv-zoo/bin/python benchmarks/zoo_export.py [--json zoo.json] [NAME ...]

smp models are traced to TorchScript (`strict=False`), torchvision models saved as `.pt2`
with Dim.AUTO dims; each is exported by `run_export` exactly as `segdeploy export --trust-code`
does, then checked against eager PyTorch at a valid odd size through Segmenter.logits.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "zoo"))


def measure(z, folder: Path) -> dict:
    from test_zoo_export import _eager, _save
    from zoo_models import SMP

    from segdeploy.export.pipeline import ExportOptions, run_export
    from segdeploy.export.sources import SourceFacts
    from segdeploy.runtime import Segmenter

    model = z.build()
    fmt = "ts" if z in SMP else "pt2"
    t0 = time.perf_counter()
    src = _save(z, model, folder, fmt)
    save_s = time.perf_counter() - t0
    result = run_export(src, ExportOptions(trust_code=True, fp16=False, max_side=0,
                                           check_sizes=["2x3x97x131", "1x3x197x233"],
                                           facts=SourceFacts(**z.options)))
    card = result.info.card
    with Segmenter.load(result.onnx_path) as seg:
        if seg.static_size:
            h, w = seg.static_size
        else:
            m = card.size_multiple
            h, w = (3 * m, 5 * m) if m > 1 else (97, 131)
        x = np.random.default_rng(1).standard_normal((1, 3, h, w)).astype(np.float32)
        ref, got = _eager(model, x), seg.logits(x)
    rows = [r for r in result.parity.rows if r.output == "logits"]
    return {"name": z.name, "encoder": z.encoder, "source": fmt,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "save_s": save_s, "export_s": result.timings["export_fp32"],
            "total_s": result.timings["total"], "size_multiple": card.size_multiple,
            "static_size": list(seg.static_size) if seg.static_size else None,
            "checked": sorted({r.inputs for r in rows}),
            "max_abs": max(r.max_abs or 0.0 for r in rows),
            "min_agreement": min(r.argmax_agreement for r in rows),
            "eager_size": [h, w], "eager_max_abs": float(np.max(np.abs(ref - got))),
            "eager_scale": max(1.0, float(np.max(np.abs(ref)))),
            "eager_agreement": float((ref.argmax(1) == got.argmax(1)).mean())}


def markdown(rows: list[dict]) -> str:
    lines = ["| model | encoder | source | size rule | export s | total s | checked sizes | "
             "max abs err (/ max(1,|logit|)) | argmax agreement |",
             "|---|---|---|---|---:|---:|---|---:|---:|"]
    for r in rows:
        rule = (f"static {r['static_size'][0]}x{r['static_size'][1]}" if r["static_size"]
                else f"multiple of {r['size_multiple']}" if r["size_multiple"] > 1 else "any")
        sizes = ", ".join(r["checked"]) + f", {r['eager_size'][0]}x{r['eager_size'][1]} (eager)"
        err = max(r["max_abs"], r["eager_max_abs"])
        lines.append(f"| {r['name']} | {r['encoder']} | .{r['source']} | {rule} | "
                     f"{r['export_s']:.1f} | {r['total_s']:.1f} | {sizes} | "
                     f"{err:.1e} ({err / r['eager_scale']:.1e}) | "
                     f"{100 * min(r['min_agreement'], r['eager_agreement']):.3f} % |")
    return "\n".join(lines)


def main() -> None:
    from zoo_models import ALL

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for z in ALL:
            if args.names and z.name not in args.names:
                continue
            try:
                rows.append(measure(z, Path(tmp)))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            except Exception as exc:  # report and go on: the table says which failed
                print(f"{z.name}: FAILED {type(exc).__name__}: {str(exc)[:300]}",
                      file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
