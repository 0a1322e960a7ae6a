"""`segdeploy predict --engine FILE IMAGE|DIR... -o OUT`: palette PNG masks from images.

-o is a .png file for one image, or a folder (created if needed) for several; `--overlay`
also writes the image blended with the mask; `--tile N` segments large images in
overlapping tiles. Runs on the torch-free runtime (ONNX Runtime or TensorRT).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from segdeploy.errors import InputError, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def collect_images(inputs: tuple[str, ...]) -> tuple[list[Path], bool]:
    """Image files named or inside the given folders (sorted); True when a folder was given."""
    images: list[Path] = []
    had_folder = False
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            had_folder = True
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UsageError(f"folder {path} has no images",
                                 expected=f"files ending in {', '.join(IMAGE_SUFFIXES)}")
            images.extend(found)
        elif path.is_file():
            images.append(path)
        else:
            raise UsageError(f"{path} does not exist", expected="an image file or a folder")
    for path in images:  # headers only: a non-image fails now, before any inference
        check_image_header(path)
    return images, had_folder


def check_image_header(path: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            pass
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image {path} ({exc})",
                         expected="a PNG, JPEG, BMP or TIFF image",
                         fix="remove it from the inputs or convert it") from None


def output_paths(images: list[Path], out: Path, single_file: bool) -> list[Path]:
    """Mask path of every image: `out` itself, or `out/STEM.png` in folder mode (the folder
    is created by `made_folder` when the masks are written)."""
    if single_file:
        return [out]
    paths = [out / f"{img.stem}.png" for img in images]
    seen: dict[Path, Path] = {}
    for img, target in zip(images, paths, strict=True):
        if target in seen:
            raise UsageError(f"{seen[target]} and {img} would both write {target}",
                             fix="predict the folders separately, into different -o folders")
        seen[target] = img
    return paths


@contextlib.contextmanager
def made_folder(out: Path, single_file: bool) -> Iterator[None]:
    """Create the -o folder; remove it again (and the folders made for it) if the run fails
    before anything is written into it, so a failed predict leaves nothing behind."""
    if single_file or out.is_dir():
        yield
        return
    made = [p for p in (out, *out.parents) if not p.exists()]
    blocker = next((p for p in out.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UsageError(f"{blocker} is a file, not a folder, so the output folder {out} "
                         "cannot be made inside it", fix="choose another -o folder")
    try:
        out.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder {out} ({exc.strerror})",
                         fix="choose another -o folder") from None
    try:
        yield
    except BaseException:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        raise


def overlay_path(mask_path: Path) -> Path:
    return mask_path.with_name(mask_path.stem + ".overlay.png")


def load_image(path: Path, channels: int) -> Any:
    """An HxWxC uint8 array for the model (grey for 1 channel, RGB otherwise); 16-bit and
    float images are stretched to 0-255."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # large images are what --tile / the memory budget are for; Pillow's warning
            # would print two raw lines. Its hard limit (DecompressionBombError) stays.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _decode(path, channels)
    except Image.DecompressionBombError:
        raise InputError(f"image {path} has more pixels than Pillow decodes safely",
                         expected=f"at most {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels",
                         fix="split the image into parts, or check it is not a "
                             "decompression bomb") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image {path} ({exc})",
                         expected="a PNG, JPEG, BMP or TIFF image",
                         fix="check the file is complete, or convert it") from None


def _decode(path: Path, channels: int) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(img, dtype=np.float64)
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else arr * 0
            grey = np.clip(arr + 0.5, 0, 255).astype(np.uint8)
            return grey[:, :, None] if channels == 1 else np.repeat(grey[:, :, None], 3, 2)
        return np.asarray(img.convert("L" if channels == 1 else "RGB"))


def save_overlay(path: Path, image: Any, mask: Any) -> None:
    from PIL import Image

    from segdeploy.atomic import atomic_path
    from segdeploy.imaging import overlay

    with atomic_path(path) as tmp:
        Image.fromarray(overlay(image, mask)).save(tmp, format="PNG")


@click.command("predict")
@click.option("--engine", "-e", "engine", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Model to run: .onnx (ONNX Runtime) or .plan/.engine (TensorRT).")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--output", "-o", "output", required=True, type=click.Path(),
              help="Mask .png for one image, or a folder for several.")
@click.option("--overlay", is_flag=True, help="Also write IMAGE.overlay.png (mask blended in).")
@click.option("--tile", type=click.IntRange(min=8), default=None,
              help="Segment in overlapping tiles of this size (for images larger than the "
                   "engine takes).")
@click.option("--overlap", type=click.IntRange(min=0), default=None,
              help="Context pixels discarded at each tile side (default tile/8).")
@click.option("--backend", type=click.Choice(["onnxruntime", "openvino", "tensorrt"]),
              default=None, help="Default: from the file suffix (.onnx: ONNX Runtime).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=None,
              help="OpenVINO inference precision [default: auto, the CPU's fastest].")
@click.option("--providers", default=None,
              help="ONNX Runtime providers, e.g. 'cuda,cpu' (default: CUDA if available).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="ONNX Runtime intra-op threads.")
@click.option("--memory-budget", default=None, metavar="BYTES",
              help="Without --tile, images whose untiled run would need more memory than "
                   "this (e.g. 4G) are tiled [default: half the available memory].")
def command(engine: str, inputs: tuple[str, ...], output: str, overlay: bool,
            tile: int | None, overlap: int | None, backend: str | None,
            providers: str | None, threads: int | None, memory_budget: str | None,
            precision: str | None) -> None:
    """Segment images with an exported model and write palette PNG masks."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from segdeploy.imaging import save_mask_png
    from segdeploy.runtime import Segmenter

    if overlap is not None and tile is None:
        raise UsageError("--overlap needs --tile", fix="add --tile N, e.g. --tile 512")
    images, had_folder = collect_images(inputs)
    out = Path(output)
    single_file = len(images) == 1 and not had_folder and not out.is_dir() and bool(out.suffix)
    if single_file and out.suffix.lower() != ".png":
        raise UsageError(f"-o {out} does not end in .png", expected="a .png mask path or a folder")
    if not single_file and out.exists() and not out.is_dir():
        raise UsageError(f"-o {out} is a file but {len(images)} images were given",
                         expected="a folder for several images")
    targets = output_paths(images, out, single_file)
    if single_file:
        from segdeploy.atomic import check_output_path

        check_output_path(out)  # before the model loads, not after the first prediction
    console = Console(stderr=True)
    with (made_folder(out, single_file),
          Segmenter.load(engine, backend=backend, providers=providers, threads=threads,
                         memory_budget=memory_budget, precision=precision) as seg):
        seg.notify = lambda msg: console.print(f"note: {msg}", highlight=False)
        progress = Progress("[progress.description]{task.description}", BarColumn(),
                            MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                            transient=True, disable=len(images) < 2)
        with progress:
            task = progress.add_task("predict", total=len(images))
            for src, dst in zip(images, targets, strict=True):
                image = load_image(src, seg.channels)
                mask = (seg.predict(image) if tile is None
                        else seg.predict_tiled(image, tile=tile, overlap=overlap))
                save_mask_png(str(dst), mask)
                if overlay:
                    save_overlay(overlay_path(dst), image, mask)
                progress.advance(task)
    where = targets[0] if single_file else out
    console.print(f"wrote {len(images)} mask{'s' * (len(images) != 1)} to {where}",
                  highlight=False)
