"""The dataset interface every part of segdeploy reads: numpy images and masks, no torch.

A dataset yields `(image HxWxC uint8, mask HxW uint8)` with 255 marking pixels to ignore.
Subclasses read images in their *native* channels (HxW for grey sources, HxWx3 for colour);
this base class turns them into the requested `channel_mode`, so "grey3" (grey replicated to
three channels, for backbones that expect RGB) works the same for every dataset.
"""

from __future__ import annotations

import abc
import importlib.metadata
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.errors import DataError, MissingDependencyError, UsageError
from segdeploy.imaging import IntensityMapping, as_intensity

SPLITS = ("train", "val")
CHANNEL_MODES = ("grey", "grey3", "rgb")


def check_split(split: str, dataset: str) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} for dataset {dataset!r}",
                        expected="'train' or 'val'", fix="pass split='train' or split='val'")
    return split


def check_channel_mode(mode: str | None, dataset: str, *, allowed: tuple[str, ...],
                       default: str) -> str:
    """Return the channel mode to use; grey sources cannot be read as "rgb"."""
    if mode is None:
        return default
    if mode not in CHANNEL_MODES:
        raise DataError(f"unknown channel mode {mode!r}",
                        expected="one of " + ", ".join(CHANNEL_MODES),
                        fix="use 'grey' (1 channel), 'grey3' (grey replicated to 3) or 'rgb'")
    if mode not in allowed:
        raise DataError(f"dataset {dataset!r} is greyscale and cannot be read as {mode!r}",
                        expected="one of " + ", ".join(allowed),
                        fix="use --channels grey3 (channel_mode='grey3' in Python) to feed "
                            "a 3-channel model")
    return mode


def package_dir(package: str, *, purpose: str, fix: str) -> Path:
    """Locate an installed package's folder WITHOUT importing it (nilearn/stardist are
    installed with --no-deps and may not import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(package, purpose=purpose, fix=fix)
    return Path(list(spec.submodule_search_locations)[0])


def package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def require_reader(module: str, *, purpose: str):
    """Import nibabel / tifffile, or raise naming the extra that installs them."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module, extra="torch", purpose=purpose,
                                     fix=f"pip install 'segdeploy[torch]' (or pip install "
                                         f"{module})") from exc


def channel_stats(images: list[np.ndarray] | np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of image / 255 over all pixels of all images (float64 sums)."""
    total = 0
    s1: np.ndarray | None = None
    s2: np.ndarray | None = None
    for img in images:
        x = img.reshape(-1, 1 if img.ndim == 2 else img.shape[-1]).astype(np.float64) / 255.0
        a, b = x.sum(axis=0), np.square(x).sum(axis=0)
        s1, s2 = (a, b) if s1 is None else (s1 + a, s2 + b)
        total += x.shape[0]
    if s1 is None or total == 0:
        raise DataError("cannot compute mean/std: the training split has no pixels",
                        fix="check that the dataset's training split is not empty")
    mean = s1 / total
    std = np.sqrt(np.maximum(s2 / total - np.square(mean), 0.0))
    std = np.maximum(std, 1e-3)  # a constant channel must not divide by zero
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


class SegmentationDataset(abc.ABC):
    """A split of a segmentation dataset: `ds[i] -> (image HxWxC uint8, mask HxW uint8)`."""

    name: str
    split: str
    channel_mode: str

    def __init__(self, name: str, split: str, channel_mode: str):
        self.name = name
        self.split = check_split(split, name)
        self.channel_mode = channel_mode

    # -- what subclasses provide -------------------------------------------------------------
    @property
    @abc.abstractmethod
    def classes(self) -> list[str]:
        """Class names; index = class id in the masks."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Native image (HxW grey or HxWx3) and HxW uint8 mask for a valid index."""

    @abc.abstractmethod
    def _native_stats(self) -> tuple[list[float], list[float]]:
        """Mean/std of the TRAINING split in native channels (1 for grey, 3 for rgb)."""

    @abc.abstractmethod
    def _image_sizes(self) -> list[list[int]]:
        """Distinct [H, W] of the split's images, sorted."""

    @abc.abstractmethod
    def _source(self) -> dict[str, Any]:
        """Where the data came from: files, package versions, layout."""

    # -- common behaviour ----------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def intensity(self) -> IntensityMapping:
        """How this dataset's raw pixels became the 0..255 images it yields."""
        return IntensityMapping("uint8", source="8-bit images")

    @property
    def warnings(self) -> list[str]:
        """Sentences about the data worth printing before training on it (none here)."""
        return []

    @property
    def classes_from(self) -> str:
        return "built in"

    @property
    def in_channels(self) -> int:
        return 1 if self.channel_mode == "grey" else 3

    @property
    def mean(self) -> list[float]:
        return self._stats()[0]

    @property
    def std(self) -> list[float]:
        return self._stats()[1]

    def _stats(self) -> tuple[list[float], list[float]]:
        mean, std = self._native_stats()
        if self.channel_mode == "grey3":
            return mean * 3, std * 3
        return list(mean), list(std)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset indices are integers, not {type(index).__name__}")
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        image, mask = self._read(int(index))
        if image.ndim == 2:
            image = image[:, :, None]
        if self.channel_mode == "grey3" and image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def describe(self) -> dict[str, Any]:
        """Plain-JSON summary for a checkpoint's `trained_on`."""
        return {
            "name": self.name,
            "split": self.split,
            "images": len(self),
            "image_sizes": self._image_sizes(),
            "channel_mode": self.channel_mode,
            "classes": list(self.classes),
            "intensity": self.intensity.to_dict(),
            "source": self._source(),
        }

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, "
                f"images={len(self)}, channel_mode={self.channel_mode!r})")


def check_builtin_intensity(dataset: str, own: IntensityMapping,
                            given: IntensityMapping | dict[str, Any] | None) -> None:
    """A built-in dataset decodes its raw data with its own fixed mapping; a model card
    asking for that one (or none) is fine, another one cannot be honoured."""
    if given is None or not (given if isinstance(given, IntensityMapping) else given):
        return
    mapping = as_intensity(given)
    if mapping.kind in ("uint8", "per-image") or mapping.to_dict() == own.to_dict() or (
            mapping.kind == own.kind == "window"
            and np.isclose(mapping.low, own.low) and np.isclose(mapping.high, own.high)):
        return
    raise UsageError(f"dataset {dataset!r} maps its raw intensities with {own.describe()}, "
                     f"not the requested {mapping.describe()}",
                     fix="--intensity-window applies to folders of 16-bit / float images; "
                         f"drop it for {dataset!r}")
