"""Type-check the fields of a metadata dict against a dataclass's annotations, on read.

A hand-edited or foreign `.plan.json` / ONNX metadata with `"min_size": "16"` or a list
where a dict belongs must fail at load with the field's name, not deep in inference.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, Union

from segdeploy.errors import ArtifactError


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def type_problem(value: Any, tp: Any, where: str) -> str | None:
    """None if `value` fits `tp`, else a short description of the first mismatch."""
    if tp is Any:
        return None
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        if all(type_problem(value, a, where) for a in typing.get_args(tp)):
            return f"{where} is {type(value).__name__} {value!r:.40}, expected {_describe(tp)}"
        return None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return None if isinstance(value, tp) else f"{where} is not a JSON object"
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return f"{where} is {type(value).__name__}, expected a list"
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return next((p for i, v in enumerate(value)
                     if (p := type_problem(v, item, f"{where}[{i}]"))), None)
    if origin is dict:
        if not isinstance(value, dict):
            return f"{where} is {type(value).__name__}, expected a JSON object"
        args = typing.get_args(tp)
        item = args[1] if len(args) == 2 else Any
        return next((p for k, v in value.items()
                     if (p := type_problem(v, item, f"{where}[{k!r}]"))), None)
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is type(None):
        ok = value is None
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):  # written as its value
        ok = isinstance(value, tp) or value in {m.value for m in tp}
    elif isinstance(tp, type):
        ok = isinstance(value, tp)
    else:
        ok = True
    return None if ok else (f"{where} is {type(value).__name__} {value!r:.40}, "
                            f"expected {_describe(tp)}")


def check_fields(cls: type, data: dict[str, Any], what: str) -> None:
    """ArtifactError naming the first field of `data` whose type does not match `cls`."""
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if name in hints:
            problem = type_problem(value, hints[name], f"{what} field {name!r}")
            if problem:
                raise ArtifactError(problem, expected=f"the {what} segdeploy writes",
                                    fix="re-create the artifact with this segdeploy "
                                        "(`segdeploy export` / `segdeploy build`)")
