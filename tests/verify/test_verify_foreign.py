"""verify judges an ONNX by its graph: an ONNX Runtime QDQ copy of our export (whose metadata
still says fp32) gets the int8 gate; a plain torch.onnx.export file verifies after a card."""

from __future__ import annotations

import io
import json

import pytest

onnx = pytest.importorskip("onnx")

from segdeploy.cli.main import main  # noqa: E402

SIZES = "97x131"


def _verify(capsys, *args: str) -> tuple[int, str]:
    try:
        main(["verify", *args, "--max-images", "2", "--no-progress", "--sizes", SIZES])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_qdq_copy_is_judged_int8(brain_checkpoint, brain_onnx, tmp_path, capsys) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    src = brain_onnx[0]
    card = json.loads(next(p.value for p in onnx.load(str(src)).metadata_props
                           if p.key == "segdeploy"))["card"]
    from segdeploy.data import get_dataset
    from segdeploy.imaging import normalize

    ds = get_dataset("brain", "val", channel_mode=card["channel_mode"])
    feeds = [{"input": normalize(ds[i][0], card["mean"], card["std"])[None]}
             for i in range(0, len(ds), max(1, len(ds) // 8))]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    qdq = tmp_path / "unet_brain.int8.onnx"
    quantize_static(str(src), str(qdq), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True)
    assert any(p.key == "segdeploy" for p in onnx.load(str(qdq)).metadata_props)
    report = tmp_path / "int8.json"
    code, out = _verify(capsys, str(brain_checkpoint), "--engine", str(qdq), "--json",
                        str(report))
    data = json.loads(report.read_text())
    assert data["precision"] == "int8"
    assert data["thresholds"] == {"min_agreement": 99.0, "max_miou_drop": 1.0}
    assert any("metadata says fp32" in n for n in data["notes"])
    assert code == (0 if data["passed"] else 1), out

    # a failed INT8 verify: the table says FAILS and the fix speaks of calibration, not FP16
    code, out = _verify(capsys, str(brain_checkpoint), "--engine", str(qdq),
                        "--min-agreement", "100")
    assert code == 1, out
    assert "FAILS; needed: agreement >= 100%" in out and "pass: agreement" not in out
    assert "--calibration" in out and "FP16" not in out.split("error:")[-1]


def test_plain_export_verifies_after_card(brain_checkpoint, tmp_path, capsys) -> None:
    import torch

    from segdeploy.reference_models.checkpoint import load_model

    model, card = load_model(brain_checkpoint)
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.randn(1, card.in_channels, 64, 64),), buf, dynamo=False,
                      opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h", 3: "w"}})
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(buf.getvalue())
    code, out = _verify(capsys, str(brain_checkpoint), "--engine", str(plain))
    assert code == 1 and "segdeploy card" in out
    args = ["card", str(plain), "--classes", ",".join(card.classes),
            "--mean", ",".join(map(str, card.mean)), "--std", ",".join(map(str, card.std))]
    main(args)
    assert "wrote" in capsys.readouterr().out
    code, out = _verify(capsys, str(brain_checkpoint), "--engine", str(plain))
    assert code == 0, out
    assert "parity OK" in out

    # a ModelOpt-style file: QDQ nodes and no segdeploy metadata, given a card
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    from segdeploy.data import get_dataset
    from segdeploy.imaging import normalize

    ds = get_dataset("brain", "val", channel_mode=card.channel_mode)
    feeds = iter([{"x": normalize(ds[i][0], card.mean, card.std)[None]}
                  for i in range(0, len(ds), max(1, len(ds) // 8))])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    bare = tmp_path / "bare.onnx"
    torch.onnx.export(model, (torch.randn(1, card.in_channels, 64, 64),), str(bare),
                      dynamo=False, opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h", 3: "w"}})
    qdq = tmp_path / "modelopt_like.onnx"
    quantize_static(str(bare), str(qdq), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True)
    main(["card", str(qdq), *args[2:]])
    capsys.readouterr()
    report = tmp_path / "qdq.json"
    code, out = _verify(capsys, str(brain_checkpoint), "--engine", str(qdq), "--json",
                        str(report))
    data = json.loads(report.read_text())
    assert data["precision"] == "int8" and data["thresholds"]["min_agreement"] == 99.0
    assert code == (0 if data["passed"] else 1), out

