"""Post-build parity logic, run with two real ONNX Runtime sessions in place of the engine."""

from __future__ import annotations

import numpy as np
import pytest
from test_engine import tiny_card, tiny_segmentation_onnx

from segdeploy.comparison import argmax_agreement, class_map
from segdeploy.engine.profiles import ShapeProfile, parse_profile
from segdeploy.engine.smoke_parity import (
    check_parity,
    compared_output,
    parity_points,
    run_parity,
    sample_feeds,
    summarize,
)
from segdeploy.errors import ParityError
from segdeploy.manifest import ExportInfo
from segdeploy.runtime.onnxruntime_runner import OnnxRuntimeRunner


def ort(path) -> OnnxRuntimeRunner:
    """An active ONNX Runtime CPU runner, the reference the build compares engines with."""
    return OnnxRuntimeRunner(path, providers="cpu").activate()

PROFILES = [parse_profile("min=1x3x16x16,opt=1x3x40x56,max=2x3x64x72")]


def test_sample_feeds_are_deterministic_smooth_and_normalised():
    info = ExportInfo(card=tiny_card())
    a = sample_feeds(info, (2, 3, 40, 56), seed=3)["input"]
    assert a.shape == (2, 3, 40, 56) and a.dtype == np.float32
    assert np.array_equal(a, sample_feeds(info, (2, 3, 40, 56), seed=3)["input"])
    assert not np.array_equal(a, sample_feeds(info, (2, 3, 40, 56), seed=4)["input"])
    # undo the normalisation: pixel values lie in [0, 255]
    mean = np.array(info.card.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.array(info.card.std, np.float32).reshape(1, 3, 1, 1)
    pixels = (a * std + mean) * 255
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3
    # smooth: neighbouring pixels differ far less than random pixels do
    step = np.abs(np.diff(pixels, axis=3)).mean()
    shuffled = np.abs(np.diff(np.random.default_rng(0).permutation(pixels.ravel()))).mean()
    assert step < shuffled / 4


def test_sample_feeds_for_raw_uint8_inputs():
    info = ExportInfo(card=tiny_card(), input_dtype="uint8", input_name="image")
    feeds = sample_feeds(info, (1, 3, 17, 23))
    assert list(feeds) == ["image"] and feeds["image"].dtype == np.uint8
    assert feeds["image"].shape == (1, 3, 17, 23) and feeds["image"].max() > 128


def test_parity_points_cover_min_opt_max_once_each():
    fixed = ShapeProfile(*[(1, 3, 32, 32)] * 3)
    points = parity_points([PROFILES[0], fixed])
    assert [(p, k) for p, k, _ in points] == [(0, "min"), (0, "opt"), (0, "max"), (1, "min")]
    assert points[2][2] == (2, 3, 64, 72)


def test_argmax_agreement_and_class_maps():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    assert argmax_agreement(logits, logits.astype(np.float16)) >= 0.99
    flipped = logits.copy()
    flipped[0, :, 0, 0] = -logits[0, :, 0, 0]  # change the class of one pixel of 128
    changed = int((class_map(flipped) != class_map(logits)).sum())
    assert changed == 1
    assert argmax_agreement(logits, flipped) == pytest.approx(1 - changed / 128)
    mask = class_map(logits).astype(np.int32)
    assert argmax_agreement(mask, logits) == 1.0  # an int mask compares with logits' argmax
    assert argmax_agreement(logits, logits[:, :, :4]) == 0.0  # shapes differ


def test_compared_output_prefers_logits():
    info = ExportInfo(card=tiny_card(), output_names=["logits", "mask"])
    assert compared_output(info, ["mask", "logits"]) == "logits"
    assert compared_output(ExportInfo(card=tiny_card(), output_names=["mask"]), ["mask"]) == "mask"


def test_identical_backends_pass(tmp_path):
    path = tiny_segmentation_onnx(tmp_path / "t.onnx")
    info = ExportInfo(card=tiny_card())
    summary = run_parity(ort(path), ort(path), info, PROFILES,
                         reference_label="onnxruntime fp32 (t.onnx)")
    check_parity(summary)
    assert summary["passed"] and summary["min_agreement"] == 1.0
    assert [p["kind"] for p in summary["points"]] == ["min", "opt", "max"]
    assert all(p["max_abs_diff"] == 0.0 and p["finite"] for p in summary["points"])


def test_a_different_model_fails_parity(tmp_path):
    reference = tiny_segmentation_onnx(tmp_path / "a.onnx", seed=0)
    other = tiny_segmentation_onnx(tmp_path / "b.onnx", seed=1)
    summary = run_parity(ort(reference), ort(other),
                         ExportInfo(card=tiny_card()), PROFILES, reference_label="ref")
    assert not summary["passed"] and summary["min_agreement"] < 0.995
    with pytest.raises(ParityError) as err:
        check_parity(summary)
    assert "disagrees with ref" in str(err.value) and "profile 0 min 1x3x16x16" in str(err.value)


def test_non_finite_outputs_fail_even_with_agreement():
    record = {"profile": 0, "kind": "opt", "shape": [1, 3, 8, 8], "agreement": 1.0,
              "finite": False}
    summary = summarize([record], threshold=0.995, reference_label="ref")
    assert not summary["passed"]
    with pytest.raises(ParityError, match="non-finite"):
        check_parity(summary)
    assert not summarize([], threshold=0.995, reference_label="ref")["passed"]
