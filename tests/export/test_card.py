"""ONNX files other tools wrote: a plain torch.onnx.export file and a QDQ (ModelOpt-style)
file without segdeploy metadata; `segdeploy card`; precision read from the graph."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from export_test_models import UserNet

from segdeploy.cli.main import main
from segdeploy.errors import ArtifactError
from segdeploy.onnx_precision import graph_precision
from segdeploy.runtime import Segmenter


def _plain_onnx(path: Path, model: torch.nn.Module | None = None, channels: int = 3) -> Path:
    """What a user gets from torch.onnx.export without segdeploy: no metadata, own names."""
    torch.manual_seed(0)
    model = (model or UserNet(in_channels=channels, num_classes=2)).eval()
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.randn(1, channels, 64, 80),), buf, dynamo=False,
                      opset_version=17, input_names=["images"], output_names=["out"],
                      dynamic_axes={"images": {0: "n", 2: "h", 3: "w"},
                                    "out": {0: "n", 1: "k", 2: "h", 3: "w"}})
    path.write_bytes(buf.getvalue())
    return path


def _qdq(src: Path, dst: Path, shape: tuple[int, ...], name: str) -> Path:
    """ONNX Runtime quantize_static (QDQ, per-channel), as DESIGN.md measured."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.items = iter([{name: rng.standard_normal(shape).astype(np.float32)}
                               for _ in range(4)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True)
    return dst


def _cli(capsys, *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_plain_onnx_benches_then_runs_after_card(tmp_path: Path, capsys) -> None:
    plain = _plain_onnx(tmp_path / "plain.onnx")
    with pytest.raises(ArtifactError) as exc:
        Segmenter.load(plain)
    assert f"segdeploy card {plain} --classes c0,c1" in str(exc.value)

    code, out = _cli(capsys, "bench", "--engine", str(plain), "-s", "1x3x64x80", "-n", "2",
                     "--warmup", "0", "--no-progress", "--backend", "onnxruntime")
    assert code == 0, out
    assert "onnxruntime" in out

    code, out = _cli(capsys, "card", str(plain), "--classes", "a,b,c", "--mean", "0.5",
                     "--std", "0.25")
    assert code == 1 and "names 3 classes" in out  # checked against the output: 2 channels

    carded = tmp_path / "carded.onnx"
    code, out = _cli(capsys, "card", str(plain), "--classes", "bg,cell", "--mean", "0.5",
                     "--std", "0.25", "-o", str(carded))
    assert code == 0, out
    model = onnx.load(str(carded))
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 2
    with Segmenter.load(carded) as seg:
        assert seg.classes == ["bg", "cell"] and seg.card.mean == [0.5] * 3
        mask = seg.predict(np.zeros((61, 75, 3), np.uint8))
    assert mask.shape == (61, 75)

    code, out = _cli(capsys, "info", str(carded), "--json")
    card = json.loads(out)["export"]["card"]
    assert set(card["config"]["unknown"]) == {"output_stride", "min_size", "train_size"}
    code, out = _cli(capsys, "info", str(carded))
    assert "stride unknown" in out and "min size unknown" in out


def test_qdq_onnx_without_metadata_is_int8(tmp_path: Path, capsys) -> None:
    plain = _plain_onnx(tmp_path / "plain.onnx")
    qdq = _qdq(plain, tmp_path / "modelopt_like.onnx", (1, 3, 64, 80), "images")
    code, out = _cli(capsys, "bench", "--engine", str(qdq), "-s", "1x3x64x80", "-n", "2",
                     "--warmup", "0", "--no-progress", "--backend", "onnxruntime")
    assert code == 0, out
    assert graph_precision(plain) == "fp32" and graph_precision(qdq) == "int8"
    code, out = _cli(capsys, "card", str(qdq), "--classes", "bg,cell", "--mean",
                     "0.485,0.456,0.406", "--std", "0.229,0.224,0.225")
    assert code == 0 and "int8" in out
    with Segmenter.load(qdq) as seg:
        assert seg.info.precision == "int8"
        assert seg.predict(np.zeros((64, 80, 3), np.uint8)).shape == (64, 80)
    from PIL import Image

    image = tmp_path / "image.png"
    Image.fromarray(np.full((61, 75, 3), 128, np.uint8)).save(image)
    code, out = _cli(capsys, "predict", "--engine", str(qdq), str(image), "-o",
                     str(tmp_path / "mask.png"))
    assert code == 0, out
    assert np.asarray(Image.open(tmp_path / "mask.png")).shape == (61, 75)


def test_card_refuses_what_the_graph_contradicts(tmp_path: Path, capsys) -> None:
    plain = _plain_onnx(tmp_path / "grey.onnx", channels=1)
    code, out = _cli(capsys, "card", str(plain), "--classes", "bg,cell", "--mean", "0.5,0.5",
                     "--std", "0.2,0.2")
    assert code == 1 and "--mean has 2 values for 1 input channels" in out
    code, out = _cli(capsys, "card", str(plain), "--classes", "bg,cell", "--mean", "0.5",
                     "--std", "0.2", "--in-channels", "3")
    assert code == 1 and "takes 1 channels" in out
    before = plain.read_bytes()
    assert "segdeploy" not in {p.key for p in onnx.load(str(plain)).metadata_props}
    assert plain.read_bytes() == before  # refused: untouched
