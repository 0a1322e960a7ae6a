"""Make the artifacts the Triton server tests serve (needs torch: run it in the main venv).

    .venv/bin/python -m tests.serving.make_artifacts build/serving

writes DIR/unet_brain.onnx (FP32), DIR/unet_brain.int8.onnx (QDQ INT8) and
DIR/unet_brain.ingraph.onnx (`--with-preprocess --with-argmax`) of the small brain U-Net of
tests/conftest.py (trained for 2 epochs: the masks only need to be non-trivial),
DIR/brain_val_images.npz (real 197x233 MRI slices of the validation split), a binary
(1-channel, one logit) U-Net of the real nuclei image DIR/unet_nuclei_binary.onnx with
DIR/nuclei_val_images.npz, then DIR/.complete. The serving venv has no torch; it only
reads these files.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

STEM = "unet_brain"
FILES = {"fp32": f"{STEM}.onnx", "int8": f"{STEM}.int8.onnx", "ingraph": f"{STEM}.ingraph.onnx",
         "images": "brain_val_images.npz", "binary": "unet_nuclei_binary.onnx",
         "nuclei_images": "nuclei_val_images.npz"}
#: validation slices saved for the server tests (the serving venv has no nilearn/nibabel)
IMAGES = 12
COMPLETE = ".complete"


def make(out: Path) -> None:
    import torch

    from segdeploy.export import ExportOptions, run_export
    from segdeploy.export.quantize import QuantizeOptions, quantize_model
    from segdeploy.training import TrainConfig, train
    from tests.conftest import BRAIN_CHECKPOINT_SETTINGS

    out.mkdir(parents=True, exist_ok=True)
    (out / COMPLETE).unlink(missing_ok=True)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ckpt = out / f"{STEM}.pt"
    settings = {**BRAIN_CHECKPOINT_SETTINGS, "epochs": 2}
    train(TrainConfig(**settings, output=str(ckpt), progress=False, verbose=False))
    fp32 = out / FILES["fp32"]
    run_export(ckpt, ExportOptions(output=str(fp32), opset=17, fp16=False,
                                   check_sizes=["1x1x97x131"]))
    run_export(ckpt, ExportOptions(output=str(out / FILES["ingraph"]), opset=17, fp16=False,
                                   with_preprocess=True, with_argmax=True,
                                   check_sizes=["1x1x97x131"]))
    quantize_model(fp32, QuantizeOptions(data="brain", output=out / FILES["int8"],
                                         calibration_images=16, val_images=8,
                                         min_agreement=95.0, max_miou_drop=5.0,
                                         allow_slower=True))
    save_images(out / FILES["images"])
    make_binary(out)
    (out / COMPLETE).write_text(f"{time.perf_counter() - t0:.1f} s\n")


def make_binary(out: Path) -> None:
    """A binary head (--num-classes 1) trained briefly on the nuclei image, and its val tiles."""
    from segdeploy.export import ExportOptions, run_export
    from segdeploy.training import TrainConfig, train

    ckpt = out / "unet_nuclei_binary.pt"
    train(TrainConfig(arch="unet", data="nuclei", width=0.125, batch_norm=True, epochs=2,
                      lr=3e-3, batch_size=8, image_size=(96, 96), seed=0, device="cpu",
                      num_classes=1, output=str(ckpt), progress=False, verbose=False))
    run_export(ckpt, ExportOptions(output=str(out / FILES["binary"]), opset=17, fp16=False,
                                   check_sizes=["1x1x97x131"]))
    save_images(out / FILES["nuclei_images"], "nuclei")


def save_images(path: Path, data: str = "brain") -> None:
    import numpy as np

    from segdeploy.data import get_dataset

    ds = get_dataset(data, split="val")
    step = max(len(ds) // IMAGES, 1)
    images = [ds[i][0] for i in range(0, len(ds), step)][:IMAGES]
    np.savez_compressed(path, *images)


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "build/serving")
    if (out / COMPLETE).exists() and all((out / f).is_file() for f in FILES.values()):
        print(f"{out}: artifacts already made")
        return 0
    make(out)
    print(f"{out}: made {', '.join(FILES.values())} in {(out / COMPLETE).read_text().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
