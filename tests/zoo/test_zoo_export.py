"""Every smp architecture and the torchvision segmentation models (random weights): export
from traced TorchScript (smp) or `.pt2` (torchvision), ONNX Runtime parity at valid odd
sizes, and Segmenter.predict at 197x233 (padded to the model's multiple, or resized to a
static size). Run with `make test-zoo`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from zoo_models import ALL, NUM_CLASSES, SMP, ZooModel

from segdeploy.export.pipeline import ExportOptions, run_export
from segdeploy.export.sources import SourceFacts
from segdeploy.runtime import Segmenter

#: the issue's gate: max |diff| <= 1e-3 x max(1, |logit|), argmax >= 99.9 %
RTOL, MIN_AGREEMENT = 1e-3, 0.999
CHECK_SIZES = ["2x3x97x131", "1x3x197x233"]


def _example(z: ZooModel) -> torch.Tensor:
    size = z.options.get("static_size") or (224, 288)
    return torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))


def _save(z: ZooModel, model: torch.nn.Module, folder: Path, fmt: str) -> Path:
    x = _example(z)
    path = folder / f"{z.name}.{fmt}"
    if fmt == "ts":
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(model, (x,), strict=False), str(path))
    else:
        auto = torch.export.Dim.AUTO
        dims = {0: auto} if "static_size" in z.options else {0: auto, 2: auto, 3: auto}
        torch.export.save(torch.export.export(model, (x,), dynamic_shapes=(dims,)), str(path))
    return path


def _eager(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = model(torch.from_numpy(x))
    return (y["out"] if isinstance(y, dict) else y).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("z", ALL, ids=[z.name for z in ALL])
def test_zoo_model_exports_and_matches_eager(z: ZooModel, tmp_path: Path) -> None:
    model = z.build()
    fmt = "ts" if z in SMP else "pt2"
    src = _save(z, model, tmp_path, fmt)
    result = run_export(src, ExportOptions(trust_code=True, fp16=False, max_side=0,
                                           check_sizes=CHECK_SIZES, fp16_images=4,
                                           facts=SourceFacts(**z.options)))
    assert result.parity.passed
    card = result.info.card
    assert card.num_classes == NUM_CLASSES and card.output_mode == "same"
    if "static_size" not in z.options and z in SMP and z.name != "smp_Unet":
        assert card.size_multiple in (8, 16, 32)  # found by the probe, not assumed

    import onnx

    graph = onnx.load(str(result.onnx_path))
    dims = graph.graph.output[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == NUM_CLASSES  # the class axis is a number, never a symbol

    with Segmenter.load(result.onnx_path) as seg:
        # logits vs eager at a valid odd size (or the static size), the gate
        if seg.static_size:
            h, w = seg.static_size
        else:
            m = card.size_multiple
            h, w = 3 * m if m > 1 else 97, 5 * m if m > 1 else 131
        rng = np.random.default_rng(1)
        x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
        ref, got = _eager(model, x), seg.logits(x)
        assert np.max(np.abs(ref - got)) <= RTOL * max(1.0, float(np.max(np.abs(ref))))
        assert (ref.argmax(1) == got.argmax(1)).mean() >= MIN_AGREEMENT

        image = rng.integers(0, 256, (197, 233, 3), dtype=np.uint8)
        mask = seg.predict(image)
        assert mask.shape == (197, 233) and mask.dtype == np.uint8
        assert int(mask.max()) < NUM_CLASSES


@pytest.mark.slow
def test_pspnet_dynamic_attempt_names_static_size(tmp_path: Path) -> None:
    """Adaptive pooling to fixed bins cannot be dynamic: the error says what to pass."""
    from zoo_models import SMP

    from segdeploy.errors import ExportError

    z = next(m for m in SMP if m.name == "smp_PSPNet")
    model = z.build()
    path = tmp_path / "pspnet.ts"
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(model, (torch.randn(2, 3, 224, 288),), strict=False),
                       str(path))
    with pytest.raises(ExportError) as exc:
        run_export(path, ExportOptions(trust_code=True, fp16=False, max_side=0,
                                       check_sizes=CHECK_SIZES))
    assert "--static-size" in str(exc.value)
    assert not (tmp_path / "pspnet.onnx").exists()
