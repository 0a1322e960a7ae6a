"""The built-in `nuclei` dataset: tiles of a real fluorescence image, binary labels."""

from __future__ import annotations

import numpy as np
import pytest

from segdeploy.data import get_dataset, nuclei
from segdeploy.data.base import channel_stats


@pytest.fixture(scope="module")
def splits():
    return get_dataset("nuclei", "train"), get_dataset("nuclei", "val")


def test_tiles_and_binary_labels(splits):
    train, val = splits
    assert train.classes == ["background", "nucleus"] and train.in_channels == 1
    assert len(val) == 4 and len(train) > len(val)
    for ds in splits:
        both = np.zeros(2)
        for image, mask in ds:
            assert image.shape == (nuclei.TILE, nuclei.TILE, 1) and image.dtype == np.uint8
            assert set(np.unique(mask)) <= {0, 1}
            both += np.bincount(mask.ravel(), minlength=2)[:2]
        assert 0.05 < both[1] / both.sum() < 0.5


def test_splits_share_no_pixel(splits):
    train, val = splits
    covered_t = np.zeros((512, 512), bool)
    covered_v = np.zeros((512, 512), bool)
    for cov, ds in ((covered_t, train), (covered_v, val)):
        for y, x in ds.origins:
            cov[y:y + nuclei.TILE, x:x + nuclei.TILE] = True
    assert not (covered_t & covered_v).any()
    assert covered_v.sum() == 4 * nuclei.TILE**2


def test_nuclei_are_brighter_than_background(splits):
    image = np.concatenate([img[..., 0].ravel() for img, _ in splits[0]])
    mask = np.concatenate([m.ravel() for _, m in splits[0]])
    assert image[mask == 1].mean() > image[mask == 0].mean() + 30


def test_mean_std_and_grey3(splits):
    train = splits[0]
    region = nuclei._load_image().image[:, :nuclei.VAL_X0]
    mean, std = channel_stats([region])
    assert np.allclose(train.mean, mean) and np.allclose(train.std, std)
    g3 = get_dataset("nuclei", "val", channel_mode="grey3")
    image, _ = g3[1]
    assert image.shape[2] == 3 and (image == splits[1][1][0]).all()
    assert g3.mean == train.mean * 3 and g3.describe()["channel_mode"] == "grey3"
