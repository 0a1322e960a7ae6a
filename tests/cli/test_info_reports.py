"""`segdeploy info` on the JSON reports the commands write (made here by the real commands),
on a last-epoch checkpoint and on an ONNX: figures, verdicts and the machine in short rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segdeploy.cli.info_reports import intensity_line, report_kind, report_rows
from segdeploy.cli.main import main


def _info(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    main(["info", str(path)])
    return capsys.readouterr().out


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line, so that lines can be read


def test_info_summarises_a_bench_json(tmp_path: Path, capsys) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))
    from tiny_models import TinySegNet, write_onnx

    onnx = write_onnx(tmp_path / "tiny.onnx", TinySegNet())
    report = tmp_path / "bench.json"
    main(["bench", "-e", str(onnx), "-b", "onnxruntime", "-b", "segmenter", "-s", "1x3x32x40",
          "-n", "3", "--warmup", "1", "--no-progress", "--json", str(report)])
    capsys.readouterr()
    out = _info(capsys, report)
    env = json.loads(report.read_text())["environment"]
    assert "JSON report" not in out and "bench report" in out
    assert env["cpu"] in out and "usable cores" in out  # the machine
    line = next(ln for ln in out.splitlines() if "mean ms 1x3x32x40" in ln)
    assert "fastest " in line and " ms " in line and "faster than the slowest" in line
    assert "3 iterations each" in out and "2 of 2 rows have too few samples" in out


@pytest.mark.slow
def test_info_summarises_verify_eval_and_export_parity(brain_checkpoint, brain_onnx,
                                                       tmp_path: Path, capsys) -> None:
    _, fp16 = brain_onnx
    verify, evaluation = tmp_path / "verify.json", tmp_path / "eval.json"
    main(["verify", str(brain_checkpoint), "-e", str(fp16), "--sizes", "97x131,64x80",
          "--max-images", "2", "--no-progress", "--json", str(verify)])
    main(["eval", str(brain_checkpoint), "--limit", "2", "--device", "cpu", "--no-progress",
          "--json", str(evaluation)])
    capsys.readouterr()
    out = _info(capsys, verify)
    assert "verify report" in out and "passed (needed: agreement >= 99.5%" in out
    assert "(fp16, onnxruntime)" in out
    sizes = [ln for ln in out.splitlines() if "│ size " in ln]
    assert len(sizes) == 2 and all("agreement " in ln and "mIoU" in ln for ln in sizes), out
    out = _info(capsys, evaluation)
    data = json.loads(evaluation.read_text())
    assert f"mIoU          │ {data['metrics']['mean_iou']:.4f}" in out
    iou = data["metrics"]["iou"]
    assert f"grey matter {iou[1]:.4f}, white matter {iou[2]:.4f}" in out
    parity = fp16.with_name(fp16.name.replace(".fp16.onnx", ".parity.json"))
    out = _info(capsys, parity)
    assert "export parity report" in out and "passed" in out
    assert "fp32 1x1x97x131" in out and "pass: max|d|" in out and "(opset 17)" in out


@pytest.mark.slow
def test_info_checkpoint_epochs_intensity_and_tensors(brain_checkpoint, brain_onnx,
                                                      capsys) -> None:
    last = brain_checkpoint.with_name(brain_checkpoint.stem + ".last.pt")
    out = _info(capsys, last)
    assert "4 of 4: the last epoch trained, for --resume; the best was epoch" in out
    assert "4 of 4: the best epoch by val mIoU" in _info(capsys, brain_checkpoint)
    out = _info(capsys, brain_onnx[0])
    assert "input input" not in out
    assert "graph input  │ input: float32, batch x 1 x height x width" in out
    intensity = next(ln for ln in out.splitlines() if "intensity" in ln)
    assert "8-bit as is; 16-bit/float: 0..234 -> 0..255" in intensity
    assert "percentile over head voxels" not in out  # the source: --json only


def test_intensity_line_is_one_short_line() -> None:
    window = {"kind": "window", "low": -100.0, "high": 300.0, "percentiles": [0.5, 99.5],
              "source": "a long explanation of where the window came from, for --json"}
    assert intensity_line(window) == "8-bit as is; 16-bit/float: -100..300 -> 0..255"
    stretch = intensity_line({"kind": "per-image", "percentiles": [1, 99]})
    assert stretch == "8-bit as is; 16-bit/float: each image's 1-99th percentiles -> 0..255"
    assert "each image's 0.5-99.5th percentiles" in intensity_line({})  # cards before it
    assert all(len(intensity_line(d)) < 80 for d in (window, {}))


def test_unknown_or_damaged_reports() -> None:
    assert report_kind({"agreement": 0.9}) == "JSON report"
    assert report_rows({"kind": "JSON report"}) is None
    rows = report_rows({"kind": "verify report", "sizes": [{}], "thresholds": {},
                        "passed": True})
    assert rows is not None and rows[-1][0] == "note" and "--json" in rows[-1][1]
