"""`segdeploy bench` on another tool's ONNX (no segdeploy metadata) with --shape: the README
promises it needs none, so the default backends time what runs without a card and skip the
one that needs it (segmenter) in one line; asking for segmenter explicitly still fails."""

from __future__ import annotations

import json

import pytest
import torch
from cli_run import run_cli

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def plain_onnx(tmp_path_factory):
    """What `torch.onnx.export` writes for someone's own net: no metadata_props."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 2, 1)).eval()
    path = tmp_path_factory.mktemp("plain") / "plain.onnx"
    torch.onnx.export(net, (torch.randn(2, 3, 33, 35),), str(path), dynamo=False,
                      opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}})
    return path


def test_default_backends_skip_segmenter_on_an_onnx_without_metadata(plain_onnx, tmp_path,
                                                                     capsys):
    code, out, err = run_cli(["bench", "-e", str(plain_onnx), "--shape", "1x3x48x64",
                              "-n", "3", "--warmup", "0", "--no-progress",
                              "--json", str(tmp_path / "b.json")], capsys)
    assert code == 0, err
    skipped = [ln for ln in (out + err).splitlines() if ln.startswith("skipped")]
    assert len(skipped) == 1 and skipped[0].startswith("skipped segmenter:"), skipped
    assert "segdeploy card" in out
    report = json.loads((tmp_path / "b.json").read_text())
    names = {r["backend"] for r in report["results"]}
    assert "onnxruntime" in names and not any(n.startswith("segmenter") for n in names)


def test_asking_for_segmenter_on_it_still_says_it_needs_a_card(plain_onnx, capsys):
    code, _, err = run_cli(["bench", "-e", str(plain_onnx), "--shape", "1x3x48x64",
                            "-b", "segmenter", "-n", "2", "--no-progress"], capsys)
    assert code == 1 and "no segdeploy metadata" in err and "segdeploy card" in err
