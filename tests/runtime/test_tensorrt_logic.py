"""The TensorRT runner's pure logic: dtypes, buffer sizes, profile choice, alignment."""

from __future__ import annotations

import enum

import numpy as np
import pytest

from segdeploy.errors import ArtifactError, InputError
from segdeploy.runtime import TensorSpec
from segdeploy.runtime.preprocess import SizeBox, choose_padding, size_boxes
from segdeploy.runtime.tensorrt_shapes import (
    buffer_nbytes,
    is_aligned,
    numpy_dtype,
    select_profile,
    shapes_key,
    spec_shape,
    volume,
)


class DataTypeLikeTensorRT(enum.Enum):
    """Stands in for trt.DataType members, which numpy_dtype reads by name only."""

    FLOAT = 0
    HALF = 1
    INT32 = 3
    BF16 = 7


def test_dtype_mapping():
    assert numpy_dtype(DataTypeLikeTensorRT.FLOAT) == np.float32
    assert numpy_dtype(DataTypeLikeTensorRT.HALF) == np.float16
    assert numpy_dtype("DataType.INT32") == np.int32
    assert numpy_dtype("uint8") == np.uint8
    with pytest.raises(ArtifactError, match="BF16"):
        numpy_dtype(DataTypeLikeTensorRT.BF16)


def test_buffer_sizes_come_from_the_largest_profile():
    assert volume((2, 3, 4)) == 24
    assert buffer_nbytes([(1, 3, 64, 64), (4, 3, 128, 96)], np.float16) == 4 * 3 * 128 * 96 * 2
    with pytest.raises(ArtifactError, match="dynamic"):
        volume((1, -1, 4))
    assert spec_shape((-1, 3, -1, -1)) == (None, 3, None, None)
    assert is_aligned(4096) and not is_aligned(4096 + 4)


SPECS = {"input": TensorSpec("input", np.dtype(np.float32), (None, 3, None, None), profiles=(
    ((1, 3, 32, 32), (1, 3, 64, 64), (1, 3, 128, 128)),
    ((1, 3, 128, 128), (2, 3, 512, 512), (4, 3, 1024, 1024)),
))}


def test_profile_selection():
    assert select_profile(SPECS, {"input": (1, 3, 64, 64)}) == 0
    assert select_profile(SPECS, {"input": (2, 3, 300, 200)}) == 1
    # both fit: keep the current profile rather than switch
    assert select_profile(SPECS, {"input": (1, 3, 128, 128)}, current=1) == 1
    assert select_profile(SPECS, {"input": (1, 3, 128, 128)}) == 0
    with pytest.raises(InputError, match="outside the engine's profiles") as info:
        select_profile(SPECS, {"input": (1, 3, 2048, 64)})
    assert "4x3x1024x1024" in str(info.value) and "--tile" in str(info.value)
    assert shapes_key({"b": (1, 2), "a": [3]}) == (("a", (3,)), ("b", (1, 2)))


def test_padding_plan_follows_profiles_and_model_rules():
    boxes = size_boxes(SPECS["input"], "NCHW")
    assert boxes[1] == SizeBox((1, 4), (128, 1024), (128, 1024))
    plan = choose_padding(45, 67, boxes=boxes, multiple=16, min_size=32)
    assert plan.input_size(45, 67) == (48, 80) and plan.box is boxes[0]
    plan = choose_padding(200, 90, boxes=boxes, multiple=16, min_size=32)
    assert plan.input_size(200, 90) == (208, 128) and plan.box is boxes[1]
    plan = choose_padding(10, 10, boxes=boxes, multiple=1, min_size=1, margin=(3, 5))
    assert (plan.top, plan.left) == (3, 5) and plan.input_size(10, 10) == (32, 32)
    with pytest.raises(InputError, match="predict_tiled"):
        choose_padding(1100, 50, boxes=boxes, multiple=16)
    nhwc = TensorSpec("input", np.dtype(np.uint8), (None, None, None, 3))
    assert size_boxes(nhwc, "NHWC") == [SizeBox()]
