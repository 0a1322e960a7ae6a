"""config.pbtxt text: what each field says, and that Triton's real schema accepts it."""

from __future__ import annotations

import importlib.util

import pytest

from segdeploy.manifest import ExportInfo, ModelCard
from segdeploy.serving import triton_config as tc
from segdeploy.serving.errors import ConfigSchemaError
from segdeploy.serving.triton_repo import (
    Graph,
    RepoOptions,
    native_model_config,
    python_model_config,
)

HAVE_SCHEMA = importlib.util.find_spec("tritonclient") is not None
needs_schema = pytest.mark.skipif(not HAVE_SCHEMA, reason="tritonclient (the model-config "
                                  "schema) is not installed here; make test-serving runs this")


def graph(*, uint8: bool = False, argmax: bool = False, classes: int = 3) -> Graph:
    card = ModelCard(arch="unet", num_classes=classes, classes=[f"c{i}" for i in range(classes)],
                     in_channels=1, mean=[0.5], std=[0.25], output_stride=16,
                     train_size=[128, 128], channel_mode="grey")
    info = ExportInfo(card=card, output_names=["logits", "mask"] if argmax else ["logits"],
                      input_dtype="uint8" if uint8 else "float32", preprocess_in_graph=uint8,
                      argmax_in_graph=argmax, input_layout="NHWC" if uint8 else "NCHW")
    inp = tc.Tensor("input", "uint8", (-1, -1, 1)) if uint8 else \
        tc.Tensor("input", "float32", (1, -1, -1))
    outs = [tc.Tensor("logits", "float32", (classes, -1, -1))]
    if argmax:
        outs.append(tc.Tensor("mask", "int32", (-1, -1)))
    return Graph(info, 1, "uint8" if classes < 256 else "int32", [inp], outs)


def all_configs() -> dict[str, str]:
    opts = RepoOptions(max_batch=16, instances=2)
    return {
        "python_onnxruntime": python_model_config("m", "m.onnx", graph(), "onnxruntime", opts),
        "python_openvino": python_model_config("m", "m.onnx", graph(), "openvino", opts),
        "python_tensorrt": python_model_config("m", "m.plan", graph(argmax=True), "tensorrt",
                                               opts),
        "python_300_classes": python_model_config("m", "m.onnx", graph(classes=300),
                                                  "onnxruntime", opts),
        "onnxruntime_onnx": native_model_config("n", graph(), False, opts),
        "onnxruntime_onnx_trt_fp16": native_model_config(
            "n", graph(uint8=True, argmax=True), False,
            RepoOptions(native=True, tensorrt_accelerator=True, fp16=True)),
        "tensorrt_plan": native_model_config("n", graph(argmax=True), True, opts),
    }


def test_python_model_takes_ragged_uint8_images_and_carries_the_card() -> None:
    text = all_configs()["python_onnxruntime"]
    assert 'backend: "python"' in text and "max_batch_size: 16" in text
    assert "data_type: TYPE_UINT8\n    dims: [ -1, -1, 1 ]\n    allow_ragged_batch: true" in text
    assert 'name: "MASK"\n    data_type: TYPE_UINT8' in text
    assert 'name: "LOGITS"\n    data_type: TYPE_FP32\n    dims: [ 3, -1, -1 ]' in text
    assert "max_queue_delay_microseconds: 2000" in text
    assert "count: 2\n    kind: KIND_CPU" in text
    assert 'key: "segdeploy.card"' in text and '\\"classes\\": [\\"c0\\"' in text
    assert 'key: "backend"\n  value { string_value: "onnxruntime" }' in text


def test_instances_run_where_the_backend_runs() -> None:
    configs = all_configs()
    assert "kind: KIND_CPU" in configs["python_openvino"]
    assert "kind: KIND_GPU" in configs["python_tensorrt"]
    assert "kind: KIND_GPU" in configs["onnxruntime_onnx"]
    assert "TYPE_INT32" in configs["python_300_classes"].split('name: "MASK"')[1][:40]


def test_native_models_have_dynamic_dims_and_warm_up_at_the_card_size() -> None:
    configs = all_configs()
    onnx = configs["onnxruntime_onnx"]
    assert 'platform: "onnxruntime_onnx"' in onnx and "dims: [ 1, -1, -1 ]" in onnx
    assert "dims: [ 1, 128, 128 ]" in onnx and "zero_data: true" in onnx
    assert "gpu_execution_accelerator" not in onnx
    trt = configs["onnxruntime_onnx_trt_fp16"]
    assert 'name : "tensorrt"' in trt and 'value: "FP16"' in trt
    assert "dims: [ 128, 128, 1 ]" in trt and "data_type: TYPE_UINT8" in trt  # NHWC uint8
    plan = configs["tensorrt_plan"]
    assert 'platform: "tensorrt_plan"' in plan and 'name: "mask"' in plan


def test_strings_are_escaped() -> None:
    assert tc.quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


@needs_schema
@pytest.mark.parametrize("kind", list(all_configs()))
def test_every_generated_config_parses_against_tritons_schema(kind: str) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    text = all_configs()[kind]
    assert tc.check_config(text) is True
    parsed = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert parsed.max_batch_size in (8, 16) and parsed.dynamic_batching is not None
    if kind.startswith("python"):
        assert parsed.backend == "python" and parsed.input[0].allow_ragged_batch
        assert "segdeploy.card" in parsed.parameters


@needs_schema
@pytest.mark.parametrize("broken, needle", [
    ("max_batch_size: 16", "max_batch: 16"),            # unknown field
    ("kind: KIND_CPU", "kind: KIND_TPU"),               # unknown enum value
    ("data_type: TYPE_UINT8", "data_type: UINT8"),      # the HTTP name, not the enum
])
def test_the_schema_check_fails_on_a_wrong_config(broken: str, needle: str) -> None:
    text = all_configs()["python_onnxruntime"].replace(broken, needle, 1)
    with pytest.raises(ConfigSchemaError, match="does not parse as Triton's"):
        tc.check_config(text)


@pytest.mark.skipif(HAVE_SCHEMA, reason="tritonclient is installed: the check runs")
def test_without_tritonclient_the_check_says_it_was_skipped() -> None:
    assert tc.check_config("not a config at all") is False


def test_unknown_dtype_is_refused() -> None:
    with pytest.raises(ConfigSchemaError, match="no Triton data type"):
        tc.Tensor("x", "complex64", (-1,)).pbtxt()
