"""One shape grammar: every option that takes a size reads the same strings the same way."""

from __future__ import annotations

import pytest

from segdeploy.bench.harness import parse_shape as bench_shape
from segdeploy.dims import format_dims, parse_dims, parse_dims_list
from segdeploy.engine.profiles import parse_profile
from segdeploy.errors import UsageError
from segdeploy.export.parity import parse_sizes as export_sizes
from segdeploy.manifest import ModelCard
from segdeploy.training.config import parse_size
from segdeploy.verify.parity import parse_sizes as verify_sizes

CARD = ModelCard(arch="unet", num_classes=2, classes=["a", "b"], min_size=16, size_multiple=1)

GOOD = ["197x233", "2x3x197x233", " 97x131 ", "1X3X64X64"]
BAD = ["", "197", "197x", "x233", "0x233", "-1x233", "197x233x1", "a x b", "197*233",
       "1.5x2"]


def accepts(parse, text: str) -> bool:
    try:
        parse(text)
    except UsageError:
        return False
    return True


@pytest.mark.parametrize("text", GOOD + BAD)
def test_export_and_verify_accept_the_same_shape_strings(text: str) -> None:
    by_export = accepts(lambda t: export_sizes([t], CARD), text)
    by_verify = accepts(verify_sizes, text)
    assert by_export == by_verify == (text in GOOD)


@pytest.mark.parametrize("text", GOOD)
def test_export_and_verify_read_the_same_size(text: str) -> None:
    (n, h, w), = export_sizes([text], CARD)[0]
    assert verify_sizes(text) == [(h, w)]


def test_round_trip_and_ranks() -> None:
    assert parse_dims(format_dims((1, 3, 512, 512))) == (1, 3, 512, 512)
    assert parse_dims_list("97x131,2x3x197x233") == [(97, 131), (2, 3, 197, 233)]
    with pytest.raises(UsageError, match="NxCxHxW"):
        parse_dims("197x233", ranks=(4,))
    assert bench_shape("197x233", 1) == (1, 1, 197, 233)
    assert parse_profile("min=1x3x16x16,opt=1x3x32x32,max=2x3x64x64").max == (2, 3, 64, 64)
    assert parse_size("160x224") == (160, 224) and parse_size("192") == (192, 192)
    with pytest.raises(UsageError):
        parse_size("160x")


def test_fit_size_is_the_one_size_rule() -> None:
    card = ModelCard(arch="m", num_classes=2, classes=["a", "b"], min_size=32, size_multiple=16)
    assert card.fit_size(10, 40) == (32, 48)
    assert card.fit_size(100, 300, max_size=(None, 250)) == (112, 240)
    assert card.accepts_size(32, 48) and not card.accepts_size(33, 48)
    assert card.size_rule() == "sides >= 32 and multiples of 16"
