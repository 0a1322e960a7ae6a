"""One table of backends: a new backend is one module (tests/runtime/toy_backend.py) plus one
row, and Segmenter.load, `segdeploy bench` and every `--backend` choice see it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_run import run_cli
from toy_backend import ToyThresholdRunner

from segdeploy.errors import UsageError
from segdeploy.runtime import Segmenter
from segdeploy.runtime.backends import (
    BackendSpec,
    backend_for,
    backend_names,
    get_backend,
    register_backend,
    unregister_backend,
)


@pytest.fixture
def toy_row() -> Iterator[BackendSpec]:
    spec = register_backend(BackendSpec(
        "toy", ToyThresholdRunner, (".onnx",), aliases=("toy-threshold",),
        accepted_options=frozenset({"threads"}), summary="a test's numpy threshold"))
    try:
        yield spec
    finally:
        unregister_backend("toy")
    assert "toy" not in backend_names()


def test_builtin_rows_and_aliases() -> None:
    assert backend_names()[:3] == ("onnxruntime", "openvino", "tensorrt")
    assert get_backend("ORT").name == get_backend("onnx").name == "onnxruntime"
    assert get_backend("trt").name == "tensorrt" and get_backend("ov").name == "openvino"
    assert backend_for(Path("m.onnx")).name == "onnxruntime"
    assert backend_for(Path("m.engine")).name == "tensorrt"
    with pytest.raises(UsageError, match="unknown backend 'caffe'"):
        get_backend("caffe")
    assert backend_for(Path("model.bin"), "trt").name == "tensorrt"  # the runner judges bytes
    with pytest.raises(UsageError, match="cannot tell the backend of m.pt"):
        backend_for(Path("m.pt"))


def test_a_name_is_registered_once(toy_row: BackendSpec) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_backend(BackendSpec("ort", ToyThresholdRunner, (".onnx",)))
    with pytest.raises(ValueError, match="already registered"):
        register_backend(toy_row)


def test_options_a_backend_does_not_take_are_refused() -> None:
    spec = get_backend("tensorrt")
    with pytest.raises(UsageError, match="threads= applies to ONNX Runtime and OpenVINO only, "
                                         "not to TensorRT.*backend='onnxruntime' / 'openvino'"):
        spec.runner(Path("m.plan"), threads=2)
    with pytest.raises(UsageError, match="precision='fp16' for openvino"):
        get_backend("openvino").runner(Path("m.onnx"), precision="fp16")


def test_toy_backend_in_segmenter_bench_and_cli(toy_row: BackendSpec, brain_onnx,
                                                tmp_path: Path, capsys) -> None:
    fp32, _ = brain_onnx
    with Segmenter.load(fp32, backend="toy", threads=1) as seg:
        assert isinstance(seg.runner, ToyThresholdRunner)
        image = np.zeros((40, 56), np.uint8)
        image[10:30, 20:40] = 200
        mask = seg.predict(image)
    assert mask.shape == (40, 56) and mask[20, 30] == 1 and mask[2, 2] == 0
    with pytest.raises(UsageError, match="providers= applies to ONNX Runtime only, not to toy"):
        Segmenter.load(fp32, backend="toy-threshold", providers="cpu")

    for command in ("bench", "predict", "verify"):
        code, out, err = run_cli([command, "--help"], capsys)
        assert code == 0, err
        assert "toy" in out, f"{command} --help lists no toy backend"
    code, out, err = run_cli(["bench", "--engine", str(fp32), "--backend", "toy", "-s",
                              "1x1x64x64", "-n", "2", "--warmup", "0", "--json",
                              str(tmp_path / "b.json")], capsys)
    assert code == 0, err
    assert "toy fp32" in (tmp_path / "b.json").read_text()
    out = tmp_path / "m.png"
    image_path = tmp_path / "img.png"
    from PIL import Image

    Image.fromarray(image).save(image_path)
    code, _, err = run_cli(["predict", "--engine", str(fp32), "--backend", "toy",
                            str(image_path), "-o", str(out)], capsys)
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(out)), mask)
