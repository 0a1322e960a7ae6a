"""Errors that know what the file is: every command given another kind of artifact says what
the file is and which command takes it; "corrupt" only for a damaged file of the right kind."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_run import cli_fails
from PIL import Image

from segdeploy.artifact_kind import sniff


@pytest.fixture
def files(brain_checkpoint, brain_onnx, tmp_path: Path) -> dict[str, Path]:
    out = {"pt": tmp_path / "model.pt", "onnx": tmp_path / "model.onnx",
           "png": tmp_path / "img.png", "json": tmp_path / "bench.json"}
    shutil.copy(brain_checkpoint, out["pt"])
    shutil.copy(brain_onnx[0], out["onnx"])
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(out["png"])
    out["json"].write_text('{"results": [], "environment": {}}')
    return out


def test_sniff_by_bytes_not_suffix(files: dict[str, Path], tmp_path: Path) -> None:
    assert {k: sniff(p).name for k, p in files.items()} == {
        "pt": "checkpoint", "onnx": "onnx", "png": "image", "json": "report"}
    misnamed = tmp_path / "model.bin"
    shutil.copy(files["onnx"], misnamed)
    assert sniff(misnamed).name == "onnx"
    (tmp_path / "empty.pt").write_bytes(b"")
    assert sniff(tmp_path / "empty.pt").name == "empty"


@pytest.mark.parametrize("argv, said", [
    (["verify", "{onnx}", "-e", "{onnx}"], "is an ONNX model, not a PyTorch checkpoint"),
    (["eval", "{onnx}", "--data", "brain"], "is an ONNX model, not a PyTorch checkpoint"),
    (["quantize", "{pt}", "--data", "brain"], "is a PyTorch checkpoint, not an ONNX model"),
    (["predict", "-e", "{pt}", "{png}", "-o", "{tmp}/m.png"], "is a PyTorch checkpoint"),
    (["bench", "-e", "{pt}"], "is a PyTorch checkpoint"),
    (["export", "{onnx}"], "is an ONNX model: already exported"),
    (["build", "{pt}"], "is a PyTorch checkpoint, not an ONNX model"),
    (["eval", "{json}", "--data", "brain"], "is a segdeploy JSON report"),
])
def test_each_command_says_what_the_file_is(files: dict[str, Path], tmp_path: Path, capsys,
                                           argv: list[str], said: str) -> None:
    args = [a.format(tmp=tmp_path, **{k: str(p) for k, p in files.items()}) for a in argv]
    err = cli_fails(capsys, args)
    assert said in err, err
    assert "corrupt" not in err and "rename" not in err and "backend=" not in err
    if "PyTorch checkpoint" in said and argv[0] == "bench":
        assert "--checkpoint" in err  # bench takes a checkpoint that way


def test_a_damaged_file_of_the_right_kind_is_called_corrupt(files: dict[str, Path],
                                                          tmp_path: Path, capsys) -> None:
    cut = tmp_path / "cut.pt"
    cut.write_bytes(files["pt"].read_bytes()[:4000])
    err = cli_fails(capsys, ["eval", str(cut), "--data", "brain"])
    assert "corrupt" in err or "truncated" in err, err
    cut_onnx = tmp_path / "cut.onnx"
    cut_onnx.write_bytes(files["onnx"].read_bytes()[:3000])
    err = cli_fails(capsys, ["predict", "-e", str(cut_onnx), str(files["png"]), "-o",
                             str(tmp_path / "m.png")])
    assert "ONNX" in err and ("truncated" in err or "not a complete" in err), err
