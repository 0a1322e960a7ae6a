"""One result of a graph check, shared by the structural checks and TensorRT's operator list."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Finding:
    """One result of a graph check; level "error" fails the export, "warning" is reported."""

    level: str
    check: str
    message: str
    nodes: list[str] = field(default_factory=list)
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)
