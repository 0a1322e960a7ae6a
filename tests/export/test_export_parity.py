"""The parity arithmetic: tolerances, ties, gates, check sizes (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from segdeploy.errors import UsageError
from segdeploy.export.parity import (
    FP16_MIN_AGREEMENT,
    compare,
    merge,
    parse_sizes,
    synthetic_images,
)
from segdeploy.manifest import ModelCard


def _logits(seed: int = 0, shape=(2, 4, 16, 20)) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, shape).astype(np.float32)


def _row(rows, output="logits"):
    return next(r for r in rows if r.output == output)


def test_identical_outputs_pass_every_gate() -> None:
    ref = _logits()
    for gate in ("fp32", "fp16"):
        row = _row(compare({"logits": ref}, {"logits": ref.copy()}, graph=gate, inputs="x",
                           gate=gate))
        assert row.passed and row.max_abs == 0.0 and row.argmax_agreement == 1.0


def test_fp32_gate_fails_on_one_flipped_clear_pixel() -> None:
    ref = _logits()
    got = ref.copy()
    margins = np.sort(ref, axis=1)[:, -1] - np.sort(ref, axis=1)[:, -2]
    n, i, j = np.unravel_index(np.argmax(margins), margins.shape)  # the clearest pixel
    top = ref[n, :, i, j].argmax()
    got[n, top, i, j] -= 2 * margins[n, i, j]
    row = _row(compare({"logits": ref}, {"logits": got}, graph="fp32", inputs="x", gate="fp32"))
    assert row.passed is False and row.argmax_agreement_nontied < 1.0


def test_flips_on_ties_do_not_count_off_ties() -> None:
    ref = _logits()
    ref[0, :2, 0, 0] = [5.0, 5.0]  # an exact tie between the two top classes
    ref[0, 2:, 0, 0] = -5.0
    got = ref.copy()
    got[0, 1, 0, 0] += 1e-6
    row = _row(compare({"logits": ref}, {"logits": got}, graph="fp32", inputs="x", gate="fp32"))
    assert row.argmax_agreement < 1.0 and row.argmax_agreement_nontied == 1.0
    assert row.passed and row.tied_fraction > 0


def test_fp16_gate_threshold_and_mask_output() -> None:
    ref = _logits(1, (1, 3, 40, 50))  # 2000 pixels
    arg = ref.argmax(1)
    flips = int(2000 * (1 - FP16_MIN_AGREEMENT)) + 2  # just below the gate
    got = ref.copy()
    flat = got.reshape(3, -1)
    for p in range(flips):
        flat[:, p] = 0.0
        flat[(arg.reshape(-1)[p] + 1) % 3, p] = 100.0
    rows = compare({"logits": ref}, {"logits": got, "mask": arg.astype(np.int32)},
                   graph="fp16", inputs="x", gate="fp16")
    assert _row(rows).passed is False
    assert _row(rows, "mask").passed is True  # the in-graph argmax output itself is right


def test_shape_mismatch_fails() -> None:
    ref = _logits()
    rows = compare({"logits": ref}, {"logits": ref[..., :-1]}, graph="fp32", inputs="x",
                   gate="fp32")
    assert rows[0].passed is False


def test_merge_mixes_sizes_pixelwise() -> None:
    a, b = _logits(0, (1, 4, 5, 6)), _logits(1, (2, 4, 7, 3))
    ref, got = merge([{"logits": a}, {"logits": b}], [{"logits": a}, {"logits": b}])
    assert ref["logits"].shape == (5 * 6 + 2 * 7 * 3, 4, 1, 1)


def test_parse_sizes_fits_the_model() -> None:
    card = ModelCard(arch="x", num_classes=2, classes=["a", "b"], in_channels=1, mean=[0.5],
                     std=[0.25], min_size=16, size_multiple=8)
    sizes, notes = parse_sizes(["2x3x97x131", "10x12", "1x1x64x64"], card)
    assert sizes == [(2, 104, 136), (1, 16, 16), (1, 64, 64)]
    assert any("channels" in n for n in notes) and any("adjusted" in n for n in notes)
    with pytest.raises(UsageError, match="cannot read check size"):
        parse_sizes(["97-131"], card)


def test_synthetic_images_are_smooth_uint8() -> None:
    imgs = synthetic_images(2, 33, 47, 3)
    assert imgs.shape == (2, 33, 47, 3) and imgs.dtype == np.uint8
    step = np.abs(np.diff(imgs[0, :, :, 0].astype(int), axis=1)).mean()
    assert step < 20 and imgs.std() > 20  # varied, but neighbours are alike
