"""Precision decisions per TensorRT version, option support, and engine-inspector parsing."""

from __future__ import annotations

import json
import types

import pytest

from segdeploy.engine.precision import (
    TrtVersion,
    check_build_options,
    check_hardware_compatibility,
    check_opset,
    check_supported,
    datatype_of,
    decide_precision,
    layer_precision,
    parse_workspace,
    require_fp16_layers,
    summarize_engine_layers,
    trt_only,
)
from segdeploy.errors import ArtifactError, BuildError, UsageError

# ------------------------------------------------------------------------------ versions


@pytest.mark.parametrize("text, expected", [
    ("8.5.2.2", (8, 5)), ("8.6.1.6", (8, 6)), ("10.3.0", (10, 3)), ("10.14.1.48.post1", (10, 14)),
    ("11.4.0.106", (11, 4)), ("10.0.0b6", (10, 0))])
def test_version_parses_major_minor(text, expected):
    v = TrtVersion.parse(text)
    assert (v.major, v.minor) == expected and str(v) == text


def test_version_compares_numerically():
    assert TrtVersion.parse("10.16.1") > TrtVersion.parse("10.9.0") > TrtVersion.parse("8.6.1")
    assert TrtVersion.parse("10.9").at_least(10, 9) and not TrtVersion.parse("10.8").at_least(10, 9)


def test_unreadable_version_is_a_build_error():
    with pytest.raises(BuildError, match="cannot read the TensorRT version"):
        TrtVersion.parse("unknown")


@pytest.mark.parametrize("text", ["8.4.3", "9.3.0", "7.2.3"])
def test_unsupported_versions_are_refused(text):
    with pytest.raises(BuildError, match="not supported"):
        check_supported(TrtVersion.parse(text))


@pytest.mark.parametrize("text", ["8.5.2", "8.6.1", "10.3.0", "11.0.0", "12.0.0"])
def test_supported_versions_pass(text):
    check_supported(TrtVersion.parse(text))


# --------------------------------------------------------------------- precision decisions
# (major, requested, onnx precision, fp32 sibling) -> (onnx source, network flags, builder flags)
CASES = [
    # TensorRT 8.5 / 8.6: weak typing, FP16 is a builder flag over the FP32 graph
    (8, "fp16", "fp32", False, "given", ("EXPLICIT_BATCH",), ("FP16",)),
    (8, "fp16", "fp16", True, "fp32-sibling", ("EXPLICIT_BATCH",), ("FP16",)),
    (8, "fp16", "fp16", False, "given", ("EXPLICIT_BATCH",), ("FP16",)),
    (8, "fp32", "fp32", False, "given", ("EXPLICIT_BATCH",), ()),
    (8, "fp32", "fp16", True, "fp32-sibling", ("EXPLICIT_BATCH",), ()),
    # TensorRT 10.x: strongly typed, precision from the ONNX
    (10, "fp16", "fp16", False, "given", ("STRONGLY_TYPED",), ()),
    (10, "fp16", "fp16", True, "given", ("STRONGLY_TYPED",), ()),
    (10, "fp16", "fp32", False, "convert-to-fp16", ("STRONGLY_TYPED",), ()),
    (10, "fp32", "fp32", False, "given", ("STRONGLY_TYPED",), ()),
    (10, "fp32", "fp16", True, "fp32-sibling", ("STRONGLY_TYPED",), ()),
    # TensorRT 11.x: always strongly typed, the deprecated flag is not set
    (11, "fp16", "fp16", False, "given", (), ()),
    (11, "fp16", "fp32", False, "convert-to-fp16", (), ()),
    (11, "fp32", "fp32", False, "given", (), ()),
    (11, "fp32", "fp16", True, "fp32-sibling", (), ()),
]


@pytest.mark.parametrize("major, requested, onnx, sibling, source, net_flags, builder_flags",
                         CASES)
def test_precision_choice(major, requested, onnx, sibling, source, net_flags, builder_flags):
    plan = decide_precision(major, requested, onnx, fp32_sibling=sibling)
    assert (plan.onnx_source, plan.network_flags, plan.builder_flags) == \
        (source, net_flags, builder_flags)
    assert plan.strongly_typed == (major >= 10)


@pytest.mark.parametrize("version", ["8.5.2", "8.6.1", "10.3.0", "10.16.1", "11.0.0", "11.4.0"])
def test_fp16_flag_never_on_the_strongly_typed_path(version):
    v = TrtVersion.parse(version)
    for requested in ("fp16", "fp32"):
        for onnx in ("fp16", "fp32"):
            for sibling in (False, True):
                try:
                    plan = decide_precision(v.major, requested, onnx, fp32_sibling=sibling)
                except UsageError:
                    continue
                weak = {"FP16", "EXPLICIT_BATCH"} & set(plan.builder_flags + plan.network_flags)
                assert bool(weak) == (v.major < 10), (version, requested, onnx, plan)


@pytest.mark.parametrize("major", [8, 10, 11])
def test_fp32_engine_from_fp16_onnx_needs_the_fp32_file(major):
    with pytest.raises(UsageError, match="fp32 engine cannot be built from a float16 ONNX"):
        decide_precision(major, "fp32", "fp16", fp32_sibling=False)


def test_bad_precisions_are_refused():
    with pytest.raises(UsageError, match="unknown precision"):
        decide_precision(10, "int4", "fp32")
    with pytest.raises(UsageError, match="int8 engine cannot be built from a fp32 ONNX"):
        decide_precision(10, "int8", "fp32")
    with pytest.raises(UsageError, match="fp32 engine cannot be built from an INT8 ONNX"):
        decide_precision(11, "fp32", "int8")


@pytest.mark.parametrize("major, flags, builder", [(8, ("EXPLICIT_BATCH",), ("INT8",)),
                                                   (10, ("STRONGLY_TYPED",), ()), (11, (), ())])
@pytest.mark.parametrize("requested", ["fp16", "int8"])
def test_int8_qdq_onnx_is_explicit_int8(major, flags, builder, requested):
    plan = decide_precision(major, requested, "int8")
    assert (plan.onnx_source, plan.network_flags, plan.builder_flags) == \
        ("given", flags, builder)
    assert plan.strongly_typed == (major >= 10)
    with pytest.raises(ArtifactError, match="precision 'bf16'"):
        decide_precision(10, "fp16", "bf16")


def test_trt8_needs_opset_17():
    check_opset(TrtVersion.parse("8.6.1"), 17)
    check_opset(TrtVersion.parse("10.3.0"), 18)
    with pytest.raises(BuildError, match="opset 18.*--opset 17"):
        check_opset(TrtVersion.parse("8.5.2"), 18)


# -------------------------------------------------------------------------- build options

def test_options_missing_from_trt_8_5_are_refused_together():
    with pytest.raises(UsageError) as err:
        check_build_options(TrtVersion.parse("8.5.2"), version_compatible=True,
                            hardware_compatibility="ampere+", optimization_level=3)
    text = str(err.value)
    assert "--version-compatible" in text and "--hardware-compatibility" in text
    assert "--optimization-level" in text and "8.5.2" in text


def test_same_cc_needs_trt_10_9():
    check_build_options(TrtVersion.parse("8.6.1"), hardware_compatibility="ampere+",
                        version_compatible=True, optimization_level=5)
    check_build_options(TrtVersion.parse("10.9.0"), hardware_compatibility="same-cc")
    with pytest.raises(UsageError, match="same-cc needs TensorRT >= 10.9"):
        check_build_options(TrtVersion.parse("10.3.0"), hardware_compatibility="same-cc")


def test_optimization_level_range():
    with pytest.raises(UsageError, match="out of range"):
        check_build_options(TrtVersion.parse("10.3.0"), optimization_level=6)


def test_hardware_compatibility_needs_ampere():
    check_hardware_compatibility("ampere+", "8.7")
    check_hardware_compatibility(None, "7.2")
    with pytest.raises(UsageError, match="compute capability 7.5"):
        check_hardware_compatibility("ampere+", "7.5")
    # SAME_COMPUTE_CAPABILITY is documented for Turing and later, not only Ampere
    check_hardware_compatibility("same-cc", "7.5")
    with pytest.raises(UsageError, match="Turing or newer.*7.2"):
        check_hardware_compatibility("same-cc", "7.2")


@pytest.mark.parametrize("text, expected", [("512MiB", 512 << 20), ("4GiB", 4 << 30),
                                            ("2g", 2 << 30), ("1024", 1024 << 20),
                                            ("1.5 GB", 3 << 29), ("64k", 64 << 10)])
def test_workspace_sizes(text, expected):
    assert parse_workspace(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1GiB", "0", "4 parsecs"])
def test_bad_workspace_sizes(text):
    with pytest.raises(UsageError, match="workspace size"):
        parse_workspace(text)


# ------------------------------------------------------------------------ version gating

@trt_only(below=(10, 0))
def _weak_only(trt, value):
    return value * 2


@trt_only(min_version=(10, 9))
def _new_only(trt):
    return "ok"


def test_trt_only_refuses_calls_outside_its_range():
    """A stand-in module carrying only `__version__`: the gate reads nothing else."""
    def version_stub_for_gate_test(v):
        return types.SimpleNamespace(__version__=v)
    assert _weak_only(version_stub_for_gate_test("8.6.1"), 21) == 42
    with pytest.raises(BuildError, match="exist only in TensorRT >= 0.0 and < 10.0"):
        _weak_only(version_stub_for_gate_test("10.3.0"), 1)
    assert _new_only(version_stub_for_gate_test("11.0.0")) == "ok"
    with pytest.raises(BuildError, match="_new_only"):
        _new_only(version_stub_for_gate_test("10.8.0"))
    assert _weak_only.trt_range == ((0, 0), (10, 0))


# ------------------------------------------------------------------ engine inspector JSON
# Written from the documented format of IEngineInspector.get_engine_information(JSON) with
# ProfilingVerbosity.DETAILED: TensorRT >= 10 spells types "Half(...)"; 8.x "... FP16 format".

def _conv(name, weights, out_format):
    return {"Name": name, "LayerType": "CaskConvolution",
            "Inputs": [{"Name": "x", "Location": "Device", "Dimensions": [1, 8, 64, 64],
                        "Format/Datatype": out_format}],
            "Outputs": [{"Name": f"{name}_out", "Location": "Device",
                         "Dimensions": [1, 8, 64, 64], "Format/Datatype": out_format}],
            "ParameterType": "Convolution", "Kernel": [3, 3],
            "Weights": {"Type": weights, "Count": 576}, "Bias": {"Type": weights, "Count": 8},
            "TacticName": "sm80_xmma_fprop", "StreamId": 0, "Metadata": f"[ONNX Layer: {name}]"}


REFORMAT_IN = {"Name": "Reformatting CopyNode for Input Tensor 0 to /enc/conv1/Conv",
               "LayerType": "Reformat",
               "Inputs": [{"Name": "input", "Format/Datatype": "Row major linear FP32"}],
               "Outputs": [{"Name": "r", "Format/Datatype": "Channel major FP16 format where "
                                                            "channel % 8 == 0"}],
               "ParameterType": "Reformat", "Origin": "REFORMAT", "StreamId": 0}
FP16_ENGINE_TRT10 = {"Layers": [
    REFORMAT_IN,
    _conv("/enc/conv1/Conv + /enc/relu1/Relu", "Half", "Half(32768,1:8,512,8)"),
    _conv("/head/Conv", "Half", "Half(4096,1:8,64,1)"),
    {"Name": "/Resize", "LayerType": "Resize",
     "Inputs": [{"Name": "h", "Format/Datatype": "Half(4096,1:8,64,1)"}],
     "Outputs": [{"Name": "up", "Format/Datatype": "Float(65536,4096,64,1)"}]},
], "Bindings": ["input", "logits"]}
FP16_ENGINE_TRT8 = {"Layers": [
    _conv("Conv_0 + Relu_1", "Half", "Channel major FP16 format where channel % 8 == 0"),
    _conv("Conv_2", "Half", "Row major linear FP16 format"),
], "Bindings": ["input", "logits"]}
FP32_ENGINE = {"Layers": [_conv("/enc/conv1/Conv", "Float", "Float(262144,4096,64,1)"),
                          _conv("/head/Conv", "Float", "Row major linear FP32")],
               "Bindings": ["input", "logits"]}
ONLY_IO_REFORMATS = {"Layers": [REFORMAT_IN,
                                _conv("/c", "Float", "Float(262144,4096,64,1)")],
                     "Bindings": ["input", "logits"]}


@pytest.mark.parametrize("text, expected", [
    ("Half(32768,1:8,512,8)", "fp16"), ("Float(65536,4096,64,1)", "fp32"),
    ("Channel major FP16 format where channel % 8 == 0", "fp16"),
    ("Row major linear FP32", "fp32"), ("Row major linear INT32 format", "int32"),
    ("Int8(1024,1:32,32,1)", "int8"), ("BFloat16(64,1)", "bf16"), ("Half", "fp16"),
    ("Float", "fp32"), ("Row major linear BFloat16 format", "bf16"),
    ("N/A due to dynamic shapes", None), (None, None)])
def test_datatype_of_inspector_strings(text, expected):
    assert datatype_of(text) == expected


def test_layer_precision_prefers_weights_then_outputs():
    assert layer_precision(_conv("c", "Half", "Float(1,1)")) == "fp16"
    assert layer_precision({"Outputs": [{"Format/Datatype": "N/A due to dynamic shapes"}],
                            "Inputs": [{"Format/Datatype": "Half(64,1)"}]}) == "fp16"
    assert layer_precision({"Outputs": [{"Format/Datatype": "N/A due to dynamic shapes"}]}) == \
        "unknown"


@pytest.mark.parametrize("engine", [FP16_ENGINE_TRT10, FP16_ENGINE_TRT8])
def test_fp16_engines_are_confirmed(engine):
    summary = summarize_engine_layers(json.dumps(engine))
    assert summary.detailed and summary.fp16 >= 2
    require_fp16_layers(summary, "fp16")
    assert summary.to_dict()["by_precision"]["fp16"] == summary.fp16


def test_trt10_engine_counts_reformats_apart():
    summary = summarize_engine_layers(FP16_ENGINE_TRT10)
    assert summary.total == 4 and summary.reformats == 1
    assert summary.counts == {"fp16": 2, "fp32": 1}  # the Resize writes float32
    assert summary.fp16_examples[0].startswith("/enc/conv1/Conv")


@pytest.mark.parametrize("engine", [FP32_ENGINE, ONLY_IO_REFORMATS])
def test_fp16_request_with_fp32_engine_fails_loudly(engine):
    summary = summarize_engine_layers(json.dumps(engine))
    require_fp16_layers(summary, "fp32")  # nothing to confirm for fp32
    with pytest.raises(BuildError, match="holds no FP16 layer.*fp32: 2|holds no FP16 layer"):
        require_fp16_layers(summary, "fp16")


def test_io_casts_alone_do_not_confirm_fp16():
    """keep_io_types puts float32 -> float16 Casts at the I/O of a mixed ONNX: their Half
    tensors are no FP16 compute, so an engine whose convolutions all run in float32 must fail."""
    cast_in = {"Name": "/input_cast", "LayerType": "Cast", "Origin": "CAST",
               "Inputs": [{"Name": "input", "Format/Datatype": "Float(786432,262144,512,1)"}],
               "Outputs": [{"Name": "x16", "Format/Datatype": "Half(786432,262144,512,1)"}]}
    cast_out = {**cast_in, "Name": "/output_cast",
                "Inputs": [{"Name": "y16", "Format/Datatype": "Half(98304,32768,64,1)"}]}
    engine = {"Layers": [cast_in, _conv("/c", "Float", "Float(262144,4096,64,1)"), cast_out]}
    summary = summarize_engine_layers(engine)
    assert summary.reformats == 2 and summary.counts == {"fp32": 1}
    with pytest.raises(BuildError, match="holds no FP16 layer"):
        require_fp16_layers(summary, "fp16")
    # a real FP16 convolution between the same casts is confirmed
    engine["Layers"][1] = _conv("/c", "Half", "Half(32768,1:8,512,8)")
    require_fp16_layers(summarize_engine_layers(engine), "fp16")


def test_layer_names_only_cannot_confirm_fp16():
    summary = summarize_engine_layers({"Layers": ["conv1", "conv2"], "Bindings": ["input"]})
    assert not summary.detailed
    with pytest.raises(BuildError, match="DETAILED"):
        require_fp16_layers(summary, "fp16")


@pytest.mark.parametrize("bad", ["not json", json.dumps({"Bindings": []}), json.dumps([1])])
def test_malformed_inspector_output(bad):
    with pytest.raises(BuildError):
        summarize_engine_layers(bad)


def test_myelin_fused_engine_is_confirmed_by_the_parsed_networks_fp16_layers():
    # TensorRT >= 10 may fuse a strongly typed network into one Myelin "ForeignNode" layer
    # whose inspector entry shows only float32 I/O and no weights.
    engine = {"Layers": [{"Name": "{ForeignNode[/conv1/Conv.../head/Conv]}",
                          "LayerType": "Myelin",
                          "Inputs": [{"Name": "input", "Format/Datatype": "Row major linear FP32"}],
                          "Outputs": [{"Name": "logits",
                                       "Format/Datatype": "Row major linear FP32"}]}],
              "Bindings": ["input", "logits"]}
    summary = summarize_engine_layers(engine)
    assert summary.foreign == 1 and summary.fp16 == 0
    with pytest.raises(BuildError, match="no FP16 layer"):
        require_fp16_layers(summary, "fp16")  # nothing proves FP16 yet
    summary.network_fp16_layers = 12  # the builder counted FP16 layers in the typed network
    require_fp16_layers(summary, "fp16")
    assert summary.to_dict()["network_fp16_layers"] == 12
