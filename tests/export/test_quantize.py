"""`segdeploy quantize` on the trained brain U-Net: the gate, the float fallback, the metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segdeploy.errors import ArtifactError
from segdeploy.export.quantize import (
    QUANT_METADATA_KEY,
    QuantizeOptions,
    fallback_order,
    quantize_model,
)
from segdeploy.manifest import ExportInfo

pytestmark = pytest.mark.slow
onnx = pytest.importorskip("onnx")


def faster_timer_double(fp32, int8, feeds, threads):
    """Stands in for the speed check: these tests are about the gate, not this CPU."""
    from segdeploy.export.int8_speed import SpeedCheck

    return SpeedCheck(100.0, 50.0, "TimerDouble CPU")


def _props(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _qdq_nodes(path) -> int:
    return sum(n.op_type == "QuantizeLinear" for n in onnx.load(str(path)).graph.node)


def test_quantize_gates_and_writes_int8_metadata(brain_onnx, tmp_path) -> None:
    fp32, _ = brain_onnx
    out = tmp_path / "unet.int8.onnx"
    result = quantize_model(fp32, QuantizeOptions(data="brain", output=out,
                                                  calibration_images=8, val_images=4),
                            timer=faster_timer_double)
    assert result.output == out and out.is_file()
    assert all(c.result.agreement >= c.limit for c in result.checks)
    assert result.thresholds.min_agreement == 99.0
    assert result.gate.miou_drop <= result.thresholds.max_miou_drop == 1.0
    info = ExportInfo.from_metadata_props(_props(out))
    assert info.precision == "int8" and set(info.fp32_nodes) == set(result.fp32_nodes)
    quant = json.loads(_props(out)[QUANT_METADATA_KEY])
    assert quant["format"] == "QDQ" and quant["calibration"] == "percentile"
    assert _qdq_nodes(out) > 0 and not list(tmp_path.glob("*.tmp*"))
    from segdeploy.runtime import Segmenter

    with Segmenter.load(out) as seg:  # the runtime opens it and names its precision
        assert seg.info.precision == "int8"
        mask = seg.predict(np.zeros((61, 75, 1), np.uint8))
        assert mask.shape == (61, 75)


def test_failed_gate_keeps_the_most_sensitive_layers_in_float(brain_onnx, tmp_path) -> None:
    fp32, _ = brain_onnx
    out = tmp_path / "strict.int8.onnx"
    opts = QuantizeOptions(data="brain", output=out, calibration_images=4, val_images=3,
                           min_agreement=99.8, max_miou_drop=0.3)
    result = quantize_model(fp32, opts, timer=faster_timer_double)
    first = result.first_gate
    assert first is not None and not first.passes(99.8, 0.3)  # all-int8 failed this strict gate
    assert result.fp32_nodes and result.gate.passes(99.8, 0.3)
    ranked = fallback_order(result.sensitivity, result.costs)  # agreement per FLOP first
    assert result.fp32_nodes == ranked[:len(result.fp32_nodes)]
    kept = ExportInfo.from_metadata_props(_props(out)).fp32_nodes
    # the metadata JSON is written with sorted keys: compare the names, not their order
    assert sorted(kept) == sorted(result.fp32_nodes)
    assert all("kept float" in v for v in kept.values())
    graph = onnx.load(str(out)).graph
    # a layer kept in float reads a float weight, not a dequantized one
    weights = {n.name: n.input[1] for n in graph.node if n.name in result.fp32_nodes}
    dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    assert weights and not set(weights.values()) & dq_outputs


def test_quantize_refuses_fp16_graphs_and_bad_calibration(brain_onnx, tmp_path) -> None:
    _, fp16 = brain_onnx
    with pytest.raises(ArtifactError, match="fp16 graph"):
        quantize_model(fp16, QuantizeOptions(data="brain", output=tmp_path / "x.onnx"))
    from segdeploy.errors import UsageError

    with pytest.raises(UsageError, match="calibration"):
        quantize_model(fp16, QuantizeOptions(data="brain", calibration="kl"))
    assert not (tmp_path / "x.onnx").exists()
