"""OpenVINO on the CPU as a bench backend: the bare compiled model on a ready batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from segdeploy.bench.backends import BenchBackend, Shape, engine_feeds, export_info_or_none
from segdeploy.bench.cpu_features import cpu_extensions
from segdeploy.manifest import ExportInfo


def default_precisions(extensions: list[str] | None = None) -> tuple[str, ...]:
    """fp32, plus bf16 where the CPU computes bf16 natively (AMX-BF16 or AVX-512 BF16)."""
    ext = cpu_extensions() if extensions is None else extensions
    return ("fp32", "bf16") if {"AMX-BF16", "AVX-512 BF16"} & set(ext) else ("fp32",)


class OpenVINOBackend(BenchBackend):
    """OpenVINORunner.infer on an already prepared batch, at one inference precision hint."""

    def __init__(self, path: str | Path, *, precision: str = "auto",
                 threads: int | None = None) -> None:
        self.path = Path(path)
        self.precision = precision
        self.threads = threads
        self.runner: Any = None
        self.export: ExportInfo | None = None
        self.name = f"openvino {precision}"

    def open(self) -> None:
        from segdeploy.runtime.openvino_runner import OpenVINORunner

        self.runner = OpenVINORunner(self.path, precision=self.precision,
                                     threads=self.threads).activate()
        self.export = export_info_or_none(self.runner, self.path)
        graph = self.export.precision if self.export is not None else "onnx"
        used = self.runner.inference_precision
        self.name = f"openvino {graph}" + ("" if graph == used else f" ({used})")

    def prepare(self, shape: Shape) -> Callable[[], object]:
        feeds = engine_feeds(self.runner.input_specs(), self.export, shape)
        runner = self.runner
        return lambda: runner.infer(feeds, check=False)

    def info(self) -> dict[str, Any]:
        return {"file": str(self.path), "precision_hint": self.precision,
                "inference_precision": self.runner.inference_precision,
                "precision": self.export.precision if self.export else "unknown",
                "threads": self.threads or "default"}

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
