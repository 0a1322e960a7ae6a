"""`segdeploy train` under torchrun with 2 CPU processes (DDP on gloo)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from segdeploy.cli.main import main
from segdeploy.reference_models.checkpoint import load_checkpoint


@pytest.mark.slow
@pytest.mark.distributed
def test_torchrun_two_cpu_ranks(tmp_path, capsys):
    out = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "segdeploy", "train", "unet", "--data", "brain", "--width", "0.125",
           "--image-size", "64", "--batch-size", "2", "--epochs", "1", "--limit-train", "8",
           "--limit-val", "3", "--device", "cpu", "--no-progress", "-o", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "x 2 ranks" in proc.stdout
    assert proc.stdout.count("epoch   1/1") == 1  # only rank 0 prints
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.last.pt", "ddp.pt"]

    ckpt = load_checkpoint(out)
    metrics = ckpt.card.metrics
    assert ckpt.extra["world_size"] == 2
    assert 0.0 <= metrics["mean_iou"] <= 1.0 and 0.0 <= metrics["pixel_accuracy"] <= 1.0
    # 3 val images split 2 + 1 over the ranks, then all-reduced: the global matrix counts
    # every pixel of the three images exactly once, as a single-process eval does.
    assert metrics["pixels"] == 3 * 197 * 233
    report = tmp_path / "eval.json"
    main(["eval", str(out), "--limit", "3", "--device", "cpu", "--json", str(report)])
    capsys.readouterr()
    import json

    single = json.loads(report.read_text())["metrics"]
    assert single["support"] == metrics["support"]
    assert single["mean_iou"] == pytest.approx(metrics["mean_iou"], abs=1e-6)
