"""A user's own data: a folder of images + PNG masks (plain, VOC or CVAT layout).

Class names, in this order of precedence:

- `labelmap.txt` (CVAT's export; colour masks are mapped to ids by its colours);
- `classes.txt` (one name per line, id = line number);
- the VOC layout gets VOC's 21 names only when the masks really use VOC's ids (id 20 is
  present); otherwise every folder gets names from the ids found: "class_0".. up to the
  largest id. When the ids are sparse (one stray pixel of 200 would make a 201-class model)
  `warnings` says so, naming a mask that holds the largest id.

That scan decodes every mask, so it runs only when `classes` is first asked for, over all
labelled masks (both splits agree), once per process.

Intensities: 8-bit images are used as stored; 16-bit / float images are mapped to 0..255 by
`intensity` (imaging.IntensityMapping): the window between the 0.5th and 99.5th percentiles
of the training split's pixels, unless a mapping is given (a model's card, or a fixed
`--intensity-window`). mean/std come from the training split (up to 200 evenly spaced
images) after that mapping, computed on first use.

GeoTIFFs with a GDAL nodata value (tag 42113): the decoder reads those pixels as NaN, so
the window leaves them out and they are fed as 0; their mask pixels become 255 (ignore)
unless the mask gives them a class other than 0 (background, the usual fill). `warnings`
says so once.
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
from segdeploy.geotiff import nodata_pixels
from segdeploy.imaging import (
    DEFAULT_PERCENTILES,
    IGNORE_INDEX,
    IntensityMapping,
    as_intensity,
    percentile_window,
)

STATS_MAX_IMAGES = 200
#: pixels sampled per image when measuring the training split's intensity window
WINDOW_SAMPLES = 1 << 18
#: an id holding less than this share of the labelled pixels is called stray in warnings
STRAY_SHARE = 1e-4


@functools.lru_cache(maxsize=16)
def _window(images: tuple[Path, ...], grey: bool) -> IntensityMapping:
    """uint8 when every sampled training image is 8-bit; else the percentile window of
    their pixels (sampled evenly, at most WINDOW_SAMPLES per image)."""
    samples: list[np.ndarray] = []
    wide = 0
    reads = (fl.read_raw_image(p, grey) for p in images)
    for a in fl.progress(reads, len(images), "Measuring the intensity window"):
        if a.dtype == np.uint8:
            samples.append(a.ravel()[:: max(1, a.size // WINDOW_SAMPLES)])
            continue
        wide += 1
        samples.append(a.ravel()[:: max(1, a.size // WINDOW_SAMPLES)].astype(np.float64))
    if not wide:
        return IntensityMapping("uint8", source="8-bit training images, fed as stored")
    lo, hi = percentile_window(np.concatenate(samples), DEFAULT_PERCENTILES)
    if not hi > lo:
        hi = lo + 1.0
    p0, p1 = DEFAULT_PERCENTILES
    return IntensityMapping.window(lo, hi, source=f"{p0:g}-{p1:g} percentiles of the pixels of "
                                   f"{len(images)} training images")


@functools.lru_cache(maxsize=16)
def _stats(images: tuple[Path, ...], grey: bool, intensity: IntensityMapping
           ) -> tuple[list[float], list[float]]:
    reads = (intensity.apply(fl.read_raw_image(p, grey)) for p in images)
    return channel_stats(list(fl.progress(reads, len(images), "Computing mean/std")))


class FolderDataset(SegmentationDataset):
    """Image/mask pairs from a folder; `describe()` records the layout and split source."""

    def __init__(self, root: str | Path, split: str = "train", channel_mode: str | None = None,
                 intensity: IntensityMapping | dict[str, Any] | None = None):
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
        self._classes: list[str] | None = None
        if self.layout.labelmap is not None:
            self._classes = list(self.layout.labelmap.names)
        elif self._classes_file is not None:
            self._classes = list(self._classes_file)
        self._intensity = as_intensity(intensity) if intensity is not None else None
        self._warnings: list[str] | None = None
        self._sizes: list[list[int]] | None = None

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def classes_from(self) -> str:
        if self.layout.labelmap is not None:
            return fl.LABELMAP
        if self._classes_file is not None:
            return "classes.txt"
        return "VOC ids" if self.classes == fl.VOC_CLASSES else "mask ids"

    @property
    def classes(self) -> list[str]:
        if self._classes is None:
            self._classes = self._scan_classes()
        return list(self._classes)

    @property
    def warnings(self) -> list[str]:
        """Things about the data a person should know before training on it (one sentence
        each): sparse class ids, labelmap colours no mask uses, nodata (see also split_note)."""
        if self._warnings is None:
            self._warnings = self._check_ids()
            self._warnings.extend(self._nodata_note())
        return list(self._warnings)

    @property
    def split_note(self) -> str | None:
        """How segdeploy split a folder that has no split files (None when files gave it):
        `train` says it once, with the counts and the rule."""
        return fl.split_note(self.layout)

    def _nodata_note(self) -> list[str]:
        """One sentence when images carry a GDAL nodata value (TIFF headers only)."""
        tiffs = [p.image for p in self.layout.pairs.values()
                 if p.image.suffix.lower() in (".tif", ".tiff")]
        values = {h.nodata for h in map(fl.image_header, tiffs) if h.nodata is not None}
        if not values:
            return []
        shown = ", ".join(f"{v:g}" for v in sorted(values))
        return [f"images carry a GDAL nodata value ({shown}): those pixels are left out of the "
                "intensity window, fed as 0, and their mask pixels are ignored (255) unless "
                "the mask gives them a class other than 0"]

    def _scan(self) -> fl.MaskScan:
        masks = tuple(p.mask for p in self.layout.pairs.values())
        return fl.scan_masks(masks, self.layout.labelmap)

    def _scan_classes(self) -> list[str]:
        top = self._scan().top
        if top <= 0:
            raise DataError(f"every mask in {self.root} is background (0) or ignore (255)",
                            expected="class ids 1.. for the objects to segment",
                            fix="masks hold class indices: a binary mask saved as 0/255 must "
                                "be saved as 0/1 (255 means ignore)")
        if self.layout.kind == "voc" and top == len(fl.VOC_CLASSES) - 1:
            return list(fl.VOC_CLASSES)
        return [f"class_{i}" for i in range(top + 1)]

    def _check_ids(self) -> list[str]:
        scan = self._scan()
        notes: list[str] = []
        labelmap = self.layout.labelmap
        if labelmap is not None:
            unused = [f"{n} ({','.join(map(str, c))})" for i, (n, c)
                      in enumerate(zip(labelmap.names, labelmap.colours, strict=True))
                      if scan.counts[i] == 0]
            if unused:
                notes.append(f"{labelmap.path.name} lists {', '.join(unused)}, which no mask "
                             "uses: the model gets the class but never sees an example")
            return notes
        if self._classes_file is not None:
            top = scan.top
            if top >= len(self._classes_file):
                raise DataError(f"mask {scan.first[top]} holds class id {top} but "
                                f"classes.txt lists {len(self._classes_file)} classes",
                                expected=f"ids 0..{len(self._classes_file) - 1} or 255 "
                                         "(ignore)",
                                fix="add the missing class names to classes.txt or fix the "
                                    "mask")
        used, top = scan.used, scan.top
        if top < 1 or len(used) == top + 1:
            return notes
        labelled = max(int(scan.counts[:IGNORE_INDEX].sum()), 1)
        shown = ", ".join(map(str, used[:8])) + (", ..." if len(used) > 8 else "")
        share = scan.counts[top] / labelled
        stray = (f"; id {top} has {int(scan.counts[top])} pixel(s) ({share:.3%}), e.g. in "
                 f"{scan.first[top].name}" if share < STRAY_SHARE or len(used) * 4 < top else "")
        notes.append(f"class ids are sparse: the masks use {len(used)} of the ids 0..{top} "
                     f"({shown}), so the model gets {top + 1} classes{stray}. Remap the ids "
                     "to 0..N-1, set stray pixels to 255 (ignore), or name the classes in "
                     "classes.txt")
        return notes

    @property
    def intensity(self) -> IntensityMapping:
        if self._intensity is None:
            self._intensity = _window(self._train_sample(), self.channel_mode != "rgb")
        return self._intensity

    def __len__(self) -> int:
        return len(self.stems)

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        pair = self.layout.pairs[self.stems[index]]
        raw = fl.read_raw_image(pair.image, self.channel_mode != "rgb")
        image = self.intensity.apply(raw)
        mask = fl.read_mask(pair.mask, self.layout.labelmap)
        nodata = nodata_pixels(raw)
        if nodata is not None and nodata.shape == mask.shape:
            mask = np.where(nodata & (mask == 0), np.uint8(IGNORE_INDEX), mask)
        if image.shape[:2] != mask.shape:
            raise DataError(f"image {pair.image} is {image.shape[1]}x{image.shape[0]} but its "
                            f"mask {pair.mask} is {mask.shape[1]}x{mask.shape[0]} (WxH)",
                            expected="a mask of exactly the image's size",
                            fix="re-export the mask at the image's size (nearest-neighbour)")
        names = self._classes_file if self.layout.labelmap is None else None
        if names is not None:
            bad = mask[(mask >= len(names)) & (mask != IGNORE_INDEX)]
            if bad.size:
                raise DataError(f"mask {pair.mask} holds class id {int(bad.max())} but "
                                f"classes.txt lists {len(names)} classes",
                                expected=f"ids 0..{len(names) - 1} or 255 (ignore)",
                                fix="add the missing class names to classes.txt or fix the mask")
        return image, mask

    def _train_sample(self) -> tuple[Path, ...]:
        train = fl.split_stems(self.layout, "train")
        step = max(1, len(train) // STATS_MAX_IMAGES)
        return tuple(self.layout.pairs[s].image for s in train[::step][:STATS_MAX_IMAGES])

    def _native_stats(self) -> tuple[list[float], list[float]]:
        return _stats(self._train_sample(), self.channel_mode != "rgb", self.intensity)

    def _image_sizes(self) -> list[list[int]]:
        if self._sizes is None:
            sizes = {fl.image_size(self.layout.pairs[s].image) for s in self.stems}
            self._sizes = [list(s) for s in sorted(sizes)]
        return self._sizes

    def _source(self) -> dict[str, Any]:
        return {"root": str(self.root.resolve()), "layout": self.layout.kind,
                "labelled_images": len(self.layout.pairs),
                "unlabelled_images": self.layout.unlabelled,
                "split_from": fl.split_description(self.layout, self.split),
                "classes_from": self.classes_from,
                "pillow": package_version("pillow")}
