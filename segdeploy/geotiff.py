"""TIFF reading beyond Pillow (numpy; tifffile lazily): the header and pixels of the float,
int16 and multi-band TIFFs Pillow refuses or narrows (GeoTIFF tiles, 16-bit RGB, planar
stacks), and GDAL's nodata value, read as NaN so that windows leave it out and it is fed as
0. `segdeploy.imaging` is the entry point; this module keeps it to one size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.errors import InputError

TIFF_SUFFIXES = (".tif", ".tiff")
#: GDAL's nodata TIFF tag (ASCII, e.g. "-99999")
GDAL_NODATA_TAG = 42113


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says: displayed size, grey or colour, GDAL nodata."""

    height: int
    width: int
    #: "grey" or "rgb" (what `read_image` returns without `grey=True`)
    channels: str
    #: the GDAL_NODATA tag's value (GeoTIFFs); pixels equal to it are read as NaN
    nodata: float | None = None


def parse_nodata(value: Any) -> float | None:
    """GDAL_NODATA is ASCII ("-99999", "nan"); None when absent, unparsable or NaN (NaN
    pixels are left out of windows and fed as 0 anyway)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    try:
        number = float(str(value).strip().strip("\x00").strip())
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def mark_nodata(a: np.ndarray, nodata: float | None) -> np.ndarray:
    """Pixels equal to the GDAL nodata value become NaN (as float32), so percentile windows
    leave them out and `window_to_uint8` feeds them as 0. 8-bit images stay as stored."""
    if nodata is None or a.dtype == np.uint8 or a.dtype.kind not in "iuf":
        return a
    hit = a == np.asarray(nodata).astype(a.dtype) if a.dtype.kind == "f" else a == nodata
    if not hit.any():
        return a
    out = a.astype(np.float32)
    out[hit] = np.nan
    return out


def nodata_pixels(pixels: np.ndarray) -> np.ndarray | None:
    """HxW bool of the pixels read as nodata (NaN in any channel); None when there are none."""
    if pixels.dtype.kind != "f":
        return None
    bad = np.isnan(pixels)
    bad = bad.any(axis=2) if bad.ndim == 3 else bad
    return bad if bad.any() else None


def has_tifffile() -> bool:
    import importlib.util

    return importlib.util.find_spec("tifffile") is not None


def tiff_header(path: Path) -> ImageHeader:
    """A TIFF's header via tifffile (no pixels decoded), checked as `read_tiff` checks."""
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        page = tif.pages[0]
        h, w = int(page.imagelength), int(page.imagewidth)
        samples = int(page.samplesperpixel)
        orientation = _tag_value(page, "Orientation", 1)
        nodata = parse_nodata(_tag_value(page, GDAL_NODATA_TAG, None))
    if samples not in (1, 3, 4):
        raise InputError(f"TIFF {path} has {samples} bands",
                         expected="1 (grey), 3 (RGB) or 4 (RGB + alpha/NIR, the 4th is "
                                  "dropped) bands",
                         fix="write the 1 or 3 bands the model takes, e.g. with "
                             "gdal_translate -b 1 -b 2 -b 3")
    if int(orientation) in (5, 6, 7, 8):
        h, w = w, h
    return ImageHeader(h, w, "grey" if samples == 1 else "rgb", nodata)


def _tag_value(page: Any, key: int | str, default: Any) -> Any:
    tag = page.tags.get(key)
    return default if tag is None else tag.value


def read_tiff(path: Path, grey: bool) -> np.ndarray:
    """TIFFs Pillow cannot decode (16-bit RGB, float RGB, channel-first), via tifffile, with
    the TIFF orientation tag applied as Pillow applies EXIF's and GDAL nodata read as NaN."""
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        page = tif.pages[0]
        a = np.asarray(page.asarray())
        orientation = int(_tag_value(page, "Orientation", 1))
        nodata = parse_nodata(_tag_value(page, GDAL_NODATA_TAG, None))
    a = np.squeeze(a)
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[2] not in (3, 4):
        a = np.moveaxis(a, 0, 2)  # channel-first stack
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
        raise InputError(f"TIFF {path} holds an array of shape {a.shape}",
                         expected="one 2-D grey or RGB image")
    a = mark_nodata(orient(a, orientation), nodata)
    if a.dtype.kind == "f" and a.dtype != np.float32:
        a = a.astype(np.float32)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if grey and a.ndim == 3:
        luma = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.clip(luma + 0.5, 0, 255).astype(np.uint8) if a.dtype == np.uint8 else luma
    if not grey and a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    return a


def orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF/TIFF orientation (1-8) to an HxW[xC] array, as ImageOps.exif_transpose."""
    ops = {2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
           5: lambda x: np.swapaxes(x, 0, 1),
           6: lambda x: np.swapaxes(x, 0, 1)[:, ::-1],
           7: lambda x: np.swapaxes(x, 0, 1)[::-1, ::-1],
           8: lambda x: np.swapaxes(x, 0, 1)[::-1]}
    op = ops.get(int(orientation))
    return np.ascontiguousarray(op(a)) if op else a
