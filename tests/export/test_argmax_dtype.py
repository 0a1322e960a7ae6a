"""In-graph argmax: a uint8 `mask` where the classes fit (4x less to copy back than int32),
int32 on request (TensorRT 8.x rejects uint8 outputs); Segmenter, Triton configs and the
TensorRT build read either."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from segdeploy.artifacts import read_export_info
from segdeploy.engine.precision import TrtVersion, check_output_dtypes
from segdeploy.errors import BuildError, ExportError
from segdeploy.export import ExportOptions, run_export
from segdeploy.export.onnx_export import mask_dtype_for

ONNX_DTYPES = {onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.INT32: "int32"}


def output_dtypes(path: Path) -> dict[str, str]:
    graph = onnx.load(str(path), load_external_data=False).graph
    return {o.name: ONNX_DTYPES.get(o.type.tensor_type.elem_type, "float")
            for o in graph.output}


@pytest.fixture(scope="module")
def argmax_exports(brain_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
                   ) -> dict[str, tuple[Path, Path | None]]:
    """The brain U-Net exported with a uint8 mask (the default, FP16 too) and an int32 one."""
    folder = tmp_path_factory.mktemp("argmax")
    out = {}
    for dtype, fp16 in ((None, True), ("int32", False)):
        name = dtype or "default"
        result = run_export(brain_checkpoint, ExportOptions(
            output=str(folder / f"{name}.onnx"), opset=17, with_argmax=True,
            argmax_dtype=dtype, fp16=fp16, check_sizes=["1x1x97x131"], fp16_images=4))
        out[name] = (result.onnx_path, result.fp16_path)
    return out


def test_default_mask_is_uint8_in_the_graph_and_the_metadata(argmax_exports) -> None:
    fp32, fp16 = argmax_exports["default"]
    assert output_dtypes(fp32) == {"logits": "float", "mask": "uint8"}
    assert fp16 is not None and output_dtypes(fp16)["mask"] == "uint8"
    assert read_export_info(fp32).mask_dtype == "uint8"
    assert read_export_info(fp16).mask_dtype == "uint8"


def test_int32_mask_on_request(argmax_exports) -> None:
    fp32, _ = argmax_exports["int32"]
    assert output_dtypes(fp32)["mask"] == "int32"
    assert read_export_info(fp32).mask_dtype == "int32"


@pytest.mark.parametrize("name", ["default", "int32"])
def test_segmenter_masks_equal_the_logits_argmax(argmax_exports, name: str) -> None:
    from segdeploy.data import get_dataset
    from segdeploy.runtime import Segmenter

    ds = get_dataset("brain", "val")
    images = [ds[i][0] for i in (0, len(ds) // 2)]
    with Segmenter.load(argmax_exports[name][0], backend="onnxruntime", threads=1) as seg:
        assert seg._mask_name == "mask"  # predict reads the graph's own argmax
        raw = seg.runner.infer({"input": np.zeros((1, 1, 64, 64), np.float32)})["mask"]
        assert raw.dtype == (np.uint8 if name == "default" else np.int32)
        for image in images:
            mask = seg.predict(image)
            assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
            np.testing.assert_array_equal(mask, seg.image_logits(image).argmax(axis=0))
            assert len(np.unique(mask)) > 1  # a real segmentation, not all background


@pytest.mark.parametrize(("name", "triton"), [("default", "TYPE_UINT8"),
                                              ("int32", "TYPE_INT32")])
def test_triton_native_config_names_the_mask_dtype(argmax_exports, tmp_path: Path, name: str,
                                                   triton: str) -> None:
    from segdeploy.serving.triton_repo import RepoOptions, write_repository

    write_repository(argmax_exports[name][0], tmp_path / "repo",
                     RepoOptions(name="seg", native=True))
    native = (tmp_path / "repo/seg_native/config.pbtxt").read_text()
    mask = native[native.index('name: "mask"'):]
    assert mask.split("data_type: ", 1)[1].split()[0] == triton
    # the Python model returns Segmenter's masks: uint8 for 3 classes either way
    python = (tmp_path / "repo/seg/config.pbtxt").read_text()
    assert python[python.index('name: "MASK"'):].split("data_type: ", 1)[1].split()[0] \
        == "TYPE_UINT8"


def test_mask_dtype_rule() -> None:
    assert mask_dtype_for(None, 3) == "uint8"
    assert mask_dtype_for(None, 256) == "uint8"
    assert mask_dtype_for(None, 257) == "int32"
    assert mask_dtype_for("int32", 3) == "int32"
    with pytest.raises(ExportError, match="257 classes"):
        mask_dtype_for("uint8", 257)


def test_tensorrt_8_refuses_a_uint8_mask_before_building() -> None:
    with pytest.raises(BuildError, match="--argmax-dtype int32"):
        check_output_dtypes(TrtVersion.parse("8.6.1"), {"logits": "float32", "mask": "uint8"})
    check_output_dtypes(TrtVersion.parse("8.6.1"), {"logits": "float32", "mask": "int32"})
    check_output_dtypes(TrtVersion.parse("10.13.0"), {"logits": "float32", "mask": "uint8"})


def test_bench_times_a_graph_with_a_uint8_mask(argmax_exports) -> None:
    from segdeploy.bench.harness import plan_backends, run_bench

    backends, _ = plan_backends([argmax_exports["default"][0]], None,
                                ["onnxruntime", "segmenter"])
    report = run_bench(backends, [(1, 1, 97, 131)], warmup=0, iterations=2, progress=False)
    assert sorted(r.backend for r in report.results) == ["onnxruntime fp32",
                                                         "segmenter onnxruntime fp32"]
    assert all(r.stats.mean_ms > 0 for r in report.results)
