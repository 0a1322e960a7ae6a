"""Folders of users' own data, written the way the tools write them (shared test helpers):
a CVAT "Segmentation mask 1.1" export, 16-bit TIFFs with hot pixels (tifffile)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_tiff_folder(root: Path, n: int = 10, hw=(48, 56), seed: int = 0) -> Path:
    """images/*.tif (16-bit microscope frames, exposure varying between frames, a few hot
    pixels at 65535) + masks/*.png (0 background, 1 cell)."""
    import tifffile

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        m = np.zeros(hw, np.uint8)
        y, x = 6 + 3 * (i % 5), 8 + 4 * (i % 4)
        m[y:y + hw[0] // 3, x:x + hw[1] // 3] = 1
        m[hw[0] - 12:hw[0] - 4, 4:12 + i] = 1
        gain = 1.0 + 0.15 * (i % 3)
        img = (900 + rng.integers(0, 500, hw) + 1500 * m.astype(np.int64)) * gain
        img = img.astype(np.uint16)
        img[rng.integers(0, hw[0], 4), rng.integers(0, hw[1], 4)] = 65535  # hot pixels
        tifffile.imwrite(root / "images" / f"f{i:02d}.tif", img)
        Image.fromarray(m, "L").save(root / "masks" / f"f{i:02d}.png")
    return root


COLOURS = {"background": (0, 0, 0), "left": (250, 50, 83), "right": (36, 179, 83)}
LABELMAP = "# label:color_rgb:parts:actions\n" + "".join(
    f"{name}:{r},{g},{b}::\n" for name, (r, g, b) in COLOURS.items())


def ids(i: int, hw=(32, 40)) -> np.ndarray:
    m = np.zeros(hw, np.uint8)
    m[4:20, 2:14 + i % 4] = 1
    m[6:24, 22:34] = 2
    return m


def make_cvat(root: Path, n: int = 7, colours=COLOURS) -> Path:
    """What CVAT writes for "Export dataset -> Segmentation mask 1.1" with images saved."""
    for d in ("JPEGImages", "SegmentationClass", "SegmentationObject",
              "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    (root / "labelmap.txt").write_text(LABELMAP)
    rng = np.random.default_rng(0)
    palette = np.array(list(colours.values()), np.uint8)
    names = [f"frame_{i:06d}" for i in range(n)]
    for i, name in enumerate(names):
        m = ids(i)
        img = (rng.integers(0, 60, (*m.shape, 3)) + 80 * m[:, :, None]).astype(np.uint8)
        Image.fromarray(img).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
        Image.fromarray(palette[m]).save(root / "SegmentationClass" / f"{name}.png")
        Image.fromarray(palette[m]).save(root / "SegmentationObject" / f"{name}.png")
    (root / "ImageSets/Segmentation/default.txt").write_text("\n".join(names) + "\n")
    return root


NODATA = -99999.0


def geotiff_bands(slice_u8: np.ndarray) -> np.ndarray:
    """HxWx3 float32 'reflectances' from an MRI slice: three bands on different scales."""
    v = slice_u8.astype(np.float32) * np.float32(7.3) + np.float32(200.0)
    return np.stack([v, v * np.float32(0.8) + 30, v * np.float32(1.2) - 20], axis=2)


def write_geotiff(path: Path, bands: np.ndarray, nodata: float | None = NODATA,
                  **kwargs) -> None:
    """A multi-band GeoTIFF as GDAL writes one: the GDAL_NODATA tag (42113) as ASCII."""
    import tifffile

    tags = [] if nodata is None else [(42113, "s", 0, f"{nodata:g}", True)]
    if bands.ndim == 3 and 3 in (bands.shape[0], bands.shape[2]):
        kwargs.setdefault("photometric", "rgb")
    tifffile.imwrite(path, bands, extratags=tags, **kwargs)


def make_geotiff_folder(root: Path, n: int = 14) -> Path:
    """images/*.tif (float32 3-band tiles of two sizes cut from brain MRI slices, a nodata
    border of -99999 of varying width, as tiles at a scene's edge have) + masks/*.png (the
    slices' tissue classes, 0 under the nodata border)."""
    from segdeploy.data import get_dataset

    brain = get_dataset("brain", "train")
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    picks = np.linspace(len(brain) * 0.25, len(brain) * 0.75, n).round().astype(int)
    for i, k in enumerate(picks):
        image, mask = brain[int(k)]
        h, w = (120, 136) if i % 2 else (133, 150)
        y0, x0 = (197 - h) // 2 + (i % 3) * 4, (233 - w) // 2
        bands = geotiff_bands(image[y0:y0 + h, x0:x0 + w, 0])
        m = mask[y0:y0 + h, x0:x0 + w].copy()
        edge = 10 + 3 * (i % 4)
        bands[:, :edge] = NODATA
        bands[:edge // 2] = NODATA
        m[:, :edge], m[:edge // 2] = 0, 0
        write_geotiff(root / "images" / f"t{i:02d}.tif", bands)
        Image.fromarray(m, "L").save(root / "masks" / f"t{i:02d}.png")
    return root
