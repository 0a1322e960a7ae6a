"""One grammar for shapes on the command line: positive integers joined by 'x'.

`--profile`, `--shape`, `--check-sizes`, `--sizes` and `--image-size` all read shapes with
`parse_dims` and print them with `format_dims`, so `2x3x197x233` means the same everywhere
(NxCxHxW; where only a size is needed, its last two dims are H x W).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from segdeploy.errors import UsageError

_RANK_NAMES = {1: "S", 2: "HxW", 3: "CxHxW", 4: "NxCxHxW"}
_EXAMPLES = {1: "256", 2: "197x233", 3: "3x197x233", 4: "2x3x197x233"}


def format_dims(dims: Sequence[int]) -> str:
    """(1, 3, 512, 512) -> '1x3x512x512'."""
    return "x".join(str(int(d)) for d in dims)


def parse_dims(text: str, *, ranks: Sequence[int] = (4,), what: str = "shape") -> tuple[int, ...]:
    """'1x3x512x512' -> (1, 3, 512, 512); the number of dims must be one of `ranks`."""
    parts = [p.strip() for p in str(text).strip().lower().split("x")]
    if not all(re.fullmatch(r"\d+", p) for p in parts) or len(parts) not in ranks \
            or any(int(p) < 1 for p in parts):
        shown = [r for r in ranks if r in _EXAMPLES] or [4]
        forms = " or ".join(f"{_RANK_NAMES[r]} (e.g. {_EXAMPLES[r]})" for r in shown)
        raise UsageError(f"cannot read {what} {text!r}",
                         expected=f"positive integers joined by 'x': {forms}",
                         fix="write it like " + " or ".join(_EXAMPLES[r] for r in shown))
    return tuple(int(p) for p in parts)


def parse_dims_list(text: str, *, ranks: Sequence[int] = (2, 4),
                    what: str = "size") -> list[tuple[int, ...]]:
    """'97x131,2x3x197x233' -> [(97, 131), (2, 3, 197, 233)]: comma-separated parse_dims."""
    items = [p for p in (s.strip() for s in str(text).split(",")) if p]
    if not items:
        raise UsageError(f"no {what} given",
                         expected=f"{what}s like " + ",".join(_EXAMPLES[r] for r in ranks
                                                              if r in _EXAMPLES))
    return [parse_dims(item, ranks=ranks, what=what) for item in items]
