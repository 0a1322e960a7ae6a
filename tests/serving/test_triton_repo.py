"""`segdeploy triton`: repository layout, atomic publish, refusals (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_run import cli_fails, run_cli

from segdeploy.errors import ArtifactError, UsageError
from segdeploy.manifest import ExportInfo, ModelCard, PlanManifest
from segdeploy.serving import triton_repo
from segdeploy.serving.errors import ConfigSchemaError
from segdeploy.serving.triton_repo import RepoOptions, model_name, write_repository


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_repository_layout_and_card(small_onnx: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    result = write_repository(small_onnx, repo, RepoOptions(name="seg", native=True,
                                                            max_batch=4))
    assert [p.name for p in result.models] == ["seg", "seg_native"]
    assert tree(repo) == sorted(["seg", "seg/1", f"seg/1/{small_onnx.name}", "seg/1/model.py",
                          "seg/config.pbtxt", "seg_native", "seg_native/1",
                          "seg_native/1/model.onnx", "seg_native/config.pbtxt"])
    assert (repo / "seg/1" / small_onnx.name).read_bytes() == small_onnx.read_bytes()
    assert (repo / "seg/1/model.py").read_text() == triton_repo.MODEL_PY.read_text()
    config = (repo / "seg/config.pbtxt").read_text()
    assert 'name: "seg"' in config and "max_batch_size: 4" in config
    assert f'key: "artifact"\n  value {{ string_value: "{small_onnx.name}" }}' in config
    assert 'platform: "onnxruntime_onnx"' in (repo / "seg_native/config.pbtxt").read_text()


def test_existing_model_is_refused_then_replaced_with_force(small_onnx: Path,
                                                            tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_repository(small_onnx, repo, RepoOptions(name="seg"))
    (repo / "other").mkdir()  # another model in the repository is left alone
    marker = repo / "seg" / "1" / "old-file"
    marker.write_text("old")
    with pytest.raises(UsageError, match="already exists.*--force"):
        write_repository(small_onnx, repo, RepoOptions(name="seg"))
    assert marker.exists()
    write_repository(small_onnx, repo, RepoOptions(name="seg", force=True, max_batch=2))
    assert not marker.exists() and "max_batch_size: 2" in (repo / "seg/config.pbtxt").read_text()
    assert sorted(p.name for p in repo.iterdir()) == ["other", "seg"]  # no lock, no temp


def test_a_failed_check_leaves_the_repository_as_it_was(small_onnx: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    write_repository(small_onnx, repo, RepoOptions(name="seg"))
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}

    def broken(text: str, *, where: str = "") -> bool:
        raise ConfigSchemaError(f"{where} does not parse (simulated schema failure)")

    monkeypatch.setattr(triton_repo.tc, "check_config", broken)
    with pytest.raises(ConfigSchemaError, match="simulated"):
        write_repository(small_onnx, repo, RepoOptions(name="seg", force=True, max_batch=3))
    with pytest.raises(ConfigSchemaError):
        write_repository(small_onnx, repo, RepoOptions(name="new"))
    after = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    assert after == before  # the old model kept, no new one, no temporary folder
    assert not any(p.name.endswith(".tmp") for p in [*repo.iterdir(), *tmp_path.iterdir()])


def test_nothing_but_finished_models_ever_appears_in_the_repository(
        small_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Triton loads every folder of a repository (hidden ones too): staging happens beside it."""
    repo = tmp_path / "repo"
    write_repository(small_onnx, repo, RepoOptions(name="seg"))
    seen: list[list[str]] = []
    check = triton_repo.check_staged

    def watching(staging: Path, names: list[str]) -> bool:  # folders: Triton skips files
        seen.append(sorted(p.name for p in repo.iterdir() if p.is_dir()))
        assert staging.parent == tmp_path
        return check(staging, names)

    monkeypatch.setattr(triton_repo, "check_staged", watching)
    write_repository(small_onnx, repo, RepoOptions(name="seg", force=True))
    write_repository(small_onnx, repo, RepoOptions(name="two", native=True))
    assert seen == [["seg"], ["seg"]]
    assert sorted(p.name for p in repo.iterdir()) == ["seg", "two", "two_native"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_names_from_artifacts() -> None:
    assert model_name(Path("x/unet.int8.onnx"), None) == "unet_int8"
    assert model_name(Path("fcn8s.plan"), None) == "fcn8s"
    assert model_name(Path("a.onnx"), "brain-v2") == "brain-v2"
    with pytest.raises(UsageError, match="plain folder name"):
        model_name(Path("a.onnx"), "../escape")


def test_refusals(small_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        write_repository(tmp_path / "missing.onnx", tmp_path / "r")
    with pytest.raises(UsageError, match="--fp16 applies to the native"):
        write_repository(small_onnx, tmp_path / "r", RepoOptions(fp16=True))
    with pytest.raises(UsageError, match="--tensorrt-accelerator applies"):
        write_repository(small_onnx, tmp_path / "r", RepoOptions(tensorrt_accelerator=True))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        write_repository(small_onnx, tmp_path / "file")
    assert list((tmp_path / "r").iterdir()) == []


def write_plan_double(folder: Path) -> Path:
    """A test double of a TensorRT plan: arbitrary bytes plus a real `.plan.json` sidecar.
    Writing the repository reads only the sidecar; no TensorRT runs here."""
    card = ModelCard(arch="unet", num_classes=3, classes=["a", "b", "c"], in_channels=1,
                     mean=[0.5], std=[0.25], train_size=[96, 128])
    manifest = PlanManifest(
        export=ExportInfo(card=card), tensorrt_version="10.16.1", precision="fp16",
        profiles=[{"input": {"min": [1, 1, 32, 32], "opt": [4, 1, 96, 128],
                             "max": [8, 1, 512, 512]}}],
        io=[{"name": "input", "mode": "input", "dtype": "float32", "shape": [-1, 1, -1, -1]},
            {"name": "logits", "mode": "output", "dtype": "float32",
             "shape": [-1, 3, -1, -1]}], onnx_sha256="0" * 64)
    plan = folder / "double.plan"
    plan.write_bytes(b"not a real engine: a test double")
    (folder / "double.plan.json").write_text(json.dumps(manifest.to_dict()))
    return plan


def test_plan_repository_runs_on_gpu_instances(tmp_path: Path) -> None:
    plan = write_plan_double(tmp_path)
    repo = tmp_path / "repo"
    write_repository(plan, repo, RepoOptions(native=True, instances=2))
    assert tree(repo / "double") == ["1", "1/double.plan", "1/double.plan.json", "1/model.py",
                                     "config.pbtxt"]
    config = (repo / "double/config.pbtxt").read_text()
    assert "kind: KIND_GPU" in config and 'string_value: "tensorrt"' in config
    native = (repo / "double_native/config.pbtxt").read_text()
    assert 'platform: "tensorrt_plan"' in native and "dims: [ 1, 96, 128 ]" in native
    assert (repo / "double_native/1/model.plan").read_bytes() == plan.read_bytes()
    with pytest.raises(UsageError, match="runs on the tensorrt backend"):
        write_repository(plan, tmp_path / "r2", RepoOptions(backend="openvino"))


def test_cli_writes_the_repository_and_says_whether_it_was_checked(
        small_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["triton", str(small_onnx), "-o", str(tmp_path / "repo"),
                              "--name", "seg", "--instances", "2"], capsys)
    assert code == 0, err
    assert "wrote" in out and (tmp_path / "repo/seg/config.pbtxt").is_file()
    assert ("parsed against Triton's schema" in out) or ("not checked" in err)
    again = cli_fails(capsys, ["triton", str(small_onnx), "-o", str(tmp_path / "repo"),
                               "--name", "seg"])
    assert "already exists" in again and "--force" in again
