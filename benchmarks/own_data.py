"""Stride-aligned inference and volume Dice, measured on trained models (BENCHMARKS.md).

    .venv/bin/python benchmarks/own_data.py --out benchmarks/results/own_data.json
    .venv/bin/python benchmarks/own_data.py --epochs 4 --models unet:brain   # quick look
    .venv/bin/python benchmarks/own_data.py --keep models/ --reuse   # score kept models

For each model:dataset pair a small model is trained with `segdeploy train` settings
(width 0.25, batch norm for the U-Net, 160x160 crops on brain / 128x128 on nuclei, seed 0),
exported to ONNX (FP32) and scored on the validation split with `Segmenter.predict`,
twice: padding each image by reflection to a multiple of the model's output stride and
cropping back (the default), and padding only to what the model requires
(`pad_to_stride=False`, the old behaviour); at the images' own size, and cropped by 7 rows
and 11 columns (odd sizes). The brain U-Net then segments the whole MNI152 T1 volume
through `segdeploy predict scan.nii.gz -o labels.nii.gz`; per-class Dice against the
tissue labels is reported over all voxels and over the validation slabs only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODELS = ("unet:brain", "fcn8s:brain", "unet:nuclei", "fcn8s:nuclei")


def train_export(arch: str, data: str, epochs: int, folder: Path, width: float = 0.25,
                 reuse: bool = False) -> tuple[Path, float | None]:
    from segdeploy.export import ExportOptions, run_export
    from segdeploy.training import TrainConfig, train

    ckpt = folder / f"{arch}_{data}.pt"
    if reuse and (folder / f"{arch}_{data}.onnx").is_file():
        return folder / f"{arch}_{data}.onnx", None
    t0 = time.perf_counter()
    train(TrainConfig(arch=arch, data=data, width=width, epochs=epochs,
                      batch_norm=True if arch.startswith("unet") else None,
                      image_size=(160, 160) if data == "brain" else (128, 128), seed=0,
                      device="cpu", output=str(ckpt), progress=False, verbose=False))
    seconds = time.perf_counter() - t0
    onnx = run_export(ckpt, ExportOptions(output=str(folder / f"{arch}_{data}.onnx"),
                                          opset=17, fp16=False, trt_check=False,
                                          check_sizes=["1x1x97x131"])).onnx_path
    return onnx, seconds


#: the odd-size variant crops this many rows / columns off the bottom / right of each image
ODD_CROP = (7, 11)


def val_miou(onnx: Path, data: str, pad_to_stride: bool, *, odd: bool = False
             ) -> dict[str, Any]:
    """Val mIoU with Segmenter.predict; `odd` crops every image to an unaligned size first
    (nuclei's 128x128 tiles are already multiples of both strides)."""
    from segdeploy.data import get_dataset
    from segdeploy.metrics import ConfusionMatrix
    from segdeploy.runtime import Segmenter

    with Segmenter.load(onnx, pad_to_stride=pad_to_stride) as seg:
        ds = get_dataset(data, "val", channel_mode=seg.card.channel_mode)
        cm = ConfusionMatrix(seg.num_classes)
        size = None
        for image, mask in ds:
            if odd:
                h, w = mask.shape
                image, mask = image[:h - ODD_CROP[0], :w - ODD_CROP[1]], \
                    mask[:h - ODD_CROP[0], :w - ODD_CROP[1]]
            size = list(mask.shape)
            cm.update(seg.predict(image), mask)
        m = cm.compute()
        return {"mean_iou": m["mean_iou"], "iou": m["iou"], "images": len(ds),
                "stride": seg.card.output_stride, "image_size": size}


def volume_dice(onnx: Path, folder: Path) -> dict[str, Any]:
    import nibabel as nib

    from segdeploy.cli.main import main
    from segdeploy.data import brain
    from segdeploy.volumes import volume_dice as dice

    out = folder / "labels.nii.gz"
    t1 = brain.template_files()["t1"]
    t0 = time.perf_counter()
    try:
        main(["predict", "-e", str(onnx), str(t1), "-o", str(out)])
    except SystemExit as exc:
        if exc.code:
            raise
    seconds = time.perf_counter() - t0
    labels = np.asarray(nib.load(str(out)).dataobj)
    truth = brain.tissue_labels()
    val_z = np.nonzero(brain.split_of(np.arange(truth.shape[2])) == "val")[0]
    return {"command": f"segdeploy predict -e {onnx.name} {t1.name} -o labels.nii.gz",
            "seconds": round(seconds, 2), "shape": list(labels.shape),
            "dice_all": dice(labels, truth, 3),
            "dice_val_slabs": dice(labels[:, :, val_z], truth[:, :, val_z], 3)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                    help="ARCH:DATA pairs (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    ap.add_argument("--keep", type=Path, default=None, help="keep the models in this folder")
    ap.add_argument("--reuse", action="store_true",
                    help="score the ONNX files already in --keep instead of training")
    args = ap.parse_args(argv)
    import torch

    folder = args.keep or Path(tempfile.mkdtemp(prefix="segdeploy-own-data-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    volume = None
    for pair in args.models:
        arch, data = pair.split(":")
        onnx, seconds = train_export(arch, data, args.epochs, folder, args.width, args.reuse)
        for odd in (False, True):
            on, off = val_miou(onnx, data, True, odd=odd), val_miou(onnx, data, False, odd=odd)
            rows.append({"arch": arch, "data": data, "epochs": args.epochs, "odd_crop": odd,
                         "train_seconds": None if seconds is None else round(seconds, 1),
                         "stride_padded": on, "unpadded": off,
                         "delta": on["mean_iou"] - off["mean_iou"]})
            print(f"{arch} on {data} {'x'.join(map(str, on['image_size']))}: val mIoU "
                  f"{off['mean_iou']:.4f} unpadded -> {on['mean_iou']:.4f} stride-padded "
                  f"(stride {on['stride']}), {rows[-1]['delta']:+.4f}", flush=True)
        if (arch, data) == ("unet", "brain"):
            volume = volume_dice(onnx, folder)
            print("MNI152 volume Dice (bg, grey, white):",
                  ", ".join(f"{d:.4f}" for d in volume["dice_all"]), flush=True)
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "date": time.strftime("%Y-%m-%d")},
              "models": rows, "volume": volume}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
