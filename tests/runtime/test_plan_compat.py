"""Plan manifests: a plan from another TensorRT version or GPU is refused before TensorRT
sees it (pure functions, no TensorRT needed)."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import pytest

from segdeploy.errors import ArtifactError, MissingDependencyError
from segdeploy.manifest import ExportInfo, ModelCard, PlanManifest
from segdeploy.runtime import Segmenter, TensorRTRunner
from segdeploy.runtime.plan_compat import (
    check_compute_capability,
    check_plan_compat,
    check_plan_file,
    check_tensorrt_version,
    manifest_path,
    parse_version,
    read_plan_manifest,
)


def make_manifest(**overrides) -> PlanManifest:
    card = ModelCard(arch="unet", num_classes=3, classes=["bg", "grey", "white"])
    fields = dict(export=ExportInfo(card=card), tensorrt_version="10.3.0.26", precision="fp16",
                  profiles=[{"input": {"min": [1, 3, 64, 64], "opt": [1, 3, 256, 256],
                                       "max": [4, 3, 512, 512]}}],
                  io=[{"name": "input", "mode": "input", "dtype": "float32",
                       "shape": [-1, 3, -1, -1]},
                      {"name": "logits", "mode": "output", "dtype": "float32",
                       "shape": [-1, 3, -1, -1]}],
                  onnx_sha256="ab" * 32, gpu_name="Orin", compute_capability="8.7")
    fields.update(overrides)
    return PlanManifest(**fields)


def write_plan(tmp_path, payload=b"plan bytes " * 100, **overrides):
    plan = tmp_path / "model.plan"
    plan.write_bytes(payload)
    manifest = make_manifest(plan_sha256=hashlib.sha256(payload).hexdigest(), **overrides)
    manifest_path(plan).write_text(json.dumps(manifest.to_dict()))
    return plan, manifest


def test_version_rules():
    m = make_manifest()
    check_tensorrt_version(m, "10.3.0.30")  # same major.minor.patch: a rebuild only changes
    for other in ("10.4.0", "8.6.1", "10.3.1"):
        with pytest.raises(ArtifactError, match="segdeploy build") as info:
            check_tensorrt_version(m, other, plan="fcn8s.plan")
        assert "TensorRT 10.3.0.26" in str(info.value) and other in str(info.value)
    compatible = make_manifest(build_flags={"version_compatible": True})
    check_tensorrt_version(compatible, "10.7.0")
    check_tensorrt_version(compatible, "11.0.0")  # TensorRT 11 runs 10.x version-compatible plans
    with pytest.raises(ArtifactError):
        check_tensorrt_version(compatible, "10.2.0")  # older than the build
    with pytest.raises(ArtifactError, match="or 11.x"):
        check_tensorrt_version(compatible, "12.0.0")
    vc86 = make_manifest(tensorrt_version="8.6.1", build_flags={"version_compatible": True})
    check_tensorrt_version(vc86, "8.6.2")
    check_tensorrt_version(vc86, "10.3.0")  # 8.6 version-compatible plans run on TensorRT 10
    for refused in ("11.0.0", "8.6.0"):  # 8 -> 11 is not supported; older runtime
        with pytest.raises(ArtifactError):
            check_tensorrt_version(vc86, refused)
    with pytest.raises(ArtifactError):  # version compatibility starts with TensorRT 8.6
        check_tensorrt_version(make_manifest(tensorrt_version="8.5.3",
                                             build_flags={"version_compatible": True}), "8.6.1")
    assert parse_version("8.6.1.post1") == (8, 6, 1)
    with pytest.raises(ArtifactError):
        parse_version("unknown")


def test_compute_capability_rules():
    m = make_manifest()
    check_compute_capability(m, "8.7")
    with pytest.raises(ArtifactError, match="compute capability 8.7") as info:
        check_compute_capability(m, "9.0")
    assert "Orin" in str(info.value) and "rebuild" in str(info.value)
    ampere_plus = make_manifest(build_flags={"hardware_compatibility": "ampere_plus"})
    check_compute_capability(ampere_plus, "9.0")
    with pytest.raises(ArtifactError, match="Ampere"):
        check_compute_capability(ampere_plus, "7.5")
    check_compute_capability(make_manifest(compute_capability=""), "7.5")  # unknown: TRT decides
    with pytest.raises(ArtifactError, match="TensorRT"):
        check_plan_compat(m, tensorrt_version="10.4.0", compute_capability="8.7")


def test_sidecar_and_plan_file_checks(tmp_path):
    plan, manifest = write_plan(tmp_path)
    loaded = read_plan_manifest(plan)
    assert loaded.tensorrt_version == "10.3.0.26" and loaded.export.card.num_classes == 3
    check_plan_file(plan, loaded)
    plan.write_bytes(plan.read_bytes()[:-10])  # truncated
    with pytest.raises(ArtifactError, match="truncated"):
        check_plan_file(plan, loaded)
    check_plan_file(plan, loaded, verify_sha256=False)
    manifest_path(plan).write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable"):
        read_plan_manifest(plan)
    manifest_path(plan).unlink()
    with pytest.raises(ArtifactError, match="no manifest model.plan.json"):
        read_plan_manifest(plan)
    plan.write_bytes(b"")
    with pytest.raises(ArtifactError, match="empty"):
        check_plan_file(plan, None)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="checks the message where TensorRT is absent")
def test_missing_tensorrt_names_the_extra(tmp_path):
    plan, _ = write_plan(tmp_path)
    runner = TensorRTRunner(plan)  # construction needs nothing
    with pytest.raises(MissingDependencyError, match=r"segdeploy\[tensorrt\]"):
        runner.activate()
    assert not runner.is_active
    with pytest.raises(MissingDependencyError, match=r"segdeploy\[tensorrt\]"):
        Segmenter.load(plan)
    # a corrupt plan is caught by its manifest checksum before TensorRT is even needed
    plan.write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        Segmenter.load(plan)


def test_plan_without_manifest_is_refused(tmp_path):
    plan = tmp_path / "bare.engine"
    plan.write_bytes(np.zeros(10, np.uint8).tobytes())
    with pytest.raises(ArtifactError, match="no manifest bare.engine.json"):
        Segmenter.load(plan)
