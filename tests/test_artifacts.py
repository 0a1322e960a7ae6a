"""One table of artifact facts: every command and the runtime agree on what a file is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from segdeploy.artifacts import (
    PLAN_SUFFIXES,
    plan_manifest_path,
    read_plan_manifest,
    write_plan_manifest,
)
from segdeploy.cli.main import cli
from segdeploy.errors import ArtifactError
from segdeploy.manifest import ExportInfo, ModelCard, PlanManifest
from segdeploy.runtime.backends import backend_for


def manifest() -> PlanManifest:
    card = ModelCard(arch="unet", num_classes=2, classes=["bg", "fg"], in_channels=1,
                     mean=[0.5], std=[0.25])
    return PlanManifest(export=ExportInfo(card=card), tensorrt_version="10.3.0",
                        precision="fp16", profiles=[], io=[], onnx_sha256="ab" * 32)


@pytest.mark.parametrize("suffix", PLAN_SUFFIXES)
def test_segmenter_and_info_accept_the_same_plan_suffixes(tmp_path: Path, suffix: str) -> None:
    plan = tmp_path / f"m{suffix}"
    plan.write_bytes(b"plan bytes")
    write_plan_manifest(plan, manifest())
    assert backend_for(plan, None).name == "tensorrt"
    result = CliRunner().invoke(cli, ["info", "--json", str(plan)])
    assert result.exit_code == 0, result.output
    assert "TensorRT plan" in result.output and "10.3.0" in result.output


def test_manifest_round_trip_and_sidecar_rule(tmp_path: Path) -> None:
    plan = tmp_path / "m.engine"
    path = write_plan_manifest(plan, manifest())
    assert path == plan_manifest_path(plan) == tmp_path / "m.engine.json"
    assert read_plan_manifest(plan).export.card.classes == ["bg", "fg"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.engine.json"]  # no temporary left


def test_a_manifest_that_is_not_an_object_is_an_artifact_error(tmp_path: Path) -> None:
    plan = tmp_path / "m.plan"
    plan_manifest_path(plan).write_text(json.dumps([1, 2, 3]))
    with pytest.raises(ArtifactError, match="holds a JSON list"):
        read_plan_manifest(plan)
