"""`nuclei`: the real 512x512 fluorescence image with 125 labelled nuclei shipped in stardist.

Binary task (mask > 0 -> nucleus). One image is split spatially so no pixel is in both splits:
the last column of 128-pixel tiles (x >= 384) is validation, 4 non-overlapping 128x128 tiles;
training tiles are 128x128 windows with stride 64 over the left 512x384 region (7 x 5 = 35
tiles, overlapping each other, never the validation column).

Intensities: the 1st..99.8th percentiles of the whole image map to 0..255.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
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
from segdeploy.imaging import IntensityMapping, percentile_window, window_to_uint8

CLASSES = ["background", "nucleus"]
TILE = 128
TRAIN_STRIDE = 64
VAL_X0 = 384  # the last column of 128-pixel tiles
PERCENTILES = (1.0, 99.8)
_FIX = "pip install --no-deps stardist (only its bundled sample files are used)"


@dataclass(frozen=True)
class _NucleiImage:
    image: np.ndarray  # H x W uint8
    mask: np.ndarray  # H x W uint8 in {0, 1}
    files: tuple[str, str]
    window: tuple[float, float]  # raw values mapped to 0 and 255


@functools.lru_cache(maxsize=1)
def _load_image() -> _NucleiImage:
    folder = package_dir("stardist", purpose="for the built-in 'nuclei' dataset", fix=_FIX)
    img_path = folder / "data" / "images" / "img2d.tif"
    mask_path = folder / "data" / "images" / "mask2d.tif"
    for p in (img_path, mask_path):
        if not p.is_file():
            raise DataError(f"the stardist install lacks its sample file {p}",
                            expected="stardist >= 0.8, which ships data/images/img2d.tif",
                            fix="pip install --no-deps --upgrade stardist")
    tifffile = require_reader("tifffile", purpose="to read the built-in 'nuclei' dataset")
    image = np.asarray(tifffile.imread(str(img_path)))
    labels = np.asarray(tifffile.imread(str(mask_path)))
    if image.shape != labels.shape or image.ndim != 2:
        raise DataError(f"stardist sample image {image.shape} and mask {labels.shape} differ",
                        expected="two 2-D arrays of the same size",
                        fix="reinstall stardist: pip install --no-deps --force-reinstall stardist")
    lo, hi = percentile_window(image, PERCENTILES)
    return _NucleiImage(window_to_uint8(image, lo, hi), (labels > 0).astype(np.uint8),
                        (str(img_path), str(mask_path)), (lo, hi))


def tile_origins(height: int, width: int, split: str) -> list[tuple[int, int]]:
    """(y, x) of the top-left corner of each tile of the split, row-major."""
    if split == "val":
        return [(y, VAL_X0) for y in range(0, height - TILE + 1, TILE)]
    return [(y, x) for y in range(0, height - TILE + 1, TRAIN_STRIDE)
            for x in range(0, VAL_X0 - TILE + 1, TRAIN_STRIDE)]


@functools.lru_cache(maxsize=1)
def _train_stats() -> tuple[list[float], list[float]]:
    # statistics over the training region itself, so overlapping tiles do not count twice
    return channel_stats([_load_image().image[:, :VAL_X0]])


class NucleiDataset(SegmentationDataset):
    """Tiles of the stardist fluorescence image, 2 classes, grey by default."""

    def __init__(self, split: str = "train", channel_mode: str | None = None,
                 intensity: IntensityMapping | dict[str, Any] | None = None):
        mode = check_channel_mode(channel_mode, "nuclei", allowed=("grey", "grey3"),
                                  default="grey")
        super().__init__("nuclei", split, mode)
        self._data = _load_image()
        self.origins = tile_origins(*self._data.image.shape, self.split)
        check_builtin_intensity("nuclei", self.intensity, intensity)

    @property
    def intensity(self) -> IntensityMapping:
        lo, hi = self._data.window
        return IntensityMapping.window(lo, hi, source=(
            f"stardist img2d.tif: its {PERCENTILES[0]:g}-{PERCENTILES[1]:g} percentiles"))

    @property
    def classes(self) -> list[str]:
        return list(CLASSES)

    def __len__(self) -> int:
        return len(self.origins)

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        y, x = self.origins[index]
        window = (slice(y, y + TILE), slice(x, x + TILE))
        return self._data.image[window].copy(), self._data.mask[window].copy()

    def _native_stats(self) -> tuple[list[float], list[float]]:
        return _train_stats()

    def _image_sizes(self) -> list[list[int]]:
        return [[TILE, TILE]]

    def _source(self) -> dict[str, Any]:
        return {"files": list(self._data.files), "stardist": package_version("stardist"),
                "tifffile": package_version("tifffile"),
                "tiles": f"{TILE}x{TILE}; val = column x >= {VAL_X0}; train stride "
                         f"{TRAIN_STRIDE} over x < {VAL_X0}"}
