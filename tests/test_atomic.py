import os

import pytest

from segdeploy.atomic import atomic_path, write_json_atomic
from segdeploy.errors import UsageError


def test_atomic_path_renames_only_on_success(tmp_path):
    target = tmp_path / "model.onnx"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"complete")
        assert not target.exists()
    assert target.read_bytes() == b"complete"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"  # the previous artifact survives
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist.*mkdir -p"):
        write_json_atomic(tmp_path / "nope" / "x.json", {})
    with pytest.raises(UsageError, match="is a folder"):
        write_json_atomic(tmp_path, {})
