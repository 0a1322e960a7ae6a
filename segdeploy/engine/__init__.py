"""ONNX -> TensorRT plan (+ `.plan.json`), verified before publishing.

    from segdeploy.engine import BuildRequest, build_engine
    result = build_engine(BuildRequest(onnx_path="fcn8s.fp16.onnx"))

Modules: `engine_build` (the orchestration: checks, cache, build, inspect, smoke parity,
atomic publish), `network` (the TensorRT calls; the module is passed in), `precision`
(per-TensorRT-version precision decision and engine-layer checks), `profiles` (optimisation
profiles and I/O specs), `smoke_parity` (TensorRT vs ONNX Runtime at the profile shapes),
`engine_cache` (content-addressed cache of built plans). tensorrt is imported lazily, so this
package imports on any machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from segdeploy.engine.engine_build import BuildRequest, BuildResult, build_engine

__all__ = ["BuildRequest", "BuildResult", "build_engine"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from segdeploy.engine import engine_build

        return getattr(engine_build, name)
    raise AttributeError(f"module 'segdeploy.engine' has no attribute {name!r}")
