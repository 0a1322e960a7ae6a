"""`segdeploy verify` on the session's brain U-Net: passes on the real export, exits 1 on an
engine whose weights were perturbed, refuses an engine of another model."""

from __future__ import annotations

import json

import pytest

onnx = pytest.importorskip("onnx")
from onnx_edits import noisy_last_conv  # noqa: E402

from segdeploy.cli.main import main  # noqa: E402

SIZES = "97x131,129x161"


def _verify(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    try:
        main(["verify", *args, "--max-images", "2", "--no-progress"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_verify_passes_on_fp32_export(brain_checkpoint, brain_onnx, tmp_path, capsys) -> None:
    report = tmp_path / "parity.json"
    code, out = _verify(capsys, str(brain_checkpoint), "--engine", str(brain_onnx[0]),
                        "--sizes", SIZES, "--json", str(report))
    assert code == 0, out
    assert "parity OK" in out and "97x131" in out
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["precision"] == "fp32" and data["data"] == "brain"
    assert data["thresholds"] == {"min_agreement": 99.9, "max_miou_drop": None}
    assert [r["size"] for r in data["sizes"]] == [[97, 131], [129, 161]]
    for r in data["sizes"]:
        assert r["images"] == 2 and r["agreement"] >= 99.9
        assert r["abs_error"]["max"] < 1e-2
        assert r["abs_error"]["mean"] <= r["abs_error"]["p99"] <= r["abs_error"]["max"]
        assert abs(r["miou_drop"]) < 0.5 and r["miou_reference"] > 50
        assert len(r["iou_between"]) == 3


def test_verify_fp16_uses_fp16_thresholds(brain_checkpoint, brain_onnx, tmp_path,
                                          capsys) -> None:
    report = tmp_path / "parity16.json"
    code, out = _verify(capsys, str(brain_checkpoint), "--engine", str(brain_onnx[1]),
                        "--sizes", "129x161", "--json", str(report))
    data = json.loads(report.read_text())
    assert data["precision"] == "fp16"
    assert data["thresholds"] == {"min_agreement": 99.5, "max_miou_drop": 0.5}
    assert code == (0 if data["passed"] else 1), out
    assert data["sizes"][0]["abs_error"]["max"] > 0  # FP16 rounding is visible


def test_verify_exits_1_when_the_engine_disagrees(brain_checkpoint, brain_onnx, tmp_path,
                                                  capsys) -> None:
    bad = noisy_last_conv(brain_onnx[0], tmp_path / "perturbed.onnx", 3)
    report = tmp_path / "bad.json"
    code, out = _verify(capsys, str(brain_checkpoint), "--engine", str(bad), "--sizes", SIZES,
                        "--json", str(report))
    assert code == 1
    assert "FAIL" in out and "disagrees with PyTorch" in out and "Traceback" not in out
    data = json.loads(report.read_text())  # the report is written before failing
    assert data["passed"] is False
    assert all(r["failures"] and r["agreement"] < 99.9 for r in data["sizes"])


def test_verify_user_threshold_can_accept_a_loss(brain_checkpoint, brain_onnx, tmp_path,
                                                 capsys) -> None:
    bad = noisy_last_conv(brain_onnx[0], tmp_path / "perturbed.onnx", 3)
    code, out = _verify(capsys, str(brain_checkpoint), "--engine", str(bad), "--sizes",
                        "97x131", "--min-agreement", "0")
    assert code == 0, out


def test_verify_refuses_an_engine_of_another_model(brain_checkpoint, brain_onnx, tmp_path,
                                                   capsys) -> None:
    model = onnx.load(str(brain_onnx[0]))
    for prop in model.metadata_props:
        if prop.key == "segdeploy":
            meta = json.loads(prop.value)
            meta["card"]["arch"] = "fcn8s"
            prop.value = json.dumps(meta)
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    code, out = _verify(capsys, str(brain_checkpoint), "--engine", str(other))
    assert code == 1 and "fcn8s" in out and "exported from this checkpoint" in out


@pytest.mark.parametrize("sizes", ["97", "5x5"])
def test_verify_rejects_bad_sizes(brain_checkpoint, brain_onnx, capsys, sizes: str) -> None:
    code, out = _verify(capsys, str(brain_checkpoint), "--engine", str(brain_onnx[0]),
                        "--sizes", sizes)
    assert code == 1 and "error:" in out
