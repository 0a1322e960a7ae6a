"""The FP16 graph of the brain U-Net agrees with PyTorch FP32 on real brain MRI slices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto

from segdeploy.data import get_dataset
from segdeploy.export.pipeline import ExportOptions, run_export
from segdeploy.imaging import as_hwc_uint8, normalize
from segdeploy.manifest import ExportInfo
from segdeploy.reference_models.checkpoint import load_model


@pytest.mark.slow
def test_brain_fp16_argmax_agreement(brain_checkpoint: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "unet_brain.onnx"
    result = run_export(brain_checkpoint, ExportOptions(
        output=str(out), opset=18, with_argmax=True, max_side=0, fp16_images=8,
        check_sizes=["1x3x97x131", "2x3x197x233", "1x3x64x64"]))
    assert result.parity.passed
    real = [r for r in result.parity.rows if r.graph == "fp16" and r.inputs.startswith("brain")]
    assert real and real[0].passed and real[0].argmax_agreement >= 0.995

    m16 = onnx.load(str(result.fp16_path))
    assert m16.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert {o.type.tensor_type.elem_type for o in m16.graph.output} == {TensorProto.FLOAT,
                                                                        TensorProto.UINT8}
    assert sum(t.data_type == TensorProto.FLOAT16 for t in m16.graph.initializer) >= 10
    info16 = ExportInfo.from_metadata_props({p.key: p.value for p in m16.metadata_props})
    assert info16.precision == "fp16" and info16.fp32_nodes == result.info_fp16.fp32_nodes
    report = json.loads(result.parity_path.read_text())
    assert report["parity"]["passed"] and report["fp32_nodes"] == info16.fp32_nodes

    # independent check on other val images than the export used (all of them, odd size)
    net, card = load_model(brain_checkpoint)
    ds = get_dataset("brain", "val", channel_mode=card.channel_mode)
    images = [as_hwc_uint8(ds[i][0], card.in_channels) for i in range(1, len(ds), 2)]
    x = np.stack([normalize(img, card.mean, card.std) for img in images])
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy().argmax(1)
    sess = ort.InferenceSession(str(result.fp16_path), providers=["CPUExecutionProvider"])
    logits, mask = sess.run(None, {"input": x})
    assert x.shape[2:] == (197, 233)
    assert (logits.argmax(1) == ref).mean() >= 0.995
    assert (mask == ref).mean() >= 0.995
