"""Library exceptions become ours at a boundary (map_exceptions), on one line (first_line)."""

from __future__ import annotations

import pytest

from segdeploy.errors import (
    DataError,
    DeviceError,
    InputError,
    SegdeployError,
    first_line,
    map_exceptions,
)


def test_first_line_drops_onnxruntime_prefix_and_advice() -> None:
    exc = RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions\n"
                       " index: 2 Got: 61 Expected: 64\nPlease fix either the inputs or the model.")
    assert first_line(exc) == "Got invalid dimensions"
    assert first_line(exc, join=True) == ("Got invalid dimensions; index: 2 Got: 61 "
                                          "Expected: 64")
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(KeyError("k"), with_type=True) == "KeyError: 'k'"
    assert len(first_line(ValueError("x" * 900), limit=40)) == 40


def test_map_exceptions_translates_the_first_match_and_keeps_the_cause() -> None:
    mapping = {(OSError, TimeoutError): lambda e: DeviceError(f"device: {e}"),
               Exception: lambda e: InputError(f"input: {e}")}
    with pytest.raises(DeviceError, match="device: gone") as info, map_exceptions(mapping):
        raise OSError("gone")
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(InputError, match="input: bad"), map_exceptions(mapping):
        raise ValueError("bad")


def test_map_exceptions_leaves_our_errors_unless_named() -> None:
    broad = {Exception: lambda e: InputError("re-typed")}
    with pytest.raises(DataError, match="ours"), map_exceptions(broad):
        raise DataError("ours")
    named = {InputError: lambda e: e.retyped(DataError, fix="remove the file")}  # type: ignore
    with pytest.raises(DataError) as info, map_exceptions(named):
        raise InputError("image is empty", expected="pixels")
    assert info.value.render() == ("image is empty. Expected pixels. Fix: remove the file.")
    assert isinstance(info.value, SegdeployError) and isinstance(info.value.__cause__,
                                                                  InputError)
