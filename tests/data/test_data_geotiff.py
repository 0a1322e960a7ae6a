"""Float / int16 multi-band GeoTIFFs (what land-cover and remote-sensing tiles are): every
header check reads them, and a GDAL nodata value (tag 42113) stays out of the intensity
window, is fed as 0 and makes its mask pixels ignore (255)."""

from __future__ import annotations

import numpy as np
import pytest
from own_data_folders import NODATA, geotiff_bands, make_geotiff_folder, write_geotiff

from segdeploy.cli.predict import check_image_header
from segdeploy.data import folder_layout as fl
from segdeploy.data import get_dataset
from segdeploy.errors import DataError
from segdeploy.imaging import (
    IGNORE_INDEX,
    percentile_window,
    read_header,
    read_image,
    read_size,
)

pytest.importorskip("tifffile")


@pytest.fixture(scope="module")
def mri_bands():
    image, _ = get_dataset("brain", "val")[3]
    bands = geotiff_bands(image[:, :, 0])
    bands[:, :12] = NODATA
    return bands


@pytest.mark.parametrize("dtype, layout", [("float32", "contig"), ("float64", "contig"),
                                           ("int16", "contig"), ("float32", "separate"),
                                           ("float32", "4-band")])
def test_every_header_check_reads_multiband_geotiffs(tmp_path, mri_bands, dtype, layout):
    nodata = -9999.0 if dtype == "int16" else NODATA
    bands = (np.where(mri_bands == NODATA, nodata, mri_bands / 10).astype(np.int16)
             if dtype == "int16" else mri_bands.astype(dtype))
    kwargs = {}
    if layout == "separate":
        bands, kwargs = np.moveaxis(bands, 2, 0), {"planarconfig": "separate"}
    elif layout == "4-band":
        bands = np.concatenate([bands, bands[:, :, :1]], axis=2)
        kwargs = {"photometric": "minisblack", "planarconfig": "contig"}
    path = tmp_path / "tile.tif"
    write_geotiff(path, bands, nodata=nodata, **kwargs)
    h, w = mri_bands.shape[:2]
    header = read_header(path)
    assert (header.height, header.width, header.channels, header.nodata) == (h, w, "rgb", nodata)
    assert read_size(path) == fl.image_size(path) == (h, w)
    assert fl.native_mode(path) == "rgb"
    check_image_header(path)  # predict's check before any inference
    pixels = read_image(path, grey=False)
    assert pixels.shape == (h, w, 3)
    assert np.isnan(pixels[:, :12]).all() and np.isfinite(pixels[:, 12:]).all()


def test_a_tiff_with_more_bands_than_a_model_takes_is_refused_in_one_sentence(tmp_path):
    path = tmp_path / "six.tif"
    write_geotiff(path, np.ones((20, 24, 6), np.float32), photometric="minisblack",
                  planarconfig="contig")
    with pytest.raises(DataError, match="has 6 bands"):
        fl.image_size(path)


def test_nodata_is_not_the_low_end_of_the_window_and_its_mask_pixels_are_ignored(tmp_path):
    root = make_geotiff_folder(tmp_path / "geo", n=10)
    train = get_dataset(root, "train")
    window = train.intensity
    assert window.kind == "window"
    valid = np.concatenate([read_image(root / "images" / f"t{i:02d}.tif", grey=False)
                            .reshape(-1) for i in range(10) if i % 5 != 4])
    lo, hi = percentile_window(valid)
    assert window.low == pytest.approx(lo, rel=1e-3) and window.low > 0
    assert window.high == pytest.approx(hi, rel=1e-3)
    image, mask = train[0]
    assert (image[:, :10] == 0).all() and (mask[:, :10] == IGNORE_INDEX).all()
    assert (mask[20:, 20:] != IGNORE_INDEX).all()
    notes = [n for n in train.warnings if "nodata" in n]
    assert len(notes) == 1 and "-99999" in notes[0] and "ignored (255)" in notes[0]


def test_a_class_the_mask_gives_a_nodata_pixel_is_kept(tmp_path):
    from PIL import Image

    root = make_geotiff_folder(tmp_path / "geo", n=5)
    mask = np.asarray(Image.open(root / "masks" / "t00.png")).copy()
    mask[:4, :4] = 2  # someone labelled the border: the mask says otherwise
    Image.fromarray(mask, "L").save(root / "masks" / "t00.png")
    _, read = get_dataset(root, "train")[0]
    assert (read[:4, :4] == 2).all() and read[4, 4] == IGNORE_INDEX


def test_export_samples_from_a_folder_of_geotiffs_without_masks(tmp_path, mri_bands):
    """`segdeploy export model.ts --data tiles/` (FP16 ranges and check) reads them too."""
    pytest.importorskip("torch")
    from segdeploy.export.samples import sample_images
    from segdeploy.manifest import ModelCard

    folder = tmp_path / "tiles"
    folder.mkdir()
    for i in range(3):
        write_geotiff(folder / f"t{i}.tif", mri_bands[i * 8:])
    card = ModelCard(arch="user", num_classes=2, classes=["bg", "fg"], in_channels=3,
                     min_size=32, intensity={"kind": "window", "low": 150.0, "high": 2500.0})
    images, desc = sample_images(card, data=str(folder))
    assert len(images) == 3 and "no masks" in desc
    assert all(im.dtype == np.uint8 and im.shape[2] == 3 for im in images)
    assert (images[0][:, :12] == 0).all() and images[0][:, 12:].max() > 100
