"""What backend="auto" picks for INT8 files of each QDQ flavour, and why.

    .venv/bin/python benchmarks/auto_backend.py unet.onnx fcn_resnet18.onnx

For each FP32 ONNX file (segdeploy metadata needed), ONNX Runtime's quantize_static (QDQ,
per channel) writes MODEL.U8S8.onnx, MODEL.S8S8.onnx and MODEL.U8U8.onnx beside it,
calibrated on 16 brain training slices (1-channel models) or 16 smooth probe images; then
each file is loaded with Segmenter.load(backend="auto") and the table says the flavour read
from its bytes, the backend chosen, OpenVINO's agreement with ONNX Runtime on the probe
images where it was tried, the load time and the notice. Time the files with
`segdeploy bench -e MODEL.onnx -e MODEL.U8S8.onnx -b onnxruntime -b openvino -b segmenter`.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

#: activation and weight types (onnxruntime.quantization.QuantType names) per flavour
FLAVOURS = {"U8S8": ("QUInt8", "QInt8"), "S8S8": ("QInt8", "QInt8"),
            "U8U8": ("QUInt8", "QUInt8")}


def calibration_feeds(src: Path) -> list[dict[str, np.ndarray]]:
    from segdeploy.imaging import normalize
    from segdeploy.onnx_metadata import read_onnx_export_info
    from segdeploy.runtime.int8_crosscheck import probe_images

    card = read_onnx_export_info(src).card
    if card.in_channels == 1:
        from segdeploy.data import get_dataset

        ds = get_dataset("brain", "train", channel_mode=card.channel_mode)
        images = [ds[i][0] for i in range(0, len(ds), max(1, len(ds) // 16))]
    else:
        images = probe_images(256, 256, card.in_channels, n=16, seed=1)
    return [{"input": normalize(im, card.mean, card.std)[None]} for im in images]


def quantize(src: Path, flavour: str, feeds: list[dict[str, np.ndarray]]) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    data = iter(feeds)

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(data, None)

    act, weight = FLAVOURS[flavour]
    dst = src.with_suffix(f".{flavour}.onnx")
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=getattr(QuantType, act),
                    weight_type=getattr(QuantType, weight))
    return dst


def auto_row(path: Path, threads: int) -> dict[str, Any]:
    from segdeploy.runtime import Segmenter
    from segdeploy.runtime.qdq_types import qdq_types

    notes: list[str] = []
    t0 = time.perf_counter()
    with Segmenter.load(path, backend="auto", threads=threads, notify=notes.append) as seg:
        seconds = time.perf_counter() - t0
        types = qdq_types(path)
        agreement = (None if seg.int8_agreement is None
                     else round(100 * seg.int8_agreement, 2))
        return {"file": path.name, "flavour": types.label if types else "float",
                "backend": seg.runner.name, "openvino_agreement_pct": agreement,
                "load_s": round(seconds, 2), "note": notes[0] if notes else ""}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("onnx", type=Path, nargs="+", help="FP32 ONNX files with metadata")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows = []
    for src in args.onnx:
        feeds = calibration_feeds(src)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            files = [src, *(quantize(src, f, feeds) for f in FLAVOURS)]
        rows.extend(auto_row(p, args.threads) for p in files)
    print("| file | flavour | auto runs it on | OpenVINO vs ONNX Runtime (probe images) | "
          "load s | notice |")
    print("|---|---|---|---:|---:|---|")
    for r in rows:
        agree = "-" if r["openvino_agreement_pct"] is None else f"{r['openvino_agreement_pct']} %"
        print(f"| {r['file']} | {r['flavour']} | {r['backend']} | {agree} | {r['load_s']} | "
              f"{r['note']} |")


if __name__ == "__main__":
    main()
