"""`segdeploy card` on a runtime-only install plus onnx (`pip install . onnx`, no torch):
the metadata writer lives in segdeploy.onnx_metadata, which imports neither torch nor the
export package. Without onnx, the error names onnx and its extra, not torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_card import _plain_onnx

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_card_in_a_runtime_install_with_onnx_and_no_torch(tmp_path: Path) -> None:
    plain = _plain_onnx(tmp_path / "plain.onnx")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py, cli = venv / "bin" / "python", venv / "bin" / "segdeploy"
    src = tmp_path / "src"  # a copy: building the wheel must not write into the checkout
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "tests", "benchmarks", "*.egg-info", "build", "__pycache__"))
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(src), "onnx"],
                             capture_output=True, text=True, timeout=900)
    if install.returncode != 0 and "Could not find a version" in install.stderr:
        pytest.skip(f"no package index here: {install.stderr.strip().splitlines()[-1]}")
    assert install.returncode == 0, install.stderr
    assert subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode != 0

    out = tmp_path / "carded.onnx"
    args = [str(cli), "card", str(plain), "--classes", "bg,fg", "--mean", "0.5",
            "--std", "0.25", "-o", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    check = ("import sys; from segdeploy.runtime import Segmenter; import numpy as np; "
             "s = Segmenter.load(sys.argv[1]); print(s.classes, s.predict(np.zeros((40, 50, 3), "
             "np.uint8)).shape, 'torch' in sys.modules)")
    ran = subprocess.run([str(py), "-c", check, str(out)], capture_output=True, text=True)
    assert ran.stdout.strip() == "['bg', 'fg'] (40, 50) False", ran.stderr

    subprocess.run([str(py), "-m", "pip", "uninstall", "-q", "-y", "onnx"], check=True)
    out.unlink()
    refused = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1
    assert "onnx is not installed" in refused.stderr and "segdeploy[onnx]" in refused.stderr
    assert "torch" not in refused.stderr
    assert not out.exists()
