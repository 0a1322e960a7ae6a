"""Every reference model exports to ONNX with dynamic batch/H/W and matches PyTorch in ORT.

The export module owns the real pipeline; this guards the models' side of the contract:
no shape-specialising Python in forward (FCN's fixed-offset crops, U-Net's resize/crop).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from segdeploy.reference_models import get_model, list_models

ort = pytest.importorskip("onnxruntime")


def _sizes(name: str) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    if name == "unet_valid":  # needs >= 188 pixels
        return (2, 3, 221, 253), [(1, 3, 197, 233), (1, 3, 253, 301)]
    return (2, 3, 67, 95), [(1, 3, 97, 131), (3, 3, 33, 35)]


def _check(model: torch.nn.Module, path: Path, tests: list[tuple[int, ...]]) -> None:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in tests:
        x = torch.randn(*shape)
        with torch.no_grad():
            ref = model(x).numpy()
        out = sess.run(None, {"input": x.numpy()})[0]
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-4)


CASES = [(name, {}) for name in list_models()] + [("fcn8s", {"paper_padding": False})]


@pytest.mark.parametrize("name,options", CASES, ids=[n + "-".join(["", *o]) for n, o in CASES])
def test_legacy_opset17_dynamic_axes(name: str, options: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = get_model(name, num_classes=3, width=0.125, **options).eval()
    example, tests = _sizes(name)
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(*example),), str(path), dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                        "logits": {0: "batch", 2: "out_h", 3: "out_w"}})
    _check(model, path, tests)


@pytest.mark.slow
@pytest.mark.parametrize("name,options", [("fcn8s", {}), ("fcn8s", {"paper_padding": False})])
def test_dynamo_dynamic_shapes(name: str, options: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = get_model(name, num_classes=2, width=0.125, **options).eval()
    example, tests = _sizes(name)
    low = max(2, model.meta["min_size"])
    dims = {0: torch.export.Dim("batch", min=1, max=64),
            2: torch.export.Dim("height", min=low, max=4096),
            3: torch.export.Dim("width", min=low, max=4096)}
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(*example),), str(path), dynamo=True,
                          input_names=["input"], output_names=["logits"],
                          dynamic_shapes={"x": dims})
    _check(model, path, tests)
