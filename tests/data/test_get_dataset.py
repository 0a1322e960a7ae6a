"""get_dataset: names, errors, and no heavy imports at import time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from segdeploy.data import get_dataset, list_datasets
from segdeploy.errors import DataError


def test_builtin_names():
    assert list_datasets() == ["brain", "nuclei"]


def test_unknown_name_explains_the_choices():
    with pytest.raises(DataError, match="brain, nuclei"):
        get_dataset("cityscapes")


@pytest.mark.parametrize("name", ["brain", "nuclei"])
def test_bad_split_and_channel_mode(name):
    with pytest.raises(DataError, match="'train' or 'val'"):
        get_dataset(name, split="test")
    with pytest.raises(DataError, match="unknown channel mode"):
        get_dataset(name, channel_mode="bgr")


def test_import_is_light():
    code = ("import sys, segdeploy.data, segdeploy.data.transforms, segdeploy.data.folder; "
            "heavy = {'torch', 'nibabel', 'tifffile'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_torch_when_reading_builtin_data():
    code = ("import sys; from segdeploy.data import get_dataset; "
            "get_dataset('nuclei')[0]; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
