"""`make demo`: the whole pipeline on built-in real data (the MNI152 brain MRI), end to end.

Each step runs the real `segdeploy` command in a subprocess, exactly as a user would type it,
so the demo doubles as a smoke test of the CLI. TensorRT steps run only where TensorRT and a
GPU are present; elsewhere the demo says plainly that it skipped them.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

console = Console()
OUT = Path(os.environ.get("SEGDEPLOY_DEMO_DIR", "demo-output"))
# Small enough to train in a few minutes on 2 CPU cores; see BENCHMARKS.md for larger runs.
TRAIN_ARGS = os.environ.get(
    "SEGDEPLOY_DEMO_TRAIN",
    "--width 0.25 --batch-norm --epochs 8 --image-size 160 --seed 0",
).split()


def step(title: str, *args: str) -> None:
    cmd = [sys.executable, "-m", "segdeploy", *args]
    console.rule(f"[bold cyan]{title}")
    console.print("$ segdeploy " + " ".join(shlex.quote(a) for a in args), style="dim")
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    console.print(f"[dim]({time.perf_counter() - t0:.1f} s)[/]")
    if rc != 0:
        console.print(f"[bold red]demo step failed ({title}), exit code {rc}[/]")
        sys.exit(rc)


def tensorrt_available() -> tuple[bool, str]:
    if importlib.util.find_spec("tensorrt") is None:
        return False, "TensorRT is not installed (pip install 'segdeploy[tensorrt]')"
    try:
        from cuda.bindings import runtime as cudart

        err, count = cudart.cudaGetDeviceCount()
        if int(err) != 0 or count == 0:
            return False, "no CUDA GPU found"
    except Exception as exc:  # cuda-python missing or no driver
        return False, f"CUDA is not usable here ({exc})"
    return True, ""


def sample_image(path: Path) -> Path:
    """Write one real brain validation slice as a PNG for `segdeploy predict`."""
    from PIL import Image

    from segdeploy.data import get_dataset

    ds = get_dataset("brain", "val")
    image, _ = ds[len(ds) // 2]
    Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(path)
    return path


def main() -> None:
    OUT.mkdir(exist_ok=True)
    ckpt, onnx, fp16 = OUT / "unet_brain.pt", OUT / "unet_brain.onnx", OUT / "unet_brain.fp16.onnx"
    t0 = time.perf_counter()
    step("1. train a small U-Net on the MNI152 brain MRI (grey / white matter)",
         "train", "unet", "--data", "brain", *TRAIN_ARGS, "-o", str(ckpt))
    step("2. evaluate it on the validation slabs", "eval", str(ckpt), "--data", "brain")
    step("3. export FP32 + FP16 ONNX with dynamic axes, self-checked against PyTorch",
         "export", str(ckpt), "-o", str(onnx))
    step("3b. the exported graph describes itself (metadata a runtime reads)",
         "info", str(onnx))
    step("4a. verify the FP32 ONNX against PyTorch on real images",
         "verify", str(ckpt), "--engine", str(onnx))
    step("4b. verify the FP16 ONNX against PyTorch on real images",
         "verify", str(ckpt), "--engine", str(fp16))
    step("5. benchmark PyTorch eager vs ONNX Runtime vs Segmenter",
         "bench", "--engine", str(onnx), "--checkpoint", str(ckpt), "--shape", "1x1x197x233",
         "--duration", "2", "--json", str(OUT / "bench.json"), "--plot", str(OUT / "bench.png"))
    image = sample_image(OUT / "brain_slice.png")
    step("6. predict one image with an overlay", "predict", "--engine", str(onnx), str(image),
         "-o", str(OUT / "brain_slice.mask.png"), "--overlay")
    ok, why = tensorrt_available()
    if ok:
        plan = OUT / "unet_brain.plan"
        step("7a. build a TensorRT FP16 engine", "build", str(onnx), "-o", str(plan))
        step("7b. verify the engine", "verify", str(ckpt), "--engine", str(plan))
        step("7c. benchmark the engine against ONNX Runtime", "bench", "--engine", str(plan),
             "--engine", str(onnx), "--shape", "1x1x197x233", "--duration", "3")
    else:
        console.rule("[bold yellow]7. TensorRT engine: skipped")
        console.print(f"[yellow]Skipped building, verifying and benchmarking a TensorRT engine: "
                      f"{escape(why)}.[/]")
    console.rule("[bold green]demo finished")
    console.print(f"Artifacts in {OUT}/ ({time.perf_counter() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
