"""Foreign models with size rules: a multiple found by the probe or given, outputs larger
than the input refused, fixed-size graphs (--static-size), .pt2 dims, --data checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from export_test_models import UserNet, save_traced
from torch import nn
from torch.nn import functional

from segdeploy.errors import DataError, ExportError, UsageError
from segdeploy.export.pipeline import ExportOptions, run_export
from segdeploy.export.probe import probe_model, pt2_size_multiple
from segdeploy.export.sources import SourceFacts
from segdeploy.runtime import Segmenter

FAST = dict(fp16=False, max_side=0, fp16_images=2, opset=17,
            check_sizes=["2x3x97x131", "1x3x61x75"])


class Needs16(UserNet):
    """Works only at H, W divisible by 16 (pool by 16, upsample by 16, add: as a U-Net
    without size-matching does), in eager and traced form alike."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = functional.relu(self.a(x))
        z = functional.interpolate(functional.avg_pool2d(self.b(y), 16), scale_factor=16.0,
                                   mode="nearest")
        return self.head(y + z)


class RoundsUp(UserNet):
    """Pads to a multiple of 32 and never crops back (Segformer at a non-multiple size)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = functional.pad(x, (0, (-w) % 32, 0, (-h) % 32))
        return super().forward(x)


class FixedBins(nn.Module):
    """Adaptive pooling to fixed bins (PSPNet's pyramid): works at one size in ONNX."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = functional.relu(self.a(x))
        p = functional.interpolate(functional.adaptive_avg_pool2d(y, 3), size=y.shape[-2:],
                                   mode="bilinear", align_corners=False)
        return self.head(torch.cat([y, p], 1))


def _trace(path: Path, model: nn.Module, size: tuple[int, int]) -> Path:
    torch.manual_seed(0)
    torch.jit.save(torch.jit.trace(model.eval(), (torch.randn(2, 3, *size),)), str(path))
    return path


def test_probe_finds_the_multiple_and_runtime_pads_to_it(tmp_path: Path) -> None:
    ts = _trace(tmp_path / "needs16.ts", Needs16(num_classes=3), (96, 128))
    result = run_export(ts, ExportOptions(trust_code=True, **FAST))
    card = result.info.card
    assert card.size_multiple == 16 and card.output_mode == "same"
    assert any("multiples of 16" in n for n in result.notes)
    checked = {r.inputs for r in result.parity.rows}
    assert "2x3x112x144" in checked  # 97x131 rounded up to the multiple, not run as is
    dims = onnx.load(str(result.onnx_path)).graph.output[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 3
    with Segmenter.load(result.onnx_path) as seg:
        mask = seg.predict(np.zeros((197, 233, 3), np.uint8))
    assert mask.shape == (197, 233)
    with pytest.raises(UsageError, match="--size-multiple 8"):
        run_export(ts, ExportOptions(trust_code=True, facts=SourceFacts(size_multiple=8),
                                     **FAST))


def test_larger_output_is_not_valid_mode(tmp_path: Path) -> None:
    model = RoundsUp(num_classes=2).eval()
    probe = probe_model(model, 3, tmp_path / "m")
    assert probe.output_mode == "same" and probe.size_multiple == 32
    assert "67x93 -> 96x96" in probe.describe(limit=20)  # what was found is reported
    with pytest.raises(UsageError, match="input's size"):
        probe_model(model, 3, tmp_path / "m", size_multiple=4)


def test_static_size_exports_a_fixed_graph_and_runtime_resizes(tmp_path: Path) -> None:
    ts = _trace(tmp_path / "bins.ts", FixedBins(), (72, 96))
    with pytest.raises(ExportError, match="--static-size"):
        run_export(ts, ExportOptions(trust_code=True, **FAST))
    assert not (tmp_path / "bins.onnx").exists()
    result = run_export(ts, ExportOptions(trust_code=True, facts=SourceFacts(
        static_size=(72, 96)), **FAST))
    shape = [d.dim_param or d.dim_value for d in
             onnx.load(str(result.onnx_path)).graph.input[0].type.tensor_type.shape.dim]
    assert shape == ["batch", 3, 72, 96]
    assert {r.inputs for r in result.parity.rows if "x" in r.inputs[:3]} <= {
        "2x3x72x96", "1x3x72x96"}
    with Segmenter.load(result.onnx_path) as seg:
        assert seg.static_size == (72, 96)
        image = np.random.default_rng(0).integers(0, 256, (197, 233, 3), dtype=np.uint8)
        mask = seg.predict(image)
        logits = seg.image_logits(image)
    assert mask.shape == (197, 233) and logits.shape == (2, 197, 233)
    assert np.array_equal(mask, logits.argmax(0))


def test_pt2_declares_its_multiple(tmp_path: Path) -> None:
    kh, kw = torch.export.Dim("kh", min=2, max=64), torch.export.Dim("kw", min=2, max=64)
    model = Needs16(num_classes=2).eval()
    program = torch.export.export(model, (torch.randn(2, 3, 96, 128),),
                                  dynamic_shapes=({0: torch.export.Dim("n", max=8),
                                                   2: 16 * kh, 3: 16 * kw},))
    assert pt2_size_multiple(program)[0] == 16
    path = tmp_path / "needs16.pt2"
    torch.export.save(program, str(path))
    result = run_export(path, ExportOptions(trust_code=True, **{**FAST, "opset": 18,
                                            "check_sizes": ["2x3x96x112"]}))
    assert result.info.card.size_multiple == 16
    assert any("read from the .pt2" in n for n in result.notes)


def test_data_for_foreign_models(tmp_path: Path) -> None:
    ts = save_traced(tmp_path / "net.ts", UserNet(num_classes=2))
    with pytest.raises(DataError, match="--data"):
        run_export(ts, ExportOptions(trust_code=True, data=str(tmp_path / "nope"), **FAST))
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(
            photos / f"{i}.png")
    options = {**FAST, "fp16": True}
    result = run_export(ts, ExportOptions(trust_code=True, data=str(photos), **options))
    assert result.parity.fp16_images.startswith("photos/ images x2")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        run_export(ts, ExportOptions(trust_code=True, data=str(empty), **FAST))


def test_torchscript_load_is_quiet_and_card_is_honest(tmp_path: Path) -> None:
    import warnings

    from segdeploy.export.sources import load_source

    ts = save_traced(tmp_path / "net.ts", UserNet(num_classes=2))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        src = load_source(ts, trust_code=True)
    assert not [w for w in seen if "deprecated" in str(w.message)]
    assert set(src.card.config["unknown"]) == {"output_stride", "min_size", "train_size"}
    from segdeploy.cli.info import _geometry

    assert "stride unknown" in _geometry(src.card.to_dict())


def test_onnx_runtime_failure_is_one_line() -> None:
    from segdeploy.export.pipeline import _ort
    from segdeploy.manifest import ModelCard

    card = ModelCard(arch="m", num_classes=2, classes=["a", "b"])

    def broken(path: str):
        def run(x):
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status "
                               "code returned while running AveragePool node\n  stack line 2")
        return run

    with pytest.raises(ExportError) as exc:
        _ort(broken, "m.onnx", what="the FP32 graph", card=card)(np.zeros((1, 3, 5, 7)))
    text = str(exc.value)
    assert "\n" not in text and "at 1x3x5x7" in text and "--static-size" in text


def test_builtin_data_with_channels(tmp_path: Path) -> None:
    ts = save_traced(tmp_path / "net.ts", UserNet(num_classes=2))
    result = run_export(ts, ExportOptions(trust_code=True, data="brain", channels="grey3",
                                          **{**FAST, "fp16": True}))
    assert result.parity.fp16_images.startswith("brain val x2")
