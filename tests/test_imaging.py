"""The one image decoder and the intensity mapping, on real files written the way tools
write them: 16-bit TIFFs with hot pixels (tifffile), EXIF-rotated phone JPEGs (Pillow)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segdeploy.errors import ArtifactError, InputError
from segdeploy.imaging import (
    LEGACY_INTENSITY,
    IntensityMapping,
    load_image,
    read_image,
    read_size,
    window_to_uint8,
)
from segdeploy.manifest import ExportInfo, ModelCard

tifffile = pytest.importorskip("tifffile")


def scan_16bit(seed: int = 0, hw=(48, 64), hot: int = 3) -> np.ndarray:
    """A microscope-like 16-bit frame: signal in 800..3000 and a few saturated hot pixels."""
    rng = np.random.default_rng(seed)
    img = (800 + rng.integers(0, 400, hw)).astype(np.uint16)
    img[10:30, 20:40] += 1800
    ys, xs = rng.integers(0, hw[0], hot), rng.integers(0, hw[1], hot)
    img[ys, xs] = 65535
    return img


def exif_jpeg(path, stored: np.ndarray, orientation: int = 6):
    """A JPEG as a phone writes it: pixels stored sideways, EXIF says how to turn them."""
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(path, quality=95, exif=exif.tobytes())
    return path


def test_16bit_tiff_keeps_its_values_and_hot_pixels_do_not_wreck_the_window(tmp_path):
    raw = scan_16bit()
    tifffile.imwrite(tmp_path / "scan.tif", raw)
    pixels = read_image(tmp_path / "scan.tif", grey=True)
    assert pixels.dtype == np.uint16 and (pixels == raw).all()
    window = IntensityMapping.window(800, 3000)
    mapped = load_image(tmp_path / "scan.tif", channels=1, intensity=window)
    assert mapped.shape == (48, 64, 1) and mapped.dtype == np.uint8
    assert (mapped[:, :, 0] == window_to_uint8(raw, 800, 3000)).all()
    # the per-image percentile stretch ignores the hot pixels; a min-max stretch would not
    per_image = IntensityMapping("per-image").apply(raw)
    assert per_image[20, 30] > 200 and np.median(per_image) < 120
    minmax = ((raw - raw.min()) / (raw.max() - raw.min()) * 255).astype(np.uint8)
    assert minmax[20, 30] < 15  # what `segdeploy predict` used to feed the model


def test_16bit_rgb_and_float_tiffs_and_channel_first(tmp_path):
    rgb = np.stack([scan_16bit(i) for i in range(3)], axis=2)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb, photometric="rgb")
    got = read_image(tmp_path / "rgb16.tif", grey=False)
    assert got.shape == (48, 64, 3) and got.dtype == np.uint16 and (got == rgb).all()
    grey = read_image(tmp_path / "rgb16.tif", grey=True)
    assert grey.shape == (48, 64) and grey.dtype == np.float32
    f = np.linspace(-1.0, 3.0, 48 * 64, dtype=np.float32).reshape(48, 64)
    tifffile.imwrite(tmp_path / "f.tif", f)
    got = read_image(tmp_path / "f.tif", grey=True)
    assert got.dtype == np.float32 and np.allclose(got, f)
    mapped = load_image(tmp_path / "f.tif", channels=3, intensity={"kind": "window",
                                                                  "low": -1.0, "high": 3.0})
    assert mapped.shape == (48, 64, 3) and mapped[0, 0, 0] == 0 and mapped[-1, -1, 2] == 255
    tifffile.imwrite(tmp_path / "chw.tif", np.moveaxis(rgb, 2, 0), photometric="minisblack")
    assert read_image(tmp_path / "chw.tif", grey=False).shape == (48, 64, 3)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_as_a_viewer_shows_it(tmp_path, orientation):
    shown = np.zeros((40, 60, 3), np.uint8)
    shown[:10, :20] = (250, 10, 10)  # a red block at the top-left of what a person sees
    stored = {3: np.rot90(shown, 2), 6: np.rot90(shown, 1), 8: np.rot90(shown, -1)}[orientation]
    path = exif_jpeg(tmp_path / "phone.jpg", np.ascontiguousarray(stored), orientation)
    assert Image.open(path).size == (stored.shape[1], stored.shape[0])  # stored sideways
    got = read_image(path, grey=False)
    assert got.shape == (40, 60, 3) and read_size(path) == (40, 60)
    assert got[:10, :20, 0].mean() > 200 and got[-10:, -20:, 0].mean() < 40


def test_8bit_images_decode_as_pillow_converts_them(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert (read_image(tmp_path / "a.png", grey=False) == rgb).all()
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    assert (load_image(tmp_path / "a.png", channels=1)[:, :, 0] == grey).all()
    # 8-bit pixels pass every mapping unchanged: they are on the model's scale already
    window = IntensityMapping.window(100, 200)
    assert (load_image(tmp_path / "a.png", channels=3, intensity=window) == rgb).all()


def test_unreadable_file_is_one_clear_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match="cannot read image .*bad.png"):
        read_image(tmp_path / "bad.png", grey=False)


def test_intensity_mapping_round_trips_through_card_and_onnx_metadata():
    window = IntensityMapping.window(-100, 300, source="--intensity-window")
    card = ModelCard(arch="unet", num_classes=2, classes=["bg", "fg"], in_channels=1,
                     mean=[0.5], std=[0.25], intensity=window.to_dict())
    assert card.intensity_mapping() == window
    info = ExportInfo(card=card)
    props = info.to_metadata_props()
    assert '"low": -100.0' in props["segdeploy.intensity"]
    back = ExportInfo.from_metadata_props(props)
    assert back.card.intensity_mapping() == window
    # artifacts written before the mapping was recorded still load, as the per-image
    # stretch their training applied to 16-bit folders
    old = card.to_dict()
    del old["intensity"]
    assert ModelCard.from_dict(old).intensity_mapping() == LEGACY_INTENSITY
    with pytest.raises(ArtifactError, match="intensity"):
        ModelCard.from_dict({**old, "intensity": {"kind": "window", "low": 5, "high": 5}})


def test_volume_mapping_is_one_window_for_all_slices():
    vol = np.random.default_rng(0).normal(100, 20, (4, 16, 16)).astype(np.float32)
    vol[0] += 500  # a bright slice must not be stretched on its own
    m = IntensityMapping("uint8").for_volume(vol)
    assert m.kind == "window"
    assert m.apply(vol[0]).mean() > m.apply(vol[1]).mean() + 100
