"""ConfusionMatrix against small cases computed by hand with the FCN paper's formulas."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from segdeploy.errors import InputError
from segdeploy.metrics import ConfusionMatrix


def test_hand_computed_three_classes_with_ignore():
    # pairs (target, pred): (0,0) (0,1) (1,1) (1,1) (2,2) (2,0); the 255 pixel is skipped
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 0]], dtype=np.uint8)
    cm = ConfusionMatrix(3).update(pred, target)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    m = cm.compute()
    # t = [2, 2, 2], predicted = [2, 3, 1], n_ii = [1, 2, 1], union = [3, 3, 2]
    assert m["pixel_accuracy"] == pytest.approx(4 / 6)
    assert m["mean_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert m["iou"] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert m["mean_iou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert m["fw_iou"] == pytest.approx((2 * 1 / 3 + 2 * 2 / 3 + 2 * 1 / 2) / 6)
    assert m["dice"] == pytest.approx([2 / 4, 4 / 5, 2 / 3])
    assert m["support"] == [2, 2, 2] and m["pixels"] == 6


def test_absent_classes_are_none_and_left_out_of_means():
    # class 2 is predicted but not in the target (IoU 0, counts); class 3 appears nowhere
    target = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 1, 2])
    m = ConfusionMatrix(4).update(pred, target).compute()
    assert m["iou"] == [1.0, 0.5, 0.0, None]
    assert m["dice"][:3] == pytest.approx([1.0, 2 / 3, 0.0]) and m["dice"][3] is None
    assert m["accuracy"] == [1.0, 0.5, None, None]
    assert m["mean_iou"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["mean_accuracy"] == pytest.approx(0.75)
    assert m["fw_iou"] == pytest.approx((2 * 1 + 2 * 0.5) / 4)
    assert m["pixel_accuracy"] == pytest.approx(0.75)
    json.dumps(m, allow_nan=False)  # JSON-safe: no NaN anywhere


def test_empty_matrix_gives_none_not_nan():
    m = ConfusionMatrix(2).update(np.zeros(3, np.uint8), np.full(3, 255, np.uint8)).compute()
    assert m["pixel_accuracy"] is None and m["mean_iou"] is None and m["fw_iou"] is None
    assert m["iou"] == [None, None]


def test_matches_a_naive_loop_and_merging_equals_one_update():
    rng = np.random.default_rng(0)
    k = 5
    target = rng.integers(0, k, size=(3, 17, 23)).astype(np.uint8)
    target[0, :4] = 255
    pred = rng.integers(0, k, size=target.shape).astype(np.int64)
    naive = np.zeros((k, k), np.int64)
    for t, p in zip(target.ravel(), pred.ravel(), strict=True):
        if t != 255:
            naive[t, p] += 1
    whole = ConfusionMatrix(k).update(pred, target)
    np.testing.assert_array_equal(whole.matrix, naive)
    parts = [ConfusionMatrix(k).update(pred[i], target[i]) for i in range(3)]
    summed = parts[0] + parts[1] + parts[2]
    np.testing.assert_array_equal(summed.matrix, naive)
    assert parts[0].matrix.sum() < naive.sum()  # __add__ did not mutate its operands
    merged = ConfusionMatrix(k)
    for part in parts:
        merged.merge(part)
    assert merged.compute() == whole.compute()


def test_perfect_prediction_scores_one():
    target = np.array([[0, 1], [2, 1]])
    m = ConfusionMatrix(3).update(target, target).compute()
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"):
        assert m[key] == pytest.approx(1.0)


@pytest.mark.parametrize("pred,target,match", [
    (np.zeros((2, 2), np.int64), np.zeros((2, 3), np.uint8), "shape"),
    (np.full((2, 2), 3), np.zeros((2, 2), np.uint8), "class id 3"),
    (np.zeros((2, 2), np.int64), np.full((2, 2), 7, np.uint8), "class id 7"),
    (np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8), "integer"),
])
def test_bad_inputs_raise_clear_errors(pred, target, match):
    with pytest.raises(InputError, match=match):
        ConfusionMatrix(3).update(pred, target)


def test_ignore_index_none_counts_every_pixel():
    with pytest.raises(InputError, match="class id 255"):
        ConfusionMatrix(3, ignore_index=None).update(np.zeros(2, int), np.array([0, 255]))


def test_metrics_module_imports_without_torch():
    code = ("import sys; import segdeploy.metrics, segdeploy.training.report, "
            "segdeploy.training; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
