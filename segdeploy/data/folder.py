"""A user's own data: a folder of images + PNG masks (plain or VOC layout).

Class names come from `classes.txt` (one per line, id = line number) when present; otherwise
the VOC layout gets VOC's 21 names when every id fits, and other folders get "class_0".. up
to the largest id found. That scan decodes every mask, so it runs only when `classes` is first
asked for, over all labelled masks (both splits agree), once per process.

mean/std come from the training split (up to 200 evenly spaced images), computed on first use.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.data import folder_layout as fl
from segdeploy.data.base import (
    SegmentationDataset,
    channel_stats,
    check_channel_mode,
    check_split,
    package_version,
)
from segdeploy.errors import DataError
from segdeploy.imaging import IGNORE_INDEX

STATS_MAX_IMAGES = 200


@functools.lru_cache(maxsize=16)
def _max_class_id(masks: tuple[Path, ...]) -> int:
    ids = (fl.mask_max_id(p) for p in masks)
    return max(fl.progress(ids, len(masks), "Scanning masks for class ids"), default=-1)


@functools.lru_cache(maxsize=16)
def _stats(images: tuple[Path, ...], grey: bool) -> tuple[list[float], list[float]]:
    reads = (fl.read_image(p, grey) for p in images)
    return channel_stats(list(fl.progress(reads, len(images), "Computing mean/std")))


class FolderDataset(SegmentationDataset):
    """Image/mask pairs from a folder; `describe()` records the layout and split source."""

    def __init__(self, root: str | Path, split: str = "train", channel_mode: str | None = None):
        root = Path(root).expanduser()
        check_split(split, str(root))
        self.layout = fl.discover(root)
        self.stems = fl.split_stems(self.layout, split)
        fl.check_split_not_empty(self.stems, split, root)
        first = next(iter(self.layout.pairs.values()))
        mode = check_channel_mode(channel_mode, str(root), allowed=("grey", "grey3", "rgb"),
                                  default=fl.native_mode(first.image))
        super().__init__(root.resolve().name, split, mode)
        self._classes_file = fl.read_classes_file(root / "classes.txt")
        self._classes: list[str] | None = self._classes_file
        self._sizes: list[list[int]] | None = None

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def classes(self) -> list[str]:
        if self._classes is None:
            self._classes = self._scan_classes()
        return list(self._classes)

    def _scan_classes(self) -> list[str]:
        masks = tuple(p.mask for p in self.layout.pairs.values())
        top = _max_class_id(masks)
        if top <= 0:
            raise DataError(f"every mask in {self.root} is background (0) or ignore (255)",
                            expected="class ids 1.. for the objects to segment",
                            fix="masks hold class indices: a binary mask saved as 0/255 must "
                                "be saved as 0/1 (255 means ignore)")
        if self.layout.kind == "voc" and top < len(fl.VOC_CLASSES):
            return list(fl.VOC_CLASSES)
        return [f"class_{i}" for i in range(top + 1)]

    def __len__(self) -> int:
        return len(self.stems)

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        pair = self.layout.pairs[self.stems[index]]
        image = fl.read_image(pair.image, self.channel_mode != "rgb")
        mask = fl.read_mask(pair.mask)
        if image.shape[:2] != mask.shape:
            raise DataError(f"image {pair.image} is {image.shape[1]}x{image.shape[0]} but its "
                            f"mask {pair.mask} is {mask.shape[1]}x{mask.shape[0]} (WxH)",
                            expected="a mask of exactly the image's size",
                            fix="re-export the mask at the image's size (nearest-neighbour)")
        if self._classes_file is not None:
            bad = mask[(mask >= len(self._classes_file)) & (mask != IGNORE_INDEX)]
            if bad.size:
                raise DataError(f"mask {pair.mask} holds class id {int(bad.max())} but "
                                f"classes.txt lists {len(self._classes_file)} classes",
                                expected=f"ids 0..{len(self._classes_file) - 1} or 255 (ignore)",
                                fix="add the missing class names to classes.txt or fix the mask")
        return image, mask

    def _native_stats(self) -> tuple[list[float], list[float]]:
        train = fl.split_stems(self.layout, "train")
        step = max(1, len(train) // STATS_MAX_IMAGES)
        images = tuple(self.layout.pairs[s].image for s in train[::step][:STATS_MAX_IMAGES])
        return _stats(images, self.channel_mode != "rgb")

    def _image_sizes(self) -> list[list[int]]:
        if self._sizes is None:
            sizes = {fl.image_size(self.layout.pairs[s].image) for s in self.stems}
            self._sizes = [list(s) for s in sorted(sizes)]
        return self._sizes

    def _source(self) -> dict[str, Any]:
        if self.layout.split_dir is not None:
            split_from = str(self.layout.split_dir / f"{self.split}.txt")
        else:
            split_from = f"sorted names, every {fl.VAL_EVERY}th is val"
        return {"root": str(self.root.resolve()), "layout": self.layout.kind,
                "labelled_images": len(self.layout.pairs),
                "unlabelled_images": self.layout.unlabelled, "split_from": split_from,
                "classes_from": "classes.txt" if self._classes_file else "mask ids",
                "pillow": package_version("pillow")}
