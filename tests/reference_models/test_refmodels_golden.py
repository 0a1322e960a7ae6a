"""Golden outputs: every registered model, seeded, on a fixed input, against stored values.

Catches silent changes to a model's architecture or initialisation (a renamed layer, a
changed padding, a different bilinear kernel) that shape tests miss. The files are small
(every 8th pixel of the logits). After an intended change, regenerate them with

    SEGDEPLOY_REGEN_GOLDEN=1 .venv/bin/pytest tests/reference_models/test_refmodels_golden.py

and commit the .npz files with the change that explains them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from segdeploy.reference_models import get_model, list_models  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("SEGDEPLOY_REGEN_GOLDEN") == "1"


def golden_output(arch: str) -> np.ndarray:
    torch.manual_seed(0)
    model = get_model(arch, num_classes=3, width=0.0625, in_channels=1).eval()
    side = 221 if arch == "unet_valid" else 45
    x = np.random.default_rng(0).standard_normal((1, 1, side, side + 6)).astype(np.float32)
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    return out[..., ::8, ::8].copy()


@pytest.mark.parametrize("arch", list_models())
def test_model_output_matches_golden(arch):
    got = golden_output(arch)
    path = GOLDEN / f"{arch}.npz"
    if REGEN:
        np.savez_compressed(path, logits=got)
    if not path.exists():
        pytest.fail(f"no golden file {path.name}: regenerate with SEGDEPLOY_REGEN_GOLDEN=1 "
                    "(see this module's docstring)")
    want = np.load(path)["logits"]
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)
