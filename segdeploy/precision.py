"""What number format a graph or engine computes in: one enum, used by the card, manifests,
gates, builds and the CLI instead of free strings compared by hand.

`Precision` is a `str` enum, so it is written to JSON and metadata as "fp16" and compares
equal to that text; `Precision.parse` is the one place that reads a label.
"""

from __future__ import annotations

from enum import Enum

from segdeploy.errors import UsageError


class Precision(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"

    def __str__(self) -> str:
        return self.value

    def __hash__(self) -> int:  # as its text, so {"fp16": ...}[Precision.FP16] works too
        return hash(self.value)

    @classmethod
    def parse(cls, label: str | Precision | None, *, default: Precision | None = None
              ) -> Precision:
        """A precision from a label: its value ("fp16"), or a word other tools write
        ("mixed" = fp16, "qdq" = int8, "float32"...); None gives `default` (else FP32)."""
        if isinstance(label, Precision):
            return label
        if label is None or not str(label).strip():
            return default or cls.FP32
        text = str(label).strip().lower()
        found = _ALIASES.get(text)
        if found is None:
            raise UsageError(f"unknown precision {label!r}",
                             expected=" | ".join(p.value for p in cls))
        return found

    @property
    def gate(self) -> Precision:
        """The precision whose gate judges this one (bf16 is judged like fp16)."""
        return Precision.FP16 if self is Precision.BF16 else self

    @property
    def is_reduced(self) -> bool:
        return self is not Precision.FP32


_ALIASES: dict[str, Precision] = {
    **{p.value: p for p in Precision},
    "float32": Precision.FP32, "f32": Precision.FP32,
    "float16": Precision.FP16, "f16": Precision.FP16, "half": Precision.FP16,
    "mixed": Precision.FP16, "bfloat16": Precision.BF16, "qdq": Precision.INT8,
    "u8": Precision.INT8, "i8": Precision.INT8,
}
