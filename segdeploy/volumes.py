"""Medical volumes: segment a NIfTI scan slice by slice and write a label volume (no torch).

    from segdeploy.volumes import predict_volume
    predict_volume(seg, "scan.nii.gz", "labels.nii.gz", axis="axial")

The volume's voxels are mapped to 0..255 as a whole by the model card's intensity mapping
(a window as recorded at training, applied to voxels of any type, uint8 included;
otherwise the volume's own 0.5-99.5 percentiles, so every slice shares one scale). Each
2-D slice along `axis` goes through `Segmenter.predict` in small batches, and the label
volume (uint8, or int16 beyond 255 classes) is written with the input's affine and header
(nibabel), so it overlays the scan in any viewer. "axial", "coronal" and "sagittal" are
found from the affine's orientation (nibabel.aff2axcodes); 0, 1, 2 name a voxel axis.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.errors import InputError, UsageError, first_line, require

#: longest first, so "scan.nii.gz" loses ".nii.gz", not ".gz"
NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: anatomical axis -> the orientation codes of the voxel axis that runs along it
_AXIS_CODES = {"axial": ("S", "I"), "coronal": ("A", "P"), "sagittal": ("L", "R")}
BATCH = 8


def is_nifti(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: str | os.PathLike[str]) -> str:
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def require_nibabel() -> Any:
    return require("nibabel", extra="torch", purpose="to read and write NIfTI volumes")


@dataclass(frozen=True)
class VolumeResult:
    """What `predict_volume` wrote: the label volume's path and shape, the voxel axis sliced,
    the mapping applied and the voxel count per class."""

    output: Path
    shape: tuple[int, ...]
    axis: int
    intensity: dict[str, Any]
    counts: list[int]


def load_volume(path: str | os.PathLike[str]) -> tuple[Any, np.ndarray]:
    """(nibabel image, 3-D array of its scaled voxel values); clear errors for bad files."""
    nib = require_nibabel()
    try:
        img = nib.load(os.fspath(path))
        data = np.asarray(img.dataobj)
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError...
        raise InputError(f"cannot read NIfTI volume {path} ({first_line(exc, limit=160)})",
                         expected="a .nii or .nii.gz file", fix="check the file") from exc
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"NIfTI {path} has shape {data.shape}",
                         expected="one 3-D volume (a 4-D series: one frame at a time)",
                         fix="split the series, e.g. nibabel.four_to_three, and predict each")
    if data.dtype.kind not in "iuf" and data.dtype != np.bool_:
        raise InputError(f"NIfTI {path} has voxels of type {data.dtype}",
                         expected="integer or float voxels")
    return img, data


def resolve_axis(axis: str | int, affine: np.ndarray) -> int:
    """The voxel axis to slice along: 0/1/2 as given, or the one running along the named
    anatomical axis according to the affine."""
    key = str(axis).lower()
    if key in ("0", "1", "2"):
        return int(key)
    if key not in _AXIS_CODES:
        raise UsageError(f"unknown axis {axis!r}", expected="axial, coronal, sagittal or 0/1/2")
    codes = require_nibabel().aff2axcodes(affine)
    for i, code in enumerate(codes):
        if code in _AXIS_CODES[key]:
            return i
    raise InputError(f"the volume's orientation {''.join(str(c) for c in codes)} has no "
                     f"{key} axis", fix="pass --axis 0, 1 or 2")


def check_plane(shape: tuple[int, int], min_size: int, path: Any) -> None:
    """Slices smaller than the model's smallest input would be mostly invented padding."""
    if min(shape) < max(min_size, 2):
        raise InputError(f"volume {path} has {shape[0]}x{shape[1]} slices, too small for the "
                         f"model (smallest input {max(min_size, 2)}x{max(min_size, 2)})",
                         expected=f"slices of at least {max(min_size, 2)} voxels per side",
                         fix="slice along another axis (--axis) or use a model for small "
                             "images")


def predict_volume(seg: Any, src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                   axis: str | int = "axial", batch: int = BATCH,
                   on_slices: Callable[[int], None] | None = None) -> VolumeResult:
    """Segment every slice of a NIfTI volume along `axis`; write the labels to `dst`."""
    img, data = load_volume(src)
    ax = resolve_axis(axis, img.affine)
    slices = np.moveaxis(data, ax, 0)
    check_plane(slices.shape[1:], seg.card.min_size, src)
    mapping = seg.intensity.for_volume(data)
    labels = np.empty(slices.shape, dtype=np.uint8 if seg.num_classes < 256 else np.int16)
    for start in range(0, len(slices), max(1, batch)):
        chunk = mapping.apply(np.asarray(slices[start:start + batch]), raw=True)
        labels[start:start + len(chunk)] = seg.predict(chunk[..., None])
        if on_slices is not None:
            on_slices(len(chunk))
    out = np.ascontiguousarray(np.moveaxis(labels, 0, ax))
    write_labels(dst, out, img, seg.num_classes)
    counts = np.bincount(out.ravel().astype(np.int64), minlength=seg.num_classes)
    return VolumeResult(Path(dst), tuple(out.shape), ax, mapping.to_dict(),
                        [int(c) for c in counts])


def write_labels(dst: str | os.PathLike[str], labels: np.ndarray, like: Any,
                 num_classes: int) -> Path:
    """Write an integer label volume with `like`'s affine and header (scaling reset)."""
    from segdeploy.atomic import write_bytes_atomic

    nib = require_nibabel()
    header = like.header.copy()
    out = nib.Nifti1Image(labels, like.affine, header=header)
    out.set_data_dtype(labels.dtype)
    out.header.set_slope_inter(1.0, 0.0)
    out.header["cal_min"], out.header["cal_max"] = 0, max(num_classes - 1, 0)
    out.header["descrip"] = b"segdeploy labels"
    data = out.to_bytes()
    if os.fspath(dst).lower().endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return write_bytes_atomic(dst, data)


def stack_slices(images: list[np.ndarray], paths: list[Path]) -> np.ndarray:
    """2-D images of one size -> Z x H x W(x C); mixed sizes are refused naming two files."""
    first = images[0].shape[:2]
    for img, path in zip(images, paths, strict=True):
        if img.shape[:2] != first:
            raise InputError(f"{paths[0].name} is {first[0]}x{first[1]} but {path.name} is "
                             f"{img.shape[0]}x{img.shape[1]} (HxW)",
                             expected="slices of one size to stack into a NIfTI volume",
                             fix="resize them to one size, or write PNG masks (-o FOLDER)")
    return np.stack(images)


def volume_dice(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> list[float | None]:
    """Dice of each class between two label volumes (None where both lack the class)."""
    if pred.shape != truth.shape:
        raise InputError(f"label volumes {pred.shape} and {truth.shape} differ in shape",
                         expected="the same grid")
    from segdeploy.metrics import ConfusionMatrix  # numpy only

    return ConfusionMatrix(num_classes, ignore_index=None).update(pred, truth).compute()["dice"]
