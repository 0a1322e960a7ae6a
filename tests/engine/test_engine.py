"""`segdeploy build` up to the point TensorRT is needed: paths, ONNX, profiles, options, CLI.

These run everywhere. Where TensorRT is missing (CI, this machine) the full build must stop
with MissingDependencyError naming segdeploy[tensorrt] and JetPack, leaving no file behind.
The tiny ONNX models are made with onnx.helper (no torch) and carry real segdeploy metadata.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

from segdeploy.artifacts import plan_manifest_path
from segdeploy.cli.build import request_from_options
from segdeploy.cli.main import main
from segdeploy.digest import sha256_file
from segdeploy.engine.engine_build import (
    BuildRequest,
    build_engine,
    default_plan_path,
    prepare_build,
    read_onnx_facts,
)
from segdeploy.engine.network import BuildProgress
from segdeploy.engine.profiles import ShapeProfile
from segdeploy.errors import ArtifactError, MissingDependencyError, UsageError
from segdeploy.manifest import ExportInfo, ModelCard, PlanManifest
from segdeploy.precision import Precision

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def tiny_card(**kw) -> ModelCard:
    base = dict(arch="tiny", num_classes=3, classes=["bg", "a", "b"], in_channels=3,
                size_multiple=8, min_size=16, train_size=[40, 56], output_stride=8)
    return ModelCard(**{**base, **kw})


def tiny_segmentation_onnx(path: Path, *, precision: str = "fp32", seed: int = 0,
                           source_sha256: str = "c0ffee", card: ModelCard | None = None,
                           opset: int = 17, metadata: bool = True) -> Path:
    """Conv3x3(3->8) + Relu + Conv1x1(8->3): input N x 3 x H x W -> logits N x 3 x H x W."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.5, (3, 8, 1, 1)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["h"], name="/enc/Conv",
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h"], ["r"], name="/enc/Relu"),
             helper.make_node("Conv", ["r", "w2"], ["logits"], name="/head/Conv")]
    dims = ["batch", 3, "height", "width"]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, dims)], [w1, b1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if metadata:
        info = ExportInfo(card=card or tiny_card(), precision=precision, opset=opset,
                          source_sha256=source_sha256)
        helper.set_model_props(model, info.to_metadata_props())
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tiny_onnx(tmp_path) -> Path:
    return tiny_segmentation_onnx(tmp_path / "tiny.onnx")


def outputs_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".plan", ".json", ".tmp")
                  or p.name.startswith("."))


# ------------------------------------------------------------------------ prepare_build

def test_default_paths():
    assert default_plan_path(Path("m/fcn8s.fp16.onnx")) == Path("m/fcn8s.plan")
    assert default_plan_path(Path("fcn8s.onnx")) == Path("fcn8s.plan")
    assert plan_manifest_path(Path("m/x.plan")) == Path("m/x.plan.json")


def test_onnx_facts(tiny_onnx):
    facts = read_onnx_facts(tiny_onnx)
    assert [(s.name, s.mode, s.dtype) for s in facts.inputs + facts.outputs] == \
        [("input", "input", "float32"), ("logits", "output", "float32")]
    assert facts.inputs[0].shape == ("batch", 3, "height", "width")
    assert facts.opset == 17 and facts.export.card.arch == "tiny"
    assert facts.sha256 == sha256_file(tiny_onnx)


def test_default_profiles_come_from_the_model_metadata(tiny_onnx):
    prep = prepare_build(BuildRequest(tiny_onnx))
    assert prep.plan_path == tiny_onnx.with_name("tiny.plan")
    assert prep.manifest_path.name == "tiny.plan.json"
    assert prep.profiles == [ShapeProfile((1, 3, 16, 16), (1, 3, 40, 56), (4, 3, 1024, 1024))]
    assert prep.geometry.name == "input" and prep.fp32_sibling is None


def test_explicit_profiles_outside_the_model_are_refused(tiny_onnx):
    bad = request_from_options(str(tiny_onnx), profiles=("min=1x3x12x16,opt=1x3x40x57,"
                                                         "max=2x1x64x64",))
    with pytest.raises(UsageError) as err:
        prepare_build(bad)
    text = str(err.value)
    assert "min H=12 is below the model's minimum 16" in text
    assert "opt W=57 is not a multiple of 8" in text and "C is fixed to 3" in text
    assert "omit --profile" in text


@pytest.mark.parametrize("make, error, message", [
    (lambda d: d / "missing.onnx", UsageError, "does not exist"),
    (lambda d: (d / "junk.onnx").write_bytes(b"\x00garbage" * 8) and d / "junk.onnx",
     ArtifactError, "not a complete ONNX model"),
    (lambda d: tiny_segmentation_onnx(d / "plain.onnx", metadata=False), ArtifactError,
     "no segdeploy metadata"),
])
def test_unusable_onnx_inputs(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        prepare_build(BuildRequest(make(tmp_path)))


def test_unwritable_or_missing_output_folder(tiny_onnx, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        prepare_build(BuildRequest(tiny_onnx, output=tmp_path / "nowhere" / "m.plan"))
    (tmp_path / "adir.plan").mkdir()
    with pytest.raises(UsageError, match="is a folder"):
        prepare_build(BuildRequest(tiny_onnx, output=tmp_path / "adir.plan"))
    with pytest.raises(UsageError, match="overwrite the ONNX input"):
        prepare_build(BuildRequest(tiny_onnx, output=tiny_onnx))


def test_fp32_sibling_is_found_only_when_it_is_the_same_model(tmp_path):
    fp16 = tiny_segmentation_onnx(tmp_path / "m.fp16.onnx", precision="fp16")
    assert prepare_build(BuildRequest(fp16)).fp32_sibling is None
    tiny_segmentation_onnx(tmp_path / "m.onnx", precision="fp32", source_sha256="other")
    assert prepare_build(BuildRequest(fp16)).fp32_sibling is None  # another checkpoint
    fp32 = tiny_segmentation_onnx(tmp_path / "m.onnx", precision="fp32")
    sibling = prepare_build(BuildRequest(fp16)).fp32_sibling
    assert sibling is not None and sibling.path == fp32
    assert prepare_build(BuildRequest(fp16)).plan_path == tmp_path / "m.plan"


def test_option_values_are_checked_before_tensorrt(tiny_onnx, tmp_path):
    with pytest.raises(UsageError, match="workspace size"):
        request_from_options(str(tiny_onnx), workspace="huge")
    with pytest.raises(UsageError, match="lacks opt, max"):
        request_from_options(str(tiny_onnx), profiles=("min=1x3x16x16", "opt=1x3x16x16"))
    for bad in (dict(precision="int8"), dict(optimization_level=9),
                dict(hardware_compatibility="turing+")):
        with pytest.raises(UsageError):
            prepare_build(BuildRequest(tiny_onnx, **bad))
    with pytest.raises(UsageError, match="does not exist"):
        prepare_build(BuildRequest(tiny_onnx, timing_cache=tmp_path / "no" / "t.cache"))
    request = request_from_options(
        str(tiny_onnx), output=str(tmp_path / "o.plan"), precision="fp32",
        profiles=("1x3x32x32", "min=1x3x16x16,opt=2x3x64x64,max=4x3x128x128"),
        workspace="1GiB", timing_cache=str(tmp_path / "t.cache"), version_compatible=True,
        hardware_compatibility="ampere+", optimization_level=2, cache_dir=str(tmp_path / "c"))
    prep = prepare_build(request)
    assert len(prep.profiles) == 2 and request.workspace_bytes == 1 << 30
    assert (tmp_path / "c").is_dir()  # the engine cache folder is made before any build


# ----------------------------------------------------------------- without TensorRT

@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_missing_tensorrt_names_the_extra_and_jetpack(tiny_onnx):
    with pytest.raises(MissingDependencyError) as err:
        build_engine(BuildRequest(tiny_onnx, show_progress=False))
    text = str(err.value)
    assert "segdeploy[tensorrt]" in text and "nvidia-jetpack" in text
    assert "python3-libnvinfer" in text
    assert outputs_in(tiny_onnx.parent) == []


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_cli_build_without_tensorrt_exits_1_and_writes_nothing(tiny_onnx, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["build", str(tiny_onnx), "--no-progress"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "tensorrt is not installed" in err and "Traceback" not in err
    assert outputs_in(tiny_onnx.parent) == []


@pytest.mark.parametrize("args, message", [
    (["--profile", "min=1x3x64x64,opt=1x3x64x64,max=1x3x63x64"], "not a multiple of 8"),
    (["--workspace", "plenty"], "workspace size"),
    (["-o", "/nonexistent-folder/x.plan"], "does not exist"),
])
def test_cli_reports_bad_input_in_one_line(tiny_onnx, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["build", str(tiny_onnx), "--no-progress", *args])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert message in err and "error:" in err and "Traceback" not in err
    assert outputs_in(tiny_onnx.parent) == []


def test_cli_missing_model(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["build", str(tmp_path / "nope.onnx")])
    assert exc.value.code == 1 and "does not exist" in capsys.readouterr().err


def test_build_is_registered_and_documented():
    from click.testing import CliRunner

    from segdeploy.cli.main import cli

    out = CliRunner().invoke(cli, ["build", "--help"]).output
    for option in ("--precision", "--profile", "--workspace", "--timing-cache",
                   "--version-compatible", "--hardware-compatibility", "--optimization-level",
                   "--cache-dir"):
        assert option in out


# --------------------------------------------------------------- manifest and progress

def test_plan_manifest_round_trip_with_build_fields():
    export = ExportInfo(card=tiny_card(), precision="fp16", fp32_nodes={"/head/Conv": "range"})
    manifest = PlanManifest(
        export=export, tensorrt_version="10.3.0", precision="fp16",
        profiles=[{"input": ShapeProfile((1, 3, 16, 16), (1, 3, 40, 56),
                                         (4, 3, 64, 64)).to_dict()}],
        io=[{"name": "input", "mode": "input", "dtype": "float32", "shape": [-1, 3, -1, -1]}],
        onnx_sha256="ab" * 32, gpu_name="Orin", compute_capability="8.7", cuda_version="12.6",
        build_flags={"precision_choice": {"onnx_source": "given"}, "version_compatible": False,
                     "layers": {"by_precision": {"fp16": 2}}},
        build_seconds=12.5, parity={"passed": True, "min_agreement": 0.999}, plan_sha256="cd")
    again = PlanManifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    assert again.to_dict() == manifest.to_dict()
    assert dataclasses.asdict(again.export.card) == dataclasses.asdict(tiny_card())


def test_build_progress_drives_rich_bars():
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(file=io.StringIO(), force_terminal=False)) as progress:
        tracker = BuildProgress(progress, max_depth=2)
        tracker.phase_start("Building engine", None, 3)
        tracker.phase_start("Tactic selection", "Building engine", 4)
        tracker.phase_start("Too deep", "Tactic selection", 2)
        assert tracker.step_complete("Tactic selection", 1) is True
        assert tracker.step_complete("Too deep", 0) is True
        tasks = {t.description.strip(): t for t in progress.tasks}
        assert set(tasks) == {"Building engine", "Tactic selection"}
        assert tasks["Tactic selection"].completed == 2
        tracker.phase_finish("Too deep")
        tracker.phase_finish("Tactic selection")
        assert [t.description.strip() for t in progress.tasks] == ["Building engine"]
        tracker.phase_finish("Building engine")
        assert progress.tasks[0].completed == 3
        tracker.phase_finish("never started")  # TensorRT callbacks must never raise
        tracker.cancelled = True
        assert tracker.step_complete("Building engine", 0) is False


def test_fp32_onnx_becomes_mixed_fp16_for_strongly_typed_builds(tiny_onnx, tmp_path):
    """The TensorRT >= 10 path converts on the fly; ONNX Runtime checks the result here."""
    import onnx

    from segdeploy.engine.engine_build import _network_source
    from segdeploy.engine.precision import decide_precision
    from segdeploy.engine.smoke_parity import run_parity
    from segdeploy.runtime.onnxruntime_runner import OnnxRuntimeRunner

    prep = prepare_build(BuildRequest(tiny_onnx, profiles=[ShapeProfile(
        (1, 3, 16, 16), (1, 3, 40, 56), (2, 3, 64, 64))]))
    export, graph = _network_source(decide_precision(10, "fp16", "fp32"), prep, prep.facts)
    assert export.precision == "fp16" and isinstance(graph, bytes)
    model = onnx.load_from_string(graph)
    assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    converted = tmp_path / "converted.onnx"
    converted.write_bytes(graph)
    summary = run_parity(OnnxRuntimeRunner(tiny_onnx, providers="cpu").activate(),
                         OnnxRuntimeRunner(converted, providers="cpu").activate(), export,
                         prep.profiles, reference_label="fp32")
    assert summary["passed"], summary
    kept, path = _network_source(decide_precision(8, "fp16", "fp32"), prep, prep.facts)
    # 8.x parses the FP32 graph (+ FP16 flag); the manifest still records an fp16 engine,
    # since Segmenter.info, `verify` thresholds and `bench` labels read that precision
    assert path == tiny_onnx and kept.precision == "fp16"
    as_fp32 = dataclasses.replace(prep, precision=Precision.FP32)
    kept, path = _network_source(decide_precision(10, "fp32", "fp32"), as_fp32, prep.facts)
    assert path == tiny_onnx and kept.precision == "fp32"
