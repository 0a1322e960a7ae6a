"""OpenVINO on the CPU as a bench backend: the bare compiled model on a ready batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segdeploy.bench.backends import RunnerBackend
from segdeploy.bench.cpu_features import cpu_extensions


def default_precisions(extensions: list[str] | None = None) -> tuple[str, ...]:
    """fp32, plus bf16 where the CPU computes bf16 natively (AMX-BF16 or AVX-512 BF16)."""
    ext = cpu_extensions() if extensions is None else extensions
    return ("fp32", "bf16") if {"AMX-BF16", "AVX-512 BF16"} & set(ext) else ("fp32",)


class OpenVINOBackend(RunnerBackend):
    """OpenVINORunner.infer on an already prepared batch, at one inference precision hint."""

    def __init__(self, path: str | Path, *, precision: str = "auto",
                 threads: int | None = None) -> None:
        super().__init__(path, backend="openvino", threads=threads,
                         options={"precision": precision})
        self.precision = precision
        self.name = f"openvino {precision}"

    def label(self) -> str:
        graph = self.export.precision if self.export is not None else "onnx"
        used = self.runner.inference_precision
        return f"openvino {graph}" + ("" if graph == used else f" ({used})")

    def info(self) -> dict[str, Any]:
        return {**super().info(), "precision_hint": self.precision,
                "inference_precision": self.runner.inference_precision}
