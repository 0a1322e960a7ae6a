import json
import subprocess
import sys

import pytest

from segdeploy.cli.main import cli, main


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "segdeploy", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for name in ("info",):
        assert name in out


def test_help_does_not_import_torch():
    code = ("import sys; from segdeploy.cli.main import cli; "
            "assert 'torch' not in sys.modules and 'onnx' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_segdeploy_error_is_one_line_and_exit_1(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["info", str(tmp_path / "missing.onnx")])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "error:" in err and "does not exist" in err and "Traceback" not in err


def test_info_reads_a_json_report(tmp_path, capsys):
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"kind": "parity report", "agreement": 0.999}))
    main(["info", str(report), "--json"])
    assert json.loads(capsys.readouterr().out)["agreement"] == 0.999


def test_info_rejects_plan_without_manifest(tmp_path, capsys):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"\x00" * 16)
    with pytest.raises(SystemExit):
        main(["info", str(plan)])
    assert "no manifest" in capsys.readouterr().err


def test_commands_are_registered():
    assert "info" in cli.commands


@pytest.mark.slow
def test_info_summarises_checkpoint_and_onnx(brain_checkpoint, brain_onnx, capsys):
    main(["info", str(brain_checkpoint)])
    out = capsys.readouterr().out
    assert "segdeploy checkpoint" in out and "grey matter" in out and "val metrics" in out
    fp32, fp16 = brain_onnx
    main(["info", str(fp16)])
    out = capsys.readouterr().out
    assert "fp16 opset 17" in out and "white matter" in out and "batch x 1 x height x width" in out
    main(["info", str(fp32), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["export"]["card"]["arch"] == "unet" and data["export"]["precision"] == "fp32"


def test_missing_optional_module_names_the_extra(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    monkeypatch.delitem(sys.modules, "onnx", raising=False)
    monkeypatch.delitem(sys.modules, "segdeploy.export.pipeline", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["export", "model.pt"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "onnx is not installed" in err and "segdeploy[torch]" in err
    assert "Traceback" not in err


def test_sigterm_wrapped_by_a_library_still_exits_143(monkeypatch, capsys) -> None:
    """A SIGTERM that lands inside a C-extension import comes out as "ImportError:
    initialization failed"; the CLI must still clean up, print one line and exit 143."""
    import pytest

    from segdeploy.cli import main as cli_main

    def interrupted_import(*args, **kwargs):
        try:
            cli_main._on_sigterm(15, None)
        except cli_main.Terminated as exc:
            raise ImportError("initialization failed") from exc

    monkeypatch.setattr(cli_main.cli, "main", interrupted_import)
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["info", "x.onnx"])
    assert exit_info.value.code == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SIGTERM" in err[0]
    assert not cli_main._SIGNALS_SEEN  # a later in-process call starts clean


def test_sigint_wrapped_by_a_library_still_exits_130(monkeypatch, capsys) -> None:
    """The same for Ctrl-C: CI saw "KeyboardInterrupt / ImportError: initialization failed"
    and exit 1 when SIGINT landed while onnxruntime was being imported mid-export."""
    import pytest

    from segdeploy.cli import main as cli_main

    def interrupted_import(*args, **kwargs):
        try:
            cli_main._on_sigint(2, None)
        except KeyboardInterrupt as exc:
            raise ImportError("initialization failed") from exc

    monkeypatch.setattr(cli_main.cli, "main", interrupted_import)
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["info", "x.onnx"])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines() == ["Aborted."]
    assert not cli_main._SIGNALS_SEEN


def test_cli_start_up_stays_light() -> None:
    """Every command pays for what cli/main.py imports: click and small modules, no numpy."""
    import subprocess
    import sys

    code = "import sys, segdeploy.cli.main; print(sorted({'numpy', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
