"""Run the segdeploy CLI in-process the way the tests need: exit code and captured streams."""

from __future__ import annotations

import pytest

from segdeploy.cli.main import main


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `segdeploy ARGV`."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def cli_fails(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """stderr of `segdeploy ARGV`, which must exit with code 1 (a SegdeployError)."""
    code, _, err = run_cli(argv, capsys)
    assert code == 1, err
    return err
