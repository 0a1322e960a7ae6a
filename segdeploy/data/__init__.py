"""Datasets as numpy: built-in real data (`brain`, `nuclei`) and users' folders (plain / VOC).

    from segdeploy.data import get_dataset
    ds = get_dataset("brain", split="train")       # or "nuclei", or a folder path
    image, mask = ds[0]                             # HxWxC uint8, HxW uint8 (255 = ignore)

No torch here; nibabel / tifffile are imported only when a built-in dataset is first read.
"""

from __future__ import annotations

import os
from pathlib import Path

from segdeploy.data.base import CHANNEL_MODES, SPLITS, SegmentationDataset
from segdeploy.errors import DataError, UsageError
from segdeploy.manifest import ModelCard

BUILTIN = ("brain", "nuclei")

__all__ = ["BUILTIN", "CHANNEL_MODES", "SPLITS", "SegmentationDataset", "dataset_for_model",
           "get_dataset", "list_datasets"]


def list_datasets() -> list[str]:
    """Names of the built-in datasets."""
    return list(BUILTIN)


def get_dataset(name_or_path: str | os.PathLike[str], split: str = "train",
                channel_mode: str | None = None) -> SegmentationDataset:
    """A built-in dataset by name, else a folder (images/ + masks/ or VOC layout).

    Built-in names win over a folder of the same name in the working directory; pass
    `./brain` to read such a folder.
    """
    name = os.fspath(name_or_path)
    if name == "brain":
        from segdeploy.data.brain import BrainDataset

        return BrainDataset(split, channel_mode)
    if name == "nuclei":
        from segdeploy.data.nuclei import NucleiDataset

        return NucleiDataset(split, channel_mode)
    path = Path(name).expanduser()
    if not path.is_dir():
        raise DataError(f"unknown dataset {name!r}: not a built-in name and no such folder",
                        expected="one of " + ", ".join(BUILTIN) + ", or a folder with images/ "
                                 "+ masks/ or the VOC layout (JPEGImages/, SegmentationClass/)",
                        fix="check the spelling or the path")
    from segdeploy.data.folder import FolderDataset

    return FolderDataset(path, split, channel_mode)


def dataset_for_model(card: ModelCard, data: str | os.PathLike[str] | None = None,
                      split: str = "val") -> SegmentationDataset:
    """The dataset to score a model on: `data`, else the one its card says it was trained on,
    fed the way it was trained (channel mode) and checked against its classes."""
    name = data or (card.trained_on or {}).get("name")
    if not name:
        raise UsageError("the model does not say which dataset it was trained on",
                         fix="pass --data brain|nuclei|FOLDER")
    ds = get_dataset(name, split=split, channel_mode=card.channel_mode)
    if ds.num_classes > card.num_classes:
        raise UsageError(f"dataset {os.fspath(name)!r} has {ds.num_classes} classes but the "
                         f"model predicts {card.num_classes}",
                         fix="use the data the model was trained for (--data)")
    return ds
