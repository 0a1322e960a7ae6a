"""Profile parsing, defaults from model metadata, validation, and engine-vs-ONNX comparisons."""

from __future__ import annotations

import pytest

from segdeploy.engine.profiles import (
    InputGeometry,
    IOSpec,
    ShapeProfile,
    default_profile,
    engine_profile_problems,
    io_problems,
    parse_profile,
    parse_shape,
    profile_problems,
    validate_profiles,
)
from segdeploy.errors import ArtifactError, UsageError
from segdeploy.manifest import ExportInfo, ModelCard


def geometry(**kw) -> InputGeometry:
    base = dict(name="input", in_channels=3, size_multiple=32, min_size=64,
                train_size=(197, 233), onnx_dims=("batch", 3, "height", "width"))
    base.update(kw)
    return InputGeometry(**base)


def test_parse_shape_and_profile():
    assert parse_shape("1x3x128x128") == (1, 3, 128, 128)
    assert parse_shape(" 4X3x1024x1024 ") == (4, 3, 1024, 1024)
    p = parse_profile("min=1x3x128x128,opt=1x3x512x512,max=4x3x1024x1024")
    assert p == ShapeProfile((1, 3, 128, 128), (1, 3, 512, 512), (4, 3, 1024, 1024))
    assert parse_profile("max=2x3x64x64, min=1x3x64x64 ,opt=1x3x64x64").max == (2, 3, 64, 64)
    assert parse_profile("1x3x256x256") == ShapeProfile(*[(1, 3, 256, 256)] * 3)
    assert ShapeProfile.from_dict(p.to_dict()) == p
    assert parse_profile(p.describe()) == p


@pytest.mark.parametrize("text, message", [
    ("min=1x3x128x128,opt=1x3x512x512", "lacks max"),
    ("min=1x3x128,opt=1x3x512x512,max=4x3x1024x1024,min=1x3x1x1", "each key once"),
    ("low=1x3x1x1,opt=1x3x1x1,max=1x3x1x1", "cannot read profile"),
    ("min=1x3x0x128,opt=1x3x512x512,max=4x3x1024x1024", "cannot read shape"),
    ("1x3xHx128", "cannot read shape"),
    ("min=,opt=1x3x512x512,max=4x3x1024x1024", "cannot read profile"),
])
def test_bad_profile_text(text, message):
    with pytest.raises(UsageError, match=message):
        parse_profile(text)


def test_default_profile_from_metadata():
    p = default_profile(geometry())
    # min: smallest side rounded to the multiple; opt: training size rounded up; max: 4x1024
    assert p == ShapeProfile((1, 3, 64, 64), (1, 3, 224, 256), (4, 3, 1024, 1024))
    assert not profile_problems(p, geometry())


def test_default_profile_respects_fixed_onnx_dims_and_big_training_sizes():
    g = geometry(size_multiple=1, min_size=32, train_size=(1500, 700),
                 onnx_dims=(1, 1, "height", "width"), in_channels=1)
    p = default_profile(g)
    assert p.min == (1, 1, 32, 32) and p.opt == (1, 1, 1500, 700)
    assert p.max == (1, 1, 1500, 1024)
    assert not profile_problems(p, g)


def test_geometry_from_export_info():
    card = ModelCard(arch="unet", num_classes=2, classes=["bg", "fg"], in_channels=1,
                     mean=[0.5], std=[0.2], size_multiple=16, min_size=16, train_size=[96, 80])
    g = InputGeometry.from_export(ExportInfo(card=card), ("batch", 1, "height", "width"))
    assert (g.in_channels, g.size_multiple, g.min_size, g.train_size) == (1, 16, 16, (96, 80))
    assert default_profile(g).opt == (1, 1, 96, 80)


def test_validation_names_every_problem():
    bad = ShapeProfile((1, 1, 48, 64), (1, 3, 100, 96), (2, 3, 64, 2048))
    with pytest.raises(UsageError) as err:
        validate_profiles([bad], geometry())
    text = str(err.value)
    for expected in ("min has 1 channels, the model takes 3", "min H=48 is below",
                     "opt H=100 is not a multiple of 32", "H is not min <= opt <= max",
                     "C is fixed to 3 in the ONNX", "--profile min=1x3x64x64"):
        assert expected in text, (expected, text)


def test_validation_of_rank_and_fixed_dims():
    g = geometry(onnx_dims=(1, 3, "height", "width"))
    problems = profile_problems(parse_profile("min=1x3x64x64,opt=2x3x64x64,max=2x3x64x64"), g)
    assert problems == ["N is fixed to 1 in the ONNX"]
    assert "has 3 dims" in profile_problems(parse_profile("1x3x64"), g)[0]


def test_several_profiles_are_validated_each():
    good = parse_profile("min=1x3x64x64,opt=1x3x256x256,max=1x3x512x512")
    bad = parse_profile("min=8x3x64x64,opt=4x3x64x64,max=8x3x64x64")
    assert validate_profiles([good], geometry()) == [good]
    with pytest.raises(UsageError, match=r"profile 2 \(min=8x3"):
        validate_profiles([good, bad], geometry())
    with pytest.raises(UsageError, match="no optimisation profile"):
        validate_profiles([], geometry())


def test_io_comparison():
    onnx_io = [IOSpec("input", "input", "float32", ("batch", 3, "h", "w")),
               IOSpec("logits", "output", "float32", ("batch", 2, "h", "w")),
               IOSpec("mask", "output", "int64", ("batch", "h", "w"))]
    engine = [IOSpec("input", "input", "float32", (-1, 3, -1, -1)),
              IOSpec("logits", "output", "float32", (-1, 2, -1, -1)),
              IOSpec("mask", "output", "int32", (-1, -1, -1))]  # TensorRT 8.x casts int64
    assert io_problems(onnx_io, engine) == []
    engine[1] = IOSpec("logits", "output", "float16", (-1, 2, -1, -1))
    engine.append(IOSpec("extra", "output", "float32", (1,)))
    problems = io_problems(onnx_io, engine[:2] + engine[3:])
    assert "'logits' is float32 in the ONNX but float16 in the engine" in problems
    assert "ONNX output 'mask' is missing from the engine" in problems
    assert "engine output 'extra' is not in the ONNX" in problems
    assert IOSpec("x", "input", "uint8", ("n", 3)).to_dict()["shape"] == [-1, 3]


def test_engine_profile_comparison():
    a = parse_profile("min=1x3x64x64,opt=1x3x256x256,max=4x3x512x512")
    b = parse_profile("min=1x3x64x64,opt=1x3x128x128,max=4x3x512x512")
    assert engine_profile_problems([a], [a]) == []
    assert "opt=1x3x128x128" in engine_profile_problems([a], [b])[0]
    assert "2 profiles, 1 were asked" in engine_profile_problems([a], [a, b])[0]


def test_malformed_profile_dict():
    with pytest.raises(ArtifactError, match="malformed profile"):
        ShapeProfile.from_dict({"min": [1, 3], "opt": [1, 3]})
