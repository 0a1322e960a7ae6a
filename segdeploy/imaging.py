"""Torch-free image helpers shared by data, runtime and CLI: the one image decoder, the
intensity mapping of a model card, normalisation, palettes, overlays.

Every image file segdeploy reads (datasets, `segdeploy predict`, the examples) goes through
`read_image` / `load_image`: Pillow decodes it (tifffile, when installed, for TIFFs Pillow
cannot: 16-bit RGB, float RGB, channel-first stacks), its EXIF orientation is applied (so
masks and overlays match what an image viewer shows), and pixels wider than 8 bits are
mapped to 0..255 by the model card's `IntensityMapping`, the same way in training, eval,
verify, predict and `Segmenter.predict`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.errors import InputError
from segdeploy.geotiff import (
    GDAL_NODATA_TAG,
    TIFF_SUFFIXES,
    ImageHeader,
    has_tifffile,
    mark_nodata,
    parse_nodata,
    read_tiff,
    tiff_header,
)
from segdeploy.geotiff import orient as orient  # re-exported: the decoder's orientation rule

IGNORE_INDEX = 255
#: image files datasets and sample folders read (predict also takes Netpbm, see cli/predict.py)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Pillow modes whose pixels are wider than 8 bits (read as uint16 / int32 / float32)
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
#: Pillow modes read as one grey channel
GREY_MODES = ("L", "LA", "1", "La", *WIDE_MODES)

#: percentiles of the default window: robust to a few hot or dead pixels
DEFAULT_PERCENTILES = (0.5, 99.5)
INTENSITY_KINDS = ("uint8", "window", "per-image")


@dataclass(frozen=True)
class IntensityMapping:
    """How raw pixels become the 0..255 values a model saw in training (part of its card).

    - "uint8": the training images were 8-bit and fed as stored. 8-bit input passes as is;
      wider input (16-bit, float) is stretched by its own `percentiles`.
    - "window": raw values `low`..`high` map linearly onto 0..255 (clipped), for 16-bit and
      float data: the window measured on the training split (its `percentiles` of all
      training pixels), or a fixed one given by the user (`--intensity-window LO,HI`, CT/MRI).
    - "per-image": each 16-bit/float image stretched by its own `percentiles` (how segdeploy
      read 16-bit folders before the mapping was recorded; cards without one read as this).

    uint8 images are taken to be on the model's scale already and pass as is, except with
    `raw=True` (volumes: their voxels are raw whatever their type), where a window applies
    to them too.
    """

    kind: str = "uint8"
    low: float | None = None
    high: float | None = None
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    #: how the mapping was chosen, for people reading the card
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in INTENSITY_KINDS:
            raise InputError(f"unknown intensity mapping {self.kind!r}",
                             expected="one of " + ", ".join(INTENSITY_KINDS))
        if self.kind == "window":
            if self.low is None or self.high is None or not float(self.high) > float(self.low):
                raise InputError(f"intensity window {self.low}..{self.high} is empty",
                                 expected="LO,HI with HI > LO, e.g. --intensity-window -100,300")
        lo, hi = self.percentiles
        if not 0.0 <= float(lo) < float(hi) <= 100.0:
            raise InputError(f"intensity percentiles {lo}, {hi}",
                             expected="0 <= low < high <= 100")

    # -- the card's plain-JSON form --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind,
                               "percentiles": [float(p) for p in self.percentiles]}
        if self.kind == "window":
            out["low"], out["high"] = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.source:
            out["source"] = self.source
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> IntensityMapping:
        """The card's `intensity`; an empty one (cards written before it was recorded) is the
        per-image stretch those versions applied when reading 16-bit/float folders."""
        if not data:
            return LEGACY_INTENSITY
        pct = data.get("percentiles") or DEFAULT_PERCENTILES
        return cls(kind=str(data.get("kind", "uint8")),
                   low=None if data.get("low") is None else float(data["low"]),
                   high=None if data.get("high") is None else float(data["high"]),
                   percentiles=(float(pct[0]), float(pct[1])), source=str(data.get("source", "")))

    @classmethod
    def window(cls, low: float, high: float, source: str = "") -> IntensityMapping:
        return cls("window", float(low), float(high), source=source)

    def describe(self) -> str:
        lo, hi = self.percentiles
        if self.kind == "window":
            text = f"window {self.low:g}..{self.high:g} -> 0..255"
        elif self.kind == "per-image":
            text = f"each 16-bit/float image's {lo:g}-{hi:g} percentiles -> 0..255"
        else:
            text = f"8-bit as stored (wider images: their own {lo:g}-{hi:g} percentiles)"
        return text + (f" ({self.source})" if self.source else "")

    # -- applying it -----------------------------------------------------------------------
    def apply(self, pixels: np.ndarray, *, raw: bool = False) -> np.ndarray:
        """uint8 pixels of the same shape: uint8 input as is (unless `raw` and a window),
        wider input mapped."""
        a = np.asarray(pixels)
        if a.dtype == np.uint8 and not (raw and self.kind == "window"):
            return a
        if a.dtype == np.bool_:
            return a.astype(np.uint8) * np.uint8(255)
        if a.dtype.kind not in "iuf":
            raise InputError(f"image has dtype {a.dtype}",
                             expected="uint8, uint16, integer or float pixels")
        if self.kind == "window":
            return window_to_uint8(a, float(self.low), float(self.high))  # type: ignore[arg-type]
        return window_to_uint8(a, *percentile_window(a, self.percentiles))

    def for_volume(self, volume: np.ndarray) -> IntensityMapping:
        """The mapping to apply to every slice of a volume: a window as is; otherwise one
        window from the whole volume's percentiles, so all slices share one scale."""
        if self.kind == "window" or np.asarray(volume).dtype == np.uint8:
            return self  # a uint8 volume without a window is on the 0..255 scale already
        lo, hi = percentile_window(volume, self.percentiles)
        return IntensityMapping.window(lo, hi, source=f"{self.percentiles[0]:g}-"
                                       f"{self.percentiles[1]:g} percentiles of this volume")


#: what a card without a recorded mapping means (see IntensityMapping.from_dict)
LEGACY_INTENSITY = IntensityMapping("per-image", source="not recorded in this artifact")


def percentile_window(values: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
                      ) -> tuple[float, float]:
    """(low, high) values at the given percentiles of the finite values (0, 1 when empty)."""
    v = np.asarray(values)
    v = v[np.isfinite(v)] if v.dtype.kind == "f" else v
    if not v.size:
        return 0.0, 1.0
    lo, hi = np.percentile(v, list(percentiles))
    return float(lo), float(hi)


def window_to_uint8(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly onto 0..255, rounding to nearest, clipping outside (NaN -> 0)."""
    scale = np.float32(255.0 / max(float(high) - float(low), 1e-6))
    y = (np.asarray(x, dtype=np.float32) - np.float32(low)) * scale
    y = np.nan_to_num(y + np.float32(0.5), nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(y, 0, 255).astype(np.uint8)


def as_intensity(value: IntensityMapping | dict[str, Any] | None) -> IntensityMapping:
    if isinstance(value, IntensityMapping):
        return value
    return IntensityMapping.from_dict(value)


# -- the decoder ---------------------------------------------------------------------------
def read_image(path: str | os.PathLike[str], *, grey: bool) -> np.ndarray:
    """The pixels of an image file as stored, EXIF orientation applied: HxW (grey) or HxWx3.

    8-bit images come back as uint8 (colour converted by Pillow: grey from colour by ITU-R
    601 luma, RGB from palette / grey / RGBA); 16-bit and float images keep their dtype
    (uint16, int32, float32) for the intensity mapping to scale. Unreadable files raise
    InputError naming the file.
    """
    import warnings

    from PIL import Image

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # large images are what --tile / the memory budget are for; Pillow's warning
            # would print two raw lines. Its hard limit (DecompressionBombError) stays.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _decode(path, grey)
    except Image.DecompressionBombError:
        raise InputError(f"image {path} has more pixels than Pillow decodes safely",
                         expected=f"at most {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels",
                         fix="split the image into parts, or check it is not a "
                             "decompression bomb") from None


def _decode(path: Path, grey: bool) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if _pillow_narrows(img):  # 16-bit / float colour TIFF: Pillow keeps 8 bits
                if not has_tifffile():
                    raise InputError(f"{path} is a colour TIFF with more than 8 bits per "
                                     "sample, which Pillow reads only as 8 bits",
                                     fix="pip install tifffile")
                return read_tiff(path, grey)
            try:
                img = ImageOps.exif_transpose(img)
                img.load()
            except OSError:
                if path.suffix.lower() in TIFF_SUFFIXES and has_tifffile():
                    return read_tiff(path, grey)
                raise
            return mark_nodata(_pixels(img, grey), _pillow_nodata(img))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if path.suffix.lower() in TIFF_SUFFIXES and has_tifffile() and path.is_file():
            try:
                return read_tiff(path, grey)
            except Exception:  # noqa: BLE001 - report Pillow's error, the usual reader
                pass
        raise InputError(f"cannot read image {path} ({exc})",
                         expected="a PNG, JPEG, BMP or TIFF image",
                         fix="check the file is complete, or convert it") from None


def load_image(path: str | os.PathLike[str], *, channels: int,
               intensity: IntensityMapping | dict[str, Any] | None = None) -> np.ndarray:
    """An image file as the model takes it: HxWx`channels` uint8, EXIF orientation applied,
    16-bit / float pixels mapped by the card's intensity mapping (`card.intensity`)."""
    pixels = read_image(path, grey=channels == 1)
    mapped = as_intensity(intensity if intensity is not None else {"kind": "uint8"}).apply(pixels)
    return as_hwc_uint8(mapped, channels)


def read_header(path: str | os.PathLike[str]) -> ImageHeader:
    """The header of an image file, without decoding pixels: Pillow, then tifffile for the
    TIFFs Pillow refuses (float / int16 multi-band GeoTIFFs), so every size and channel
    check accepts what `read_image` decodes."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            h, w = img.height, img.width
            if exif_orientation(img) in (5, 6, 7, 8):
                h, w = w, h
            return ImageHeader(h, w, _pillow_channels(img), _pillow_nodata(img))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if path.suffix.lower() in TIFF_SUFFIXES and has_tifffile() and path.is_file():
            try:
                return tiff_header(path)
            except InputError:
                raise
            except Exception:  # noqa: BLE001 - report Pillow's error, the usual reader
                pass
        raise InputError(f"cannot read image {path} ({exc})",
                         expected="a PNG, JPEG, BMP or TIFF image",
                         fix="check the file is complete, or convert it") from None


def read_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(H, W) as displayed (EXIF orientation applied), from the header only."""
    header = read_header(path)
    return header.height, header.width


def native_channels(path: str | os.PathLike[str]) -> str:
    """'grey' or 'rgb' for an image file, from its header only."""
    return read_header(path).channels


def _pillow_channels(img: Any) -> str:
    if img.mode in GREY_MODES:
        return "grey"
    if img.mode == "P":  # a palette of greys is a grey image
        pal = np.asarray(img.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
        return "grey" if pal.size and (pal == pal[:, :1]).all() else "rgb"
    return "rgb"


def _pillow_nodata(img: Any) -> float | None:
    if getattr(img, "format", None) != "TIFF":
        return None
    return parse_nodata(getattr(img, "tag_v2", {}).get(GDAL_NODATA_TAG))


def exif_orientation(img: Any) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is no orientation
        return 1


def _pixels(img: Any, grey: bool) -> np.ndarray:
    if img.mode in WIDE_MODES:
        a = np.asarray(img)
        a = a.astype(a.dtype.newbyteorder("=")) if not a.dtype.isnative else a
        if a.dtype == np.int32 and a.size and a.min() >= 0 and a.max() <= 65535:
            a = a.astype(np.uint16)  # 16-bit PNGs open as mode "I"
        return a if grey else np.repeat(a[:, :, None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return np.asarray(img.convert("L" if grey else "RGB"))


def _pillow_narrows(img: Any) -> bool:
    """True for a TIFF whose samples are wider than Pillow's mode for it (16-bit RGB)."""
    if getattr(img, "format", None) != "TIFF" or img.mode in WIDE_MODES:
        return False
    bits = getattr(img, "tag_v2", {}).get(258, 8)  # BitsPerSample
    bits = bits if isinstance(bits, tuple) else (bits,)
    return max(int(b) for b in bits) > 8


def as_hwc_uint8(image: np.ndarray, channels: int) -> np.ndarray:
    """Accept HxW or HxWxC uint8 and return HxWx`channels`, replicating grey when asked."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image is a {type(image).__name__}", expected="a numpy array")
    if image.dtype != np.uint8:
        raise InputError(f"image has dtype {image.dtype}", expected="uint8 pixels (0-255)",
                         fix="convert with np.clip(img, 0, 255).astype(np.uint8)")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise InputError(f"image has shape {image.shape}", expected="HxW or HxWxC")
    if min(image.shape) < 1:
        raise InputError(f"image has shape {image.shape} (no pixels)",
                         expected="height, width and channels of at least 1",
                         fix="check the image was decoded or cropped correctly")
    c = image.shape[2]
    if c == channels:
        return image
    if c == 1 and channels == 3:
        return np.repeat(image, 3, axis=2)
    if c == 4 and channels == 3:
        return image[:, :, :3]
    if c == 3 and channels == 1:
        raise InputError("image has 3 channels but the model takes 1 (grey)",
                         fix="pass a single-channel image (e.g. PIL .convert('L'))")
    raise InputError(f"image has {c} channels", expected=f"{channels} channels")


def normalize(image: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """HxWxC uint8 -> CxHxW float32, (x / 255 - mean) / std per channel."""
    x = image.astype(np.float32) * np.float32(1.0 / 255.0)
    x -= np.asarray(mean, dtype=np.float32)
    x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (n x 3 uint8): class 0 black, 255 (ignore) white-ish."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def colorize(mask: np.ndarray) -> np.ndarray:
    """HxW class ids -> HxWx3 uint8 colours (VOC palette)."""
    return voc_palette()[np.asarray(mask, dtype=np.int64) % 256]


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the mask's colours over an HxWx{1,3} uint8 image; background pixels stay as is."""
    rgb = as_hwc_uint8(image, 3).astype(np.float32)
    colours = colorize(mask).astype(np.float32)
    fg = (mask > 0)[:, :, None]
    out = np.where(fg, (1 - alpha) * rgb + alpha * colours, rgb)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def save_mask_png(path: str, mask: np.ndarray) -> None:
    """Write class ids as a palette PNG (what VOC and most tools read)."""
    from PIL import Image

    from segdeploy.atomic import atomic_path

    if mask.max(initial=0) > 255:
        raise InputError("mask has class ids above 255", expected="at most 256 classes")
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    img.putpalette(voc_palette().reshape(-1).tolist())
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
