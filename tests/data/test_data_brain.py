"""The built-in `brain` dataset: real MNI152 slices, sane labels, a slab split."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from segdeploy.data import brain, get_dataset
from segdeploy.data.base import channel_stats
from segdeploy.errors import DataError, MissingDependencyError


@pytest.fixture(scope="module")
def splits():
    return get_dataset("brain", "train"), get_dataset("brain", "val")


def test_sizes_classes_and_count(splits):
    train, val = splits
    assert train.classes == ["background", "grey matter", "white matter"]
    assert train.num_classes == 3 and train.in_channels == 1 and train.channel_mode == "grey"
    assert 130 <= len(train) + len(val) <= 160
    assert 0.1 <= len(val) / (len(train) + len(val)) <= 0.3
    image, mask = train[0]
    assert image.shape == (197, 233, 1) and image.dtype == np.uint8
    assert mask.shape == (197, 233) and mask.dtype == np.uint8
    assert train.describe()["image_sizes"] == [[197, 233]]


def test_split_is_disjoint_contiguous_and_repeatable(splits):
    train, val = splits
    zt, zv = set(train.slice_indices), set(val.slice_indices)
    assert zt and zv and not zt & zv
    # no slab of SLAB consecutive slices straddles the two splits
    slabs_t = {z // brain.SLAB for z in zt}
    slabs_v = {z // brain.SLAB for z in zv}
    assert not slabs_t & slabs_v
    assert get_dataset("brain", "val").slice_indices == val.slice_indices
    assert list(brain.split_of(np.array(sorted(zv)))) == ["val"] * len(zv)


def test_labels_are_sane_and_match_the_t1_contrast(splits):
    counts = np.zeros(256)
    wm_vals, gm_vals = [], []
    for ds in splits:
        for image, mask in ds:
            counts += np.bincount(mask.ravel(), minlength=256)
            gm_vals.append(image[mask == 1, 0])
            wm_vals.append(image[mask == 2, 0])
    assert counts[3:].sum() == 0
    freq = counts[:3] / counts.sum()
    assert (freq > 0.03).all()
    assert freq[0] > 0.5
    # on a T1 image white matter is brighter than grey matter: labels align with pixels
    assert np.concatenate(wm_vals).mean() > np.concatenate(gm_vals).mean() + 20


def test_every_slice_has_enough_brain(splits):
    for ds in splits:
        for _, mask in ds:
            assert (mask > 0).mean() > brain.MIN_BRAIN_FRACTION


def test_mean_std_come_from_the_training_split(splits):
    train, val = splits
    mean, std = channel_stats([img for img, _ in train])
    assert np.allclose(train.mean, mean, atol=1e-5) and np.allclose(train.std, std, atol=1e-5)
    assert val.mean == train.mean and val.std == train.std


def test_grey3_replicates_the_grey_channel(splits):
    grey3 = get_dataset("brain", "train", channel_mode="grey3")
    image, mask = grey3[5]
    grey, mask1 = splits[0][5]
    assert grey3.in_channels == 3 and image.shape == (197, 233, 3)
    assert (image == grey).all() and (mask == mask1).all()
    assert grey3.mean == splits[0].mean * 3


def test_rgb_is_refused_for_grey_data():
    with pytest.raises(DataError, match="grey3"):
        get_dataset("brain", channel_mode="rgb")


def test_missing_nilearn_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nilearn" else real(name, *a))
    with pytest.raises(MissingDependencyError, match="--no-deps nilearn"):
        brain._load_volume.__wrapped__()


def test_hard_labels_equal_argmax_with_ties():
    rng = np.random.default_rng(0)
    # quarter steps make ties common, the case where a hand-written argmax goes wrong
    gm, wm = (rng.integers(0, 4, 50_000).astype(np.float32) / 4 for _ in range(2))
    ref = np.argmax(np.stack([np.clip(1 - gm - wm, 0, 1), gm, wm]), axis=0)
    assert (brain.hard_labels(gm, wm) == ref).all()
