"""Parity numbers on hand-made logits: errors, agreement, IoU between masks, mIoU drop."""

from __future__ import annotations

import numpy as np
import pytest

from segdeploy.errors import InputError, UsageError
from segdeploy.verify.parity import SizeComparison, Thresholds, check_thresholds, parse_sizes


def _logits_for(mask: np.ndarray, k: int) -> np.ndarray:
    """One-hot-ish logits (N x K x H x W) whose argmax is `mask` (N x H x W)."""
    out = np.zeros((mask.shape[0], k) + mask.shape[1:], dtype=np.float32)
    np.put_along_axis(out, mask[:, None].astype(np.int64), 1.0, axis=1)
    return out


def test_identical_logits_agree_fully() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    labels = ref.argmax(1).astype(np.uint8)
    comp = SizeComparison((5, 7), 3)
    comp.add(ref, ref.copy(), labels)
    r = comp.result()
    assert r["abs_error"] == {"max": 0.0, "mean": 0.0, "p99": 0.0}
    assert r["agreement"] == 100.0 and r["images"] == 2
    assert r["miou_reference"] == pytest.approx(100.0) and r["miou_drop"] == pytest.approx(0.0)
    assert all(v == pytest.approx(1.0) for v in r["iou_between"] if v is not None)


def test_known_disagreement() -> None:
    # 1 image, 2 x 5 pixels, 2 classes; the engine flips 2 of the 10 pixels
    ref_mask = np.array([[[0, 0, 0, 1, 1], [0, 0, 1, 1, 1]]])
    eng_mask = ref_mask.copy()
    eng_mask[0, 0, 0] = 1  # a class-0 pixel predicted as 1
    eng_mask[0, 1, 4] = 0  # a class-1 pixel predicted as 0
    labels = ref_mask.astype(np.uint8).copy()
    labels[0, 0, 1] = 255  # ignored pixel: left out of the label metrics
    comp = SizeComparison((2, 5), 2)
    comp.add(_logits_for(ref_mask, 2), _logits_for(eng_mask, 2), labels)
    r = comp.result()
    assert r["agreement"] == pytest.approx(80.0)
    # between the masks, class 0: tp 4, ref-only 1, eng-only 1 -> IoU 4/6; class 1 the same
    assert r["iou_between"] == pytest.approx([4 / 6, 4 / 6])
    assert r["abs_error"]["max"] == pytest.approx(1.0)
    assert r["abs_error"]["mean"] == pytest.approx(4 / 20)  # 2 pixels x 2 classes of 20 values
    # reference = labels except the ignored pixel: mIoU 100; engine on the 9 counted pixels:
    # (pixels numbered row by row, pixel 1 ignored) class 0: target {0,2,5,6}, pred
    # {2,5,6,9} -> IoU 3/5; class 1: target {3,4,7,8,9}, pred {0,3,4,7,8} -> IoU 4/6
    assert r["miou_reference"] == pytest.approx(100.0)
    assert r["miou_engine"] == pytest.approx(100 * (3 / 5 + 4 / 6) / 2)
    assert r["miou_drop"] == pytest.approx(100 - 100 * (3 / 5 + 4 / 6) / 2)


def test_p99_within_histogram_resolution() -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((1, 2, 40, 50)).astype(np.float32)
    noise = rng.uniform(0, 1e-3, ref.shape).astype(np.float32)
    comp = SizeComparison((40, 50), 2)
    comp.add(ref, ref + noise)
    err = np.abs(ref - (ref + noise))
    exact = np.quantile(err, 0.99, method="inverted_cdf")
    assert exact <= comp.result()["abs_error"]["p99"] <= exact * 1.03
    assert "miou_drop" not in comp.result()


def test_shape_mismatch_is_an_input_error() -> None:
    comp = SizeComparison((4, 4), 2)
    with pytest.raises(InputError, match="differ"):
        comp.add(np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 4, 5)))
    with pytest.raises(InputError, match="classes"):
        comp.add(np.zeros((1, 3, 4, 4)), np.zeros((1, 3, 4, 4)))


def test_thresholds_by_precision_and_override() -> None:
    assert Thresholds.for_precision("fp32") == Thresholds(99.9, None)
    assert Thresholds.for_precision("fp16") == Thresholds(99.5, 0.5)
    assert Thresholds.for_precision("fp16", min_agreement=90, max_miou_drop=2) == \
        Thresholds(90.0, 2.0)
    with pytest.raises(UsageError):
        Thresholds.for_precision("fp32", min_agreement=120)


def test_check_thresholds() -> None:
    ok = {"size": [5, 7], "agreement": 99.95, "miou_drop": 0.2}
    assert check_thresholds(ok, Thresholds(99.9, 0.5)) == []
    bad = {"size": [5, 7], "agreement": 98.0, "miou_drop": 1.5}
    fails = check_thresholds(bad, Thresholds(99.5, 0.5))
    assert len(fails) == 2 and "5x7" in fails[0] and "mIoU" in fails[1]
    assert check_thresholds(bad, Thresholds(97.0, None)) == []


def test_parse_sizes() -> None:
    assert parse_sizes("97x131, 197X233") == [(97, 131), (197, 233)]
    for bad in ("97", "0x5", "axb", ""):
        with pytest.raises(UsageError):
            parse_sizes(bad)
