"""`segdeploy predict --engine FILE IMAGE|DIR|VOLUME... -o OUT`: masks from images.

-o is a .png file for one image, or a folder (created if needed) for several; `--overlay`
also writes the image blended with the mask; `--tile N` segments large images in
overlapping tiles. Images are read by the one decoder (EXIF orientation applied, 16-bit /
float pixels mapped by the model card's intensity mapping).

NIfTI volumes (`scan.nii.gz -o labels.nii.gz`) are segmented slice by slice along `--axis`
(default axial) and written as label volumes with the input's affine and header; 2-D
images of one size given with `-o NAME.nii.gz` are stacked into one label volume. Runs on
the torch-free runtime (ONNX Runtime or TensorRT; nibabel for volumes).

Folders run pipelined (Segmenter.stream). Videos, cameras and streams (`clip.mp4`, `--source
0`, `rtsp://...`; PyAV) and `--ray [ADDRESS]` (segdeploy.scale) are in cli/predict_stream.py.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from segdeploy.cli.choices import backend_choice, openvino_precision_choice
from segdeploy.errors import InputError, UsageError

#: besides the image files datasets read (imaging.IMAGE_SUFFIXES), predict takes Netpbm
NETPBM_SUFFIXES = (".ppm", ".pgm")


def image_suffixes() -> tuple[str, ...]:
    from segdeploy.imaging import IMAGE_SUFFIXES  # numpy: not at CLI start-up

    return (*IMAGE_SUFFIXES, *NETPBM_SUFFIXES)


def _is_input(path: Path) -> bool:
    from segdeploy.volumes import is_nifti

    return path.suffix.lower() in image_suffixes() or is_nifti(path)


def collect_images(inputs: tuple[str, ...], failures: list[tuple[Path, str]] | None = None,
                   recursive: bool = False) -> tuple[list[Path], bool]:
    """Image (and NIfTI) files named or inside the given folders (sorted; `recursive`: in
    their sub-folders too); True when a folder was given. With `failures` (a list) and more
    than one input, an unreadable image is recorded there and left out instead of stopping
    the run."""
    from segdeploy.volumes import is_nifti

    images: list[Path] = []
    had_folder = False
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            had_folder = True
            walk = path.rglob("*") if recursive else path.iterdir()
            found = sorted(p for p in walk if p.is_file() and _is_input(p))
            if not found:
                inner = [path / d for d in ("images", "JPEGImages") if (path / d).is_dir()]
                raise UsageError(f"folder {path} has no images",
                                 expected=f"files ending in {', '.join(image_suffixes())}, "
                                          ".nii or .nii.gz",
                                 fix=f"it looks like a dataset root: predict {inner[0]}"
                                     if inner else "name the folder that holds the images")
            images.extend(found)
        elif path.is_file():
            images.append(path)
        else:
            raise UsageError(f"{path} does not exist", expected="an image file or a folder")
    readable = []
    for path in images:  # headers only: a non-image fails now, before any inference
        try:
            if not is_nifti(path):
                check_image_header(path)
            readable.append(path)
        except InputError as exc:
            if failures is None or len(images) == 1:
                raise
            failures.append((path, exc.what))
    if not readable:
        raise InputError(f"none of the {len(images)} images can be read "
                         f"({failures[0][0] if failures else images[0]}: "
                         f"{failures[0][1] if failures else ''})",
                         fix="check the files are complete images")
    return readable, had_folder


def check_image_header(path: Path) -> None:
    """Fail before any inference on a file that is no image: the one header reader
    (Pillow, tifffile for the float / multi-band TIFFs Pillow refuses)."""
    from segdeploy.imaging import read_header

    try:
        read_header(path)
    except InputError as exc:
        raise exc.retyped(InputError, fix="remove it from the inputs or convert it") from None


def output_paths(images: list[Path], out: Path, single_file: bool,
                 roots: list[Path] | None = None) -> list[Path]:
    """Mask path of every image: `out` itself, or `out/STEM.png` in folder mode (the folder
    is created by `made_folder` when the masks are written)."""
    if single_file:
        return [out]
    from segdeploy.scale import mask_targets  # the same rule as a Ray run's (no ray import)

    if roots:  # --recursive: out/SUB/FOLDER/STEM.png, the input folders' layout kept
        rel = [next((im.relative_to(r).parent for r in roots if im.is_relative_to(r)),
                    Path()) for im in images]
        paths = [out / sub / f"{im.stem}.png" for sub, im in zip(rel, images, strict=True)]
        if len(set(paths)) == len(paths):
            return paths
    return mask_targets(images, out)


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


def load_image(path: Path, channels: int, intensity: Any = None) -> Any:
    """An HxWxC uint8 array for the model: the one decoder (segdeploy.imaging.load_image):
    EXIF orientation applied, 16-bit / float pixels mapped by the card's intensity mapping."""
    from segdeploy.imaging import load_image as decode

    return decode(path, channels=channels, intensity=intensity)


def save_overlay(path: Path, image: Any, mask: Any, *, classes: Any = (),
                 contours: bool = False) -> None:
    """IMAGE.overlay.png: the classes blended in (or outlined) and a legend of those present."""
    from PIL import Image

    from segdeploy.atomic import atomic_path
    from segdeploy.overlays import draw_overlay, with_legend

    picture = with_legend(draw_overlay(image, mask, contours=contours), mask, list(classes))
    with atomic_path(path) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")


@click.command("predict")
@click.option("--engine", "-e", "engine", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Model to run: .onnx (ONNX Runtime) or .plan/.engine (TensorRT).")
@click.argument("inputs", nargs=-1, required=False, type=click.Path())
@click.option("--output", "-o", "output", required=True, type=click.Path(),
              help="Mask .png for one image, or a folder for several (a video: one PNG "
                   "per frame), or NAME.mkv (a video's masks, lossless FFV1).")
@click.option("--overlay", is_flag=True,
              help="Also write MASK.overlay.png beside each mask (classes blended in, a legend "
                   "below); videos: OUT/overlay.mp4.")
@click.option("--recursive", "-r", is_flag=True,
              help="Folders: take images in sub-folders too and keep the layout under -o.")
@click.option("--contours", is_flag=True,
              help="With --overlay: outline the classes instead of filling them.")
@click.option("--tile", type=click.IntRange(min=8), default=None,
              help="Segment in overlapping tiles of this size (for images larger than the "
                   "engine takes).")
@click.option("--overlap", type=click.IntRange(min=0), default=None,
              help="Context pixels discarded at each tile side (default tile/8).")
@click.option("--backend", type=backend_choice(), default="auto", show_default=True,
              help="auto: from the file suffix (.onnx: ONNX Runtime, .plan: TensorRT), but an "
                   "INT8 (U8S8) file on the CPU runs on OpenVINO when its first run agrees "
                   "with ONNX Runtime's.")
@click.option("--precision", type=openvino_precision_choice(), default=None,
              help="OpenVINO inference precision [default: auto, the CPU's fastest].")
@click.option("--providers", default=None,
              help="ONNX Runtime providers, e.g. 'cuda,cpu' (default: CUDA if available).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="ONNX Runtime intra-op threads.")
@click.option("--memory-budget", default=None, metavar="BYTES",
              help="Without --tile, images whose untiled run would need more memory than "
                   "this (e.g. 4G) are tiled [default: half the available memory].")
@click.option("--axis", type=click.Choice(["axial", "coronal", "sagittal", "0", "1", "2"]),
              default="axial", show_default=True,
              help="NIfTI volumes: slice along this anatomical axis (from the affine) or "
                   "voxel axis.")
@click.option("--pad-to-stride/--no-pad-to-stride", default=True, show_default=True,
              help="Reflect-pad to a multiple of the model's output stride and crop back; "
                   "--no-pad-to-stride pads only to what the model requires.")
@click.option("--source", default=None, metavar="VIDEO|CAMERA|URL",
              help="Live or video input: 0 (camera), /dev/video0, rtsp://..., clip.mp4.")
@click.option("--overlay-to", default=None, type=click.Path(dir_okay=False),
              help="Videos: write the overlay video here [default: OUT/overlay.mp4].")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help="Per image (size, seconds, class shares) and the images that failed; "
                   "videos: per frame index, pts and class shares.")
@click.option("--crf", is_flag=True,
              help="Refine 2-D masks with the dense CRF (snaps them to edges): the "
                   "parameters `segdeploy crf-tune` stored in the model's card, else "
                   "defaults (noted). Runs untiled; pydensecrf2 (the crf extra) or numpy.")
@click.option("--ray", "ray", is_flag=False, flag_value="local", default=None,
              metavar="[ADDRESS]", help="Folders / lists on a Ray cluster (local by default; "
              "put --ray last or give an address); resumable.")
def command(engine: str, inputs: tuple[str, ...], output: str, overlay: bool, recursive: bool,
            contours: bool,
            tile: int | None, overlap: int | None, backend: str | None,
            providers: str | None, threads: int | None, memory_budget: str | None,
            precision: str | None, axis: str, pad_to_stride: bool, source: str | None,
            overlay_to: str | None, json_path: str | None, crf: bool, ray: str | None) -> None:
    """Segment images, videos, cameras (or NIfTI volumes) with an exported model; write
    palette PNG masks (or mask videos, or label volumes)."""
    from rich.console import Console

    from segdeploy.runtime import Segmenter
    from segdeploy.volumes import is_nifti

    if crf and (ray is not None or source is not None or _videos(inputs) or tile):
        raise UsageError("--crf refines 2-D images segmented whole",
                         fix="drop --crf, or --tile / --ray / the video input")
    if ray is not None or source is not None or _videos(inputs):
        from segdeploy.cli.predict_stream import predict_other

        predict_other(engine, inputs, output, source=source, ray=ray, overlay=overlay,
                      overlay_to=overlay_to, json_path=json_path,
                      options=dict(backend=backend, providers=providers, threads=threads,
                                   memory_budget=memory_budget, precision=precision,
                                   pad_to_stride=pad_to_stride), made_folder=made_folder)
        return
    if not inputs:
        raise UsageError("no inputs", expected="images, folders, volumes or a video",
                         fix="name them, or pass --source for a camera or stream")
    if contours and not overlay:
        raise UsageError("--contours draws the outlines of --overlay", fix="add --overlay")
    if overlap is not None and tile is None:
        raise UsageError("--overlap needs --tile", fix="add --tile N, e.g. --tile 512")
    failures: list[tuple[Path, str]] = []
    images, had_folder = collect_images(inputs, failures, recursive)
    roots = [Path(i) for i in inputs if Path(i).is_dir()] if recursive else None
    volumes = [p for p in images if is_nifti(p)]
    if volumes and len(volumes) != len(images):
        raise UsageError(f"{volumes[0].name} is a NIfTI volume but "
                         f"{next(p for p in images if not is_nifti(p)).name} is a 2-D image",
                         expected="volumes only or 2-D images only in one call",
                         fix="predict the volumes and the images in separate calls")
    out = Path(output)
    nifti = bool(volumes) or is_nifti(out)
    if nifti and (tile is not None or overlay or crf):
        raise UsageError("--tile, --overlay and --crf apply to 2-D images",
                         fix="drop them for NIfTI output")
    single_file, targets = ((is_nifti(out), []) if nifti
                            else _image_targets(images, out, had_folder, roots))
    console = Console(stderr=True)
    from segdeploy.cli.predict_stream import stream_threads

    threads, workers = stream_threads(engine, backend, threads,
                                      not nifti and tile is None and len(images) > 1)
    with (made_folder(out, single_file),
          Segmenter.load(engine, backend=backend, providers=providers, threads=threads,
                         memory_budget=memory_budget, precision=precision,
                         pad_to_stride=pad_to_stride,
                         notify=lambda msg: console.print(f"note: {msg}", highlight=False))
          as seg):
        for folder in {t.parent for t in targets} - {out}:  # --recursive's sub-folders
            folder.mkdir(parents=True, exist_ok=True)
        if nifti:
            _predict_nifti(seg, images, out, had_folder, bool(volumes), axis, console)
            return
        writer = (functools.partial(save_overlay, classes=seg.classes, contours=contours)
                  if overlay else None)
        records = _predict_images(seg, images, targets, writer, tile, overlap, console,
                                  workers, failures, crf)
    where = targets[0] if single_file else out
    done = len(records)
    console.print(f"wrote {done} mask{'s' * (done != 1)} to {where}", highlight=False)
    from segdeploy.cli.predict_report import finish_report

    finish_report(records, failures, json_path, seg.classes, console)


def _videos(inputs: tuple[str, ...]) -> bool:
    from segdeploy.video import is_video

    return any(is_video(i) for i in inputs)


def _image_targets(images: list[Path], out: Path, had_folder: bool,
                   roots: list[Path] | None = None) -> tuple[bool, list[Path]]:
    """(one .png file?, the mask path of every image), checked before the model loads."""
    single_file = len(images) == 1 and not had_folder and not out.is_dir() and bool(out.suffix)
    if single_file and out.suffix.lower() != ".png":
        raise UsageError(f"-o {out} does not end in .png", expected="a .png mask path or a folder")
    if not single_file and out.exists() and not out.is_dir():
        raise UsageError(f"-o {out} is a file but {len(images)} images were given",
                         expected="a folder for several images")
    if not single_file and not out.exists() and out.suffix.lower() in image_suffixes():
        raise UsageError(f"-o {out} names one mask file but {len(images)} images were given"
                         + (" (a folder)" if had_folder else ""),
                         expected="a folder for several masks",
                         fix=f"use -o {out.with_suffix('')}/ for a folder of masks")
    targets = output_paths(images, out, single_file, roots)
    if single_file:
        from segdeploy.atomic import check_output_path

        check_output_path(out)  # before the model loads, not after the first prediction
    return single_file, targets


def _progress(console: Any, total: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                    transient=True, disable=total < 2)


def _predict_nifti(seg: Any, inputs: list[Path], out: Path, had_folder: bool,
                   volumes: bool, axis: str, console: Any) -> None:
    """Label volumes from NIfTI scans, or one from a stack of 2-D slices."""
    from segdeploy.volumes import is_nifti, nifti_stem, predict_volume

    if not volumes:
        _stack_to_nifti(seg, inputs, out, console)
        return
    single = len(inputs) == 1 and not had_folder and is_nifti(out)
    if not single and out.exists() and not out.is_dir():
        raise UsageError(f"-o {out} is a file but {len(inputs)} volumes were given",
                         expected="a folder for several volumes")
    if not single and is_nifti(out):
        raise UsageError(f"-o {out} names one volume but {len(inputs)} were given",
                         expected="a folder for several volumes")
    targets = [out] if single else [out / f"{nifti_stem(p)}.nii.gz" for p in inputs]
    for src, dst in zip(inputs, targets, strict=True):
        with _progress(console, 2) as bar:
            task = bar.add_task(f"{src.name}", total=None)

            def advance(n: int, t: Any = task) -> None:
                bar.advance(t, n)

            result = predict_volume(seg, src, dst, axis=axis, on_slices=advance)
        share = ", ".join(f"{name} {c / max(sum(result.counts), 1):.1%}"
                          for name, c in zip(seg.classes, result.counts, strict=False))
        console.print(f"wrote {dst} ({'x'.join(map(str, result.shape))}, sliced along voxel "
                      f"axis {result.axis}): {share}", highlight=False)


def _stack_to_nifti(seg: Any, inputs: list[Path], out: Path, console: Any) -> None:
    """2-D slices of one size -> one label volume (slices along the last axis, identity
    affine: the images carry no position)."""
    import numpy as np

    from segdeploy.volumes import require_nibabel, stack_slices, write_labels

    images = [load_image(p, seg.channels, seg.intensity) for p in inputs]
    stack = stack_slices(images, inputs)
    masks = np.asarray(seg.predict(stack))
    labels = np.ascontiguousarray(np.moveaxis(masks, 0, 2))
    nib = require_nibabel()
    write_labels(out, labels, nib.Nifti1Image(labels, np.eye(4)), seg.num_classes)
    console.print(f"wrote {out} ({'x'.join(map(str, labels.shape))}) from {len(inputs)} "
                  "slices", highlight=False)


def _predict_images(seg: Any, images: list[Path], targets: list[Path],
                    overlay: Callable[..., None] | None,
                    tile: int | None, overlap: int | None, console: Any,
                    infer_workers: int, failures: list[tuple[Path, str]], crf: bool = False
                    ) -> list[dict[str, Any]]:
    """Masks of every image (failed ones go to `failures`); one record per written mask.
    Tiles and the CRF run one image at a time; plain masks are pipelined (predict_folder)."""
    import time

    from segdeploy.cli.predict_report import image_record
    from segdeploy.imaging import save_mask_png

    if tile is None and not crf:  # decode ahead, infer back to back, write behind: the same masks
        from segdeploy.cli.predict_stream import predict_folder

        return predict_folder(seg, images, targets, [overlay_path(t) for t in targets]
                              if overlay else None, overlay or save_overlay, console,
                              infer_workers, failures)
    records = []
    with _progress(console, len(images)) as progress:
        task = progress.add_task("predict", total=len(images))
        for src, dst in zip(images, targets, strict=True):
            t0 = time.perf_counter()
            try:
                image = load_image(src, seg.channels, seg.intensity)
                mask = (seg.predict(image, crf=True) if crf
                        else seg.predict_tiled(image, tile=tile, overlap=overlap))
            except InputError as exc:
                failures.append((src, exc.what))
                progress.advance(task)
                continue
            save_mask_png(str(dst), mask)
            if overlay:
                overlay(overlay_path(dst), image, mask)
            records.append(image_record(src, dst, mask, time.perf_counter() - t0,
                                        seg.num_classes))
            progress.advance(task)
    return records
