"""User models (TorchScript, .pt2) and bad input: clear errors, exit 1, no files left."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from export_test_models import SIZES, SvdNet, UserNet, make_checkpoint, save_pt2, save_traced

from segdeploy.cli.main import main
from segdeploy.errors import CheckpointError, ExportError, SegdeployError, UsageError
from segdeploy.export.pipeline import ExportOptions, run_export
from segdeploy.export.sources import SourceFacts, detect_kind

FAST = dict(fp16=False, check_sizes=SIZES, max_side=0, fp16_images=4)


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["export", *args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(["export", *args])
    except SystemExit as exc:
        out = capsys.readouterr()
        return int(exc.code or 0), out.out, out.err
    out = capsys.readouterr()
    return 0, out.out, out.err


def _onnx_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".onnx" in p.name or ".json" in p.name
                  or p.name.endswith(".tmp"))


def test_torchscript_needs_trust_and_exports(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    ts = save_traced(tmp_path / "cells.ts", UserNet(num_classes=2))
    assert detect_kind(ts) == "torchscript"
    code, _, err = _cli([str(ts), "--no-progress"], capsys)
    assert code == 1 and "--trust-code" in err and "runs code" in err
    assert _onnx_files(tmp_path) == []

    code, out, err = _run_cli([str(ts), "--trust-code", "--classes", "bg,cell", "--opset", "17",
                               "--no-fp16", "--max-side", "0", "--no-progress",
                               *sum((["--check-sizes", s] for s in SIZES), [])], capsys)
    assert code == 0, err
    assert "wrote" in out and (tmp_path / "cells.onnx").is_file()
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "cells.onnx")).metadata_props}
    assert props["segdeploy.classes"] == '["bg", "cell"]'
    assert "assumed ImageNet" in err  # said, not silently assumed


def test_torchscript_facts_are_checked(tmp_path: Path) -> None:
    ts = save_traced(tmp_path / "net.ts", UserNet(num_classes=2))
    with pytest.raises(UsageError, match="outputs 2"):
        run_export(ts, ExportOptions(trust_code=True, facts=SourceFacts(num_classes=5), **FAST))
    with pytest.raises(UsageError, match="--mean/--std"):
        run_export(ts, ExportOptions(trust_code=True, facts=SourceFacts(in_channels=1), **FAST))
    assert _onnx_files(tmp_path) == []


def test_scripted_model_with_shape_logic_fails_cleanly(tmp_path: Path) -> None:
    """torch.jit.script keeps Python shape logic the legacy exporter turns into a broken graph."""
    path = tmp_path / "scripted.ts"
    torch.jit.save(torch.jit.script(UserNet().eval()), str(path))
    with pytest.raises(ExportError) as exc:
        run_export(path, ExportOptions(trust_code=True, **FAST))
    assert "failed its checks" in str(exc.value) or "cannot export" in str(exc.value)
    # and it says what to do instead: trace the model, or save a .pt2
    assert "torch.jit.trace" in str(exc.value) and "torch.export.save" in str(exc.value)
    assert _onnx_files(tmp_path) == []


def test_exported_program_with_dynamic_dims(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pt2 = save_pt2(tmp_path / "user.pt2", UserNet(num_classes=3))
    assert detect_kind(pt2) == "exported-program"
    with pytest.raises(UsageError, match="--trust-code"):
        run_export(pt2, ExportOptions(**FAST))
    result = run_export(pt2, ExportOptions(trust_code=True, opset=18, **FAST))
    model = onnx.load(str(result.onnx_path))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]  # torch's s0/s77 names were replaced
    assert result.parity.passed and result.info.card.num_classes == 3


def test_static_exported_program_is_refused(tmp_path: Path) -> None:
    pt2 = save_pt2(tmp_path / "static.pt2", UserNet(), dynamic=False)
    with pytest.raises(UsageError, match="fixed batch, height, width"):
        run_export(pt2, ExportOptions(trust_code=True, **FAST))


def test_unexportable_operator_is_named(tmp_path: Path, capsys) -> None:
    ts = save_traced(tmp_path / "svd.ts", SvdNet())
    code, _, err = _cli([str(ts), "--trust-code", "--no-progress", "--opset", "17"], capsys)
    assert code == 1 and "svdvals" in err and "cannot export" in err
    assert "Torch IR graph" not in err  # the exporter's graph dump stays out of the message
    assert _onnx_files(tmp_path) == []


def test_operator_tensorrt_lacks_fails_unless_allowed(tmp_path: Path) -> None:
    ts = save_traced(tmp_path / "bicubic.ts", UserNet(mode="bicubic"))
    with pytest.raises(ExportError, match="cubic"):
        run_export(ts, ExportOptions(trust_code=True, opset=17, **FAST))
    assert _onnx_files(tmp_path) == []
    result = run_export(ts, ExportOptions(trust_code=True, opset=17, trt_check=False, **FAST))
    assert result.onnx_path.is_file()
    assert any(f.level == "warning" and "cubic" in f.message for f in result.findings)


def test_bad_checkpoints_and_paths(tmp_path: Path, capsys) -> None:
    good = make_checkpoint(tmp_path / "good.pt", "fcn_resnet18")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    code, _, err = _cli([str(truncated), "--no-progress"], capsys)
    assert code == 1 and "truncated or corrupt" in err

    foreign = tmp_path / "foreign.pt"
    torch.save(torch.nn.Conv2d(3, 3, 1), foreign)  # a whole pickled module: code
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        run_export(foreign, ExportOptions(**FAST))

    code, _, err = _cli([str(good), "-o", str(tmp_path / "missing" / "m.onnx")], capsys)
    assert code == 1 and "does not exist" in err

    with pytest.raises(UsageError, match="carries its own model card"):
        run_export(good, ExportOptions(facts=SourceFacts(classes=["a", "b", "c"]), **FAST))
    with pytest.raises(CheckpointError, match="does not exist"):
        run_export(tmp_path / "nope.pt", ExportOptions(**FAST))
    already = tmp_path / "model.onnx"
    already.write_bytes(b"not really")
    with pytest.raises(SegdeployError, match="model.onnx is a text file, not a PyTorch"):
        run_export(already, ExportOptions(**FAST))
    already.unlink()
    assert _onnx_files(tmp_path) == []
