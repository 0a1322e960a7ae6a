"""`brain`: axial slices of the MNI152 2009a template shipped inside the nilearn package.

Real MRI that installs offline from PyPI: a skull-stripped T1 template with grey- and
white-matter probability maps on the same 197x233x189 1 mm grid. Each axial slice is a
197x233 image (odd, non-square: it exercises dynamic shapes).

Labels: 0 background (incl. CSF), 1 grey matter, 2 white matter, the most probable of
(bg, gm, wm) per voxel with bg = 1 - gm - wm clipped at 0 (a maximum-probability "hard"
segmentation; ties, 0.03% of voxels, go to the lower id). The maps are smooth, so the labels
come out as clean cortical ribbons with no isolated speckle.

Intensities: the T1 is divided by its 99.5th percentile over head voxels (> 0) and scaled to
0..255. The lower end stays at 0 so background stays black and dark CSF stays distinct.

Slices with more than 2% brain (141 of 189) are kept. Split by slab so neighbouring, nearly
identical slices never straddle train and val: slab = z // 8, and every 5th slab
(slab % 5 == 4) is validation (117 train / 24 val).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.data.base import (
    SegmentationDataset,
    channel_stats,
    check_builtin_intensity,
    check_channel_mode,
    package_dir,
    package_version,
    require_reader,
)
from segdeploy.errors import DataError
from segdeploy.imaging import IntensityMapping, window_to_uint8

CLASSES = ["background", "grey matter", "white matter"]
FILES = {k: f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm")}
MIN_BRAIN_FRACTION = 0.02
SLAB = 8
VAL_EVERY = 5
T1_HIGH_PERCENTILE = 99.5

_FIX = ("pip install --no-deps nilearn (the template files ship inside it; its other "
        "dependencies are not needed) and pip install 'segdeploy[torch]' for nibabel")


@dataclass(frozen=True)
class _BrainVolume:
    images: np.ndarray  # Z x H x W uint8, kept slices only
    labels: np.ndarray  # Z x H x W uint8
    z: np.ndarray  # original axial index of each kept slice
    files: tuple[str, ...]
    t1_high: float  # the T1 value mapped to 255


def template_files() -> dict[str, Path]:
    """Paths of the MNI152 T1 and grey / white matter maps inside the nilearn install."""
    folder = package_dir("nilearn", purpose="for the built-in 'brain' dataset", fix=_FIX)
    folder = folder / "datasets" / "data"
    paths = {k: folder / name for k, name in FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataError(f"the nilearn install lacks the MNI152 template files {missing}",
                        expected="nilearn >= 0.10, which ships them in nilearn/datasets/data",
                        fix="pip install --no-deps --upgrade nilearn")
    return paths


@functools.lru_cache(maxsize=1)
def _decoded() -> tuple[np.ndarray, np.ndarray]:
    """The T1 (float32) and the hard tissue labels of the whole 197x233x189 volume."""
    paths = template_files()
    nib = require_reader("nibabel", purpose="to read the built-in 'brain' dataset")
    vol = {k: np.asarray(nib.load(str(p)).dataobj) for k, p in paths.items()}
    return vol["t1"].astype(np.float32), hard_labels(_as_probability(vol["gm"]),
                                                     _as_probability(vol["wm"]))


def tissue_labels() -> np.ndarray:
    """0 / 1 / 2 (background, grey, white matter) for every voxel of the template: the
    ground truth of `segdeploy predict` on the whole T1 volume."""
    return _decoded()[1].copy()


@functools.lru_cache(maxsize=1)
def _load_volume() -> _BrainVolume:
    """Decode the three NIfTI volumes once per process (about 1 s)."""
    paths = template_files()
    t1, labels = _decoded()
    hi = float(np.percentile(t1[t1 > 0], T1_HIGH_PERCENTILE))
    t1_u8 = window_to_uint8(t1, 0.0, hi)

    brain_fraction = (labels > 0).mean(axis=(0, 1))
    z = np.nonzero(brain_fraction > MIN_BRAIN_FRACTION)[0]
    # axial slice z is volume[:, :, z] (197 x 233); move z first, contiguous per slice
    images = np.ascontiguousarray(np.moveaxis(t1_u8[:, :, z], 2, 0))
    labels = np.ascontiguousarray(np.moveaxis(labels[:, :, z], 2, 0))
    return _BrainVolume(images, labels, z, tuple(str(p) for p in paths.values()), hi)


def hard_labels(gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """argmax over (bg, gm, wm) with bg = clip(1 - gm - wm), ties to the lower id; written
    as comparisons because a strided argmax over the stacked volume takes ~1 s."""
    bg = np.clip(1.0 - gm - wm, 0.0, 1.0)
    labels = (gm > bg).astype(np.uint8)
    labels[(wm > gm) & (wm > bg)] = 2
    return labels


def _as_probability(a: np.ndarray) -> np.ndarray:
    """The maps ship as uint8 0..255 in this nilearn release; older ones used floats 0..1."""
    a = a.astype(np.float32)
    return a / 255.0 if a.max() > 1.5 else a


def split_of(z: np.ndarray) -> np.ndarray:
    """'train'/'val' for each axial index: contiguous slabs of SLAB slices, every 5th is val."""
    return np.where((np.asarray(z) // SLAB) % VAL_EVERY == VAL_EVERY - 1, "val", "train")


@functools.lru_cache(maxsize=1)
def _train_stats() -> tuple[list[float], list[float]]:
    vol = _load_volume()
    return channel_stats(vol.images[split_of(vol.z) == "train"])


class BrainDataset(SegmentationDataset):
    """MNI152 axial slices, 3 classes, grey (1 channel) by default."""

    def __init__(self, split: str = "train", channel_mode: str | None = None,
                 intensity: IntensityMapping | dict[str, Any] | None = None):
        mode = check_channel_mode(channel_mode, "brain", allowed=("grey", "grey3"),
                                  default="grey")
        super().__init__("brain", split, mode)
        vol = _load_volume()
        self._volume = vol
        self._indices = np.nonzero(split_of(vol.z) == self.split)[0]
        check_builtin_intensity("brain", self.intensity, intensity)

    @property
    def intensity(self) -> IntensityMapping:
        """The T1 window 0 .. its 99.5th percentile over head voxels: what `segdeploy
        predict` applies to the MNI152 volume itself."""
        return IntensityMapping.window(0.0, self._volume.t1_high, source=(
            f"MNI152 T1: 0 .. its {T1_HIGH_PERCENTILE:g}th percentile over head voxels"))

    @property
    def classes(self) -> list[str]:
        return list(CLASSES)

    @property
    def slice_indices(self) -> list[int]:
        """Original axial index (z) of each image, for provenance and split tests."""
        return [int(self._volume.z[i]) for i in self._indices]

    def __len__(self) -> int:
        return len(self._indices)

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        i = self._indices[index]
        return self._volume.images[i].copy(), self._volume.labels[i].copy()

    def _native_stats(self) -> tuple[list[float], list[float]]:
        return _train_stats()

    def _image_sizes(self) -> list[list[int]]:
        return [list(self._volume.images.shape[1:])]

    def _source(self) -> dict[str, Any]:
        return {"files": list(self._volume.files), "nilearn": package_version("nilearn"),
                "nibabel": package_version("nibabel"),
                "slices": f"axial z with > {MIN_BRAIN_FRACTION:.0%} brain, slab {SLAB}, "
                          f"every {VAL_EVERY}th slab is val"}
