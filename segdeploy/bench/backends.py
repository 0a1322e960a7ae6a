"""What `segdeploy bench` can time: PyTorch eager, ONNX Runtime, Segmenter end to end, TensorRT.

Every backend opens once, then `measure(shape, ...)` times one batch per iteration at an
N x C x H x W shape. Timing lives here, not in the runtime's runners
(docs/ARCHITECTURE.md): a backend only prepares inputs and returns a callable that
finishes its work before returning.
Heavy libraries (torch, onnxruntime, tensorrt) are imported when a backend opens.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.bench.timing import measure
from segdeploy.errors import UsageError
from segdeploy.manifest import ExportInfo, ModelCard

Shape = tuple[int, int, int, int]
StepHook = Callable[[int, float], None]


class BenchBackend(abc.ABC):
    """One thing to time. Subclasses implement `open`, `prepare` and `close`."""

    #: short label in tables ("onnxruntime fp16", "tensorrt fp16 graphs"...)
    name: str = "backend"

    @abc.abstractmethod
    def open(self) -> None:
        """Load the model / start the session (import heavy libraries here)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release sessions, engines and device memory (safe to call more than once)."""

    @abc.abstractmethod
    def prepare(self, shape: Shape) -> Callable[[], object]:
        """Inputs for one N x C x H x W batch; returns a call that runs it to completion."""

    def info(self) -> dict[str, Any]:
        """What ran (precision, provider, file...), for the JSON report."""
        return {}

    def measure(self, shape: Shape, *, warmup: int, iterations: int | None,
                duration: float | None, on_step: StepHook | None = None,
                min_iterations: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Latency samples in seconds, plus per-phase samples where the backend splits them."""
        fn = self.prepare(shape)
        return measure(fn, warmup=warmup, iterations=iterations, duration=duration,
                       on_step=on_step, min_iterations=min_iterations), {}


def random_images(shape: Shape, seed: int = 0) -> np.ndarray:
    """N x H x W x C uint8 noise for an N x C x H x W shape (content does not change speed)."""
    n, c, h, w = shape
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


class PyTorchBackend(BenchBackend):
    """PyTorch eager on the CPU from a segdeploy checkpoint (the baseline)."""

    def __init__(self, checkpoint: str | Path, *, threads: int | None = None) -> None:
        self.checkpoint = Path(checkpoint)
        self.threads = threads
        self.name = "pytorch eager"
        self.model: Any = None
        self.card: ModelCard | None = None

    def open(self) -> None:
        import torch

        from segdeploy.reference_models.checkpoint import load_model

        if self.threads:
            torch.set_num_threads(self.threads)
        self.model, self.card = load_model(self.checkpoint)

    def prepare(self, shape: Shape) -> Callable[[], object]:
        import torch

        gen = torch.Generator().manual_seed(0)
        x = torch.randn(*shape, generator=gen)
        model = self.model

        def run() -> object:
            with torch.inference_mode():
                return model(x)

        return run

    def info(self) -> dict[str, Any]:
        import torch

        return {"file": str(self.checkpoint), "precision": "fp32", "device": "cpu",
                "threads": torch.get_num_threads()}

    def close(self) -> None:
        self.model = None


class RunnerBackend(BenchBackend):
    """Any runtime backend's `Runner.infer` on an already normalised batch (no pre- or
    post-processing): how a backend added to runtime/backends.py is timed with no bench code."""

    def __init__(self, path: str | Path, *, backend: str = "onnxruntime",
                 threads: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.backend = backend
        self.threads = threads
        self.options = dict(options or {})
        self.runner: Any = None
        self.export: ExportInfo | None = None
        self.name = backend

    def open(self) -> None:
        from segdeploy.runtime.backends import get_backend

        spec = get_backend(self.backend)
        kw = dict(self.options)
        if self.threads and "threads" in spec.accepted_options:
            kw["threads"] = self.threads
        self.runner = spec.runner(self.path, **kw).activate()
        self.export = export_info_or_none(self.runner, self.path)
        self.name = self.label()

    def label(self) -> str:
        return f"{self.backend} {self.export.precision}" if self.export else self.backend

    def prepare(self, shape: Shape) -> Callable[[], object]:
        feeds = engine_feeds(self.runner.input_specs(), self.export, shape)
        runner = self.runner
        return lambda: runner.infer(feeds, check=False)

    def info(self) -> dict[str, Any]:
        return {"file": str(self.path), "backend": self.backend,
                "precision": self.export.precision if self.export else "unknown",
                "threads": self.threads or "default"}

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()


class OnnxRuntimeBackend(RunnerBackend):
    """The raw ONNX Runtime session, labelled with the provider when it is not the CPU."""

    def __init__(self, path: str | Path, *, threads: int | None = None,
                 providers: str | None = None) -> None:
        super().__init__(path, backend="onnxruntime", threads=threads,
                         options={"providers": providers} if providers else None)

    def label(self) -> str:
        first = self.runner.providers[0]
        where = "" if first == "CPUExecutionProvider" else \
            f" ({first.removesuffix('ExecutionProvider').lower()})"
        return super().label() + where

    def info(self) -> dict[str, Any]:
        return {**super().info(), "providers": self.runner.providers}


def export_info_or_none(runner: Any, path: Path) -> ExportInfo | None:
    """The ONNX's segdeploy metadata, or None: a foreign ONNX still benchmarks (its shapes come
    from --shape), just without a precision label."""
    try:
        return ExportInfo.from_metadata_props(runner.metadata(), source=str(path))
    except Exception:
        return None


def engine_feeds(specs: dict[str, Any], export: ExportInfo | None, shape: Shape
                 ) -> dict[str, np.ndarray]:
    """Random feeds for an N x C x H x W shape in the graph's own dtype and layout."""
    from segdeploy.runtime.preprocess import to_model_input

    if len(specs) != 1:
        raise UsageError(f"the model has {len(specs)} inputs ({', '.join(specs)})",
                         expected="one image input")
    name, spec = next(iter(specs.items()))
    images = random_images(shape)
    if export is not None:
        mean, std, layout = export.card.mean, export.card.std, export.input_layout.upper()
    else:
        mean, std, layout = [0.5] * shape[1], [0.25] * shape[1], "NCHW"
    layout = layout if np.dtype(spec.dtype) == np.uint8 else "NCHW"
    return {name: to_model_input(images, dtype=spec.dtype, layout=layout, mean=mean, std=std)}


class SegmenterBackend(BenchBackend):
    """`Segmenter.predict` on uint8 images: padding, normalisation, inference, argmax, crop,
    on the backend `segdeploy predict` picks (backend="auto": runtime/auto_backend.py)."""

    def __init__(self, path: str | Path, *, threads: int | None = None,
                 options: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self.options = dict(options or {})
        self.seg: Any = None
        self.name = "segmenter"
        self.notes: list[str] = []  # why "auto" did not take OpenVINO (in info, --json)

    def open(self) -> None:
        from segdeploy.runtime import Segmenter
        from segdeploy.runtime.backends import backend_for

        kw: dict[str, Any] = {"backend": "auto", **self.options}  # where predict runs it
        if self.threads and "threads" in backend_for(self.path).accepted_options:
            kw["threads"] = self.threads
        self.seg = Segmenter.load(self.path, notify=self.notes.append, **kw)
        self.name = f"segmenter {self.seg.runner.name} {self.seg.info.precision}"

    def prepare(self, shape: Shape) -> Callable[[], object]:
        images = random_images(shape)
        seg = self.seg
        return lambda: seg.predict(images)

    def info(self) -> dict[str, Any]:
        return {"file": str(self.path), "backend": self.seg.runner.name,
                "precision": self.seg.info.precision, "end_to_end": True,
                "threads": self.threads or "default",
                **({"backend_note": self.notes[0]} if self.notes else {})}

    def close(self) -> None:
        if self.seg is not None:
            self.seg.close()
