"""The documented example app runs, and never imports torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).parents[1] / "examples" / "segment_images.py"


@pytest.mark.slow
def test_example_app_segments_images_without_torch(brain_onnx, tmp_path):
    from PIL import Image

    from segdeploy.data import get_dataset

    ds = get_dataset("brain", "val")
    image, _ = ds[len(ds) // 2]
    png = tmp_path / "slice.png"
    Image.fromarray(image[:, :, 0]).save(png)
    guard = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
             "runpy.run_path(sys.argv[0], run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", guard, str(EXAMPLE), str(brain_onnx[0]),
                          str(png)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith(str(png)) and "197x233" in line
    shares = [float(part.split()[-1].rstrip("%")) for part in line.split(": ", 2)[2].split(", ")]
    assert len(shares) == 3 and abs(sum(shares) - 100) < 0.5
    assert shares[0] > 50  # background dominates an axial slice (as in the labels)
    assert np.isfinite(shares).all()
