"""Datasets as numpy: built-in real data (`brain`, `nuclei`) and users' folders (plain / VOC).

    from segdeploy.data import get_dataset
    ds = get_dataset("brain", split="train")       # or "nuclei", or a folder path
    image, mask = ds[0]                             # HxWxC uint8, HxW uint8 (255 = ignore)

No torch here; nibabel / tifffile are imported only when a built-in dataset is first read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from segdeploy.data.base import CHANNEL_MODES, SPLITS, SegmentationDataset
from segdeploy.errors import DataError, UsageError
from segdeploy.imaging import IntensityMapping
from segdeploy.manifest import ModelCard

BUILTIN = ("brain", "nuclei")

__all__ = ["BUILTIN", "CHANNEL_MODES", "SPLITS", "SegmentationDataset", "check_classes",
           "dataset_for_model", "get_dataset", "list_datasets"]


def list_datasets() -> list[str]:
    """Names of the built-in datasets."""
    return list(BUILTIN)


def get_dataset(name_or_path: str | os.PathLike[str], split: str = "train",
                channel_mode: str | None = None,
                intensity: IntensityMapping | dict[str, Any] | None = None
                ) -> SegmentationDataset:
    """A built-in dataset by name, else a folder (images/ + masks/, VOC or CVAT layout).

    `intensity`: how 16-bit / float images map to 0..255 (a model card's `intensity`); by
    default a folder measures its training split's window. Built-in names win over a folder
    of the same name in the working directory; pass `./brain` to read such a folder.
    """
    name = os.fspath(name_or_path)
    if name == "brain":
        from segdeploy.data.brain import BrainDataset

        return BrainDataset(split, channel_mode, intensity)
    if name == "nuclei":
        from segdeploy.data.nuclei import NucleiDataset

        return NucleiDataset(split, channel_mode, intensity)
    path = Path(name).expanduser()
    if not path.is_dir():
        raise DataError(f"unknown dataset {name!r}: not a built-in name and no such folder",
                        expected="one of " + ", ".join(BUILTIN) + ", or a folder with images/ "
                                 "+ masks/ or the VOC layout (JPEGImages/, SegmentationClass/)",
                        fix="check the spelling or the path")
    from segdeploy.data.folder import FolderDataset

    return FolderDataset(path, split, channel_mode, intensity)


def dataset_for_model(card: ModelCard, data: str | os.PathLike[str] | None = None,
                      split: str = "val", *, classes_by_count: bool = False
                      ) -> SegmentationDataset:
    """The dataset to score a model on: `data`, else the one its card says it was trained on,
    fed the way it was trained (channel mode, intensity mapping) and checked against its
    classes (`check_classes`)."""
    name = data or trained_on_data(card)
    if not name:
        raise UsageError("the model does not say which dataset it was trained on",
                         fix="pass --data brain|nuclei|FOLDER")
    # built-in datasets decode their raw data with their own fixed mapping
    intensity = None if os.fspath(name) in BUILTIN else card.intensity_mapping()
    ds = get_dataset(name, split=split, channel_mode=card.channel_mode, intensity=intensity)
    check_classes(card, ds, os.fspath(name), by_count=classes_by_count)
    return ds


def trained_on_data(card: ModelCard) -> str | None:
    """What to pass as --data to reach the model's training data: a built-in name, or the
    folder it was read from when that folder still exists."""
    trained = card.trained_on or {}
    name = trained.get("name")
    root = (trained.get("source") or {}).get("root")
    if name not in BUILTIN and root and Path(root).is_dir():
        return str(root)
    return name


def check_classes(card: ModelCard, ds: SegmentationDataset, name: str, *,
                  by_count: bool = False) -> None:
    """Refuse data whose classes differ from the model's, naming both lists.

    Equal names pass. Names made from mask ids ("class_0", ...) pass when the model's first
    names are the same (a model trained with a larger --num-classes). `by_count` accepts
    different names when the counts are equal (the same ids meaning the same classes)."""
    model, found = list(card.classes), list(ds.classes)
    if found == model:
        return
    generic = all(n == f"class_{i}" for i, n in enumerate(found))
    if generic and len(found) <= len(model) and model[:len(found)] == found:
        return
    if by_count and len(found) == len(model):
        return
    same_count = len(found) == len(model)
    raise UsageError(
        f"dataset {name!r} has {len(found)} classes ({_names(found)}) but the model predicts "
        f"{len(model)} ({_names(model)})",
        expected="data with the model's classes",
        fix="pass the data the model was trained for with --data"
            + (", or --classes-by-count if the same ids mean the same classes under other "
               "names" if same_count else ""))


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")
