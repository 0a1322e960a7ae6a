"""Folders as they come: one bad file is listed, not fatal (exit 1 at the end, every other
mask written), --json reports per image; a dataset root points to its images/; -o NAME.png
for a folder is refused instead of becoming a folder named NAME.png."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from cli_run import run_cli
from PIL import Image


def _folder(root: Path) -> Path:
    from segdeploy.data import get_dataset

    ds = get_dataset("brain", "val")
    root.mkdir(parents=True)
    for i, name in enumerate(("a.png", "c.jpg")):
        Image.fromarray(ds[i][0][..., 0]).save(root / name)
    (root / "b.jpg").write_bytes(b"")  # a 0-byte JPEG, as a failed copy leaves
    return root


def test_a_bad_file_is_listed_and_the_rest_written(brain_onnx, tmp_path: Path,
                                                   capsys) -> None:
    imgs = _folder(tmp_path / "imgs")
    out, report = tmp_path / "out", tmp_path / "report.json"
    code, _, err = run_cli(["predict", "--engine", str(brain_onnx[0]), str(imgs), "-o",
                            str(out), "--json", str(report)], capsys)
    assert code == 1, err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    assert "failed" in err and "b.jpg" in err and "1 of 3 images" in err
    data = json.loads(report.read_text())
    assert [f["image"] for f in data["failures"]] == [str(imgs / "b.jpg")]
    first = data["images"][0]
    assert first["size"] == [197, 233] and abs(sum(first["class_shares"]) - 1) < 1e-6
    assert len(first["class_shares"]) == len(data["classes"]) and first["seconds"] >= 0
    mask = np.asarray(Image.open(out / "a.png"))
    assert mask.shape == (197, 233)


def test_dataset_root_and_single_file_output_for_a_folder(brain_onnx, tmp_path: Path,
                                                          capsys) -> None:
    root = tmp_path / "data"
    _folder(root / "images")
    code, _, err = run_cli(["predict", "--engine", str(brain_onnx[0]), str(root), "-o",
                            str(tmp_path / "o")], capsys)
    assert code == 1 and "dataset root: predict" in err and "images" in err
    code, _, err = run_cli(["predict", "--engine", str(brain_onnx[0]), str(root / "images"),
                            "-o", str(tmp_path / "m4.png")], capsys)
    assert code == 1 and "names one mask file" in err
    assert not (tmp_path / "m4.png").exists()


def test_recursive_keeps_the_sub_folder_layout(brain_onnx, tmp_path: Path, capsys) -> None:
    from segdeploy.data import get_dataset

    ds = get_dataset("brain", "val")
    root = tmp_path / "scans"
    for i, rel in enumerate(("top.png", "day1/a.png", "day2/a.png", "day2/deep/b.png")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ds[i][0][..., 0]).save(root / rel)
    out = tmp_path / "masks"
    code, _, err = run_cli(["predict", "--engine", str(brain_onnx[0]), str(root), "-o",
                            str(out), "--recursive"], capsys)
    assert code == 0, err
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["day1/a.png", "day2/a.png", "day2/deep/b.png", "top.png"]
    code, _, err = run_cli(["predict", "--engine", str(brain_onnx[0]), str(root), "-o",
                            str(tmp_path / "flat")], capsys)
    assert code == 0 and [p.name for p in (tmp_path / "flat").iterdir()] == ["top.png"]
