"""The one table of inference backends: names, aliases, the files each opens, the options it
takes and how to make its Runner.

`Segmenter.load`, the bench, every `--backend` choice of the CLI and the error messages read
this table, so adding a backend is one runner module plus one `register_backend` row
(the way torchvision's model registry works): nothing else keeps a list by hand.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segdeploy.artifacts import ONNX_SUFFIXES, PLAN_SUFFIXES
from segdeploy.errors import UsageError
from segdeploy.runtime.runner import Runner

#: the keyword arguments of Segmenter.load that only some backends take
LOAD_OPTIONS = ("providers", "threads", "precision")


@dataclass(frozen=True)
class BackendSpec:
    """One row of the table.

    factory(path, **options) builds the (inactive) Runner; it receives only the
    `accepted_options` that were given plus the backend's own keyword options.
    `default_for`: suffixes this backend opens when no backend is named.
    """

    name: str
    factory: Callable[..., Runner]
    suffixes: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    default_for: tuple[str, ...] = ()
    accepted_options: frozenset[str] = frozenset()
    precisions: tuple[str, ...] = ()
    device: str = "cpu"
    extra: str | None = None
    summary: str = ""
    #: the name people write ("ONNX Runtime"), for messages
    label: str = ""
    #: check an INT8 (QDQ) file's first run against ONNX Runtime at load (int8_crosscheck.py)
    crosscheck_int8: bool = False

    def opens(self, path: str | os.PathLike[str]) -> bool:
        return Path(path).suffix.lower() in self.suffixes

    def runner(self, path: str | os.PathLike[str], *, providers: Any = None,
               threads: int | None = None, precision: str | None = None,
               **options: Any) -> Runner:
        """The Runner for `path`; a load option this backend ignores is a UsageError."""
        given = {k: v for k, v in (("providers", providers), ("threads", threads),
                                   ("precision", precision)) if v is not None}
        refused = [k for k in given if k not in self.accepted_options]
        if refused:
            takers = [s for s in BACKENDS.values() if refused[0] in s.accepted_options]
            where = " and ".join(s.label or s.name for s in takers) or "no backend"
            raise UsageError(
                f"{refused[0]}= applies to {where} only, not to {self.label or self.name}",
                fix=f"drop {refused[0]}=" + (", or choose backend=" + " / ".join(
                    repr(s.name) for s in takers) if takers else ""))
        if precision is not None and self.precisions and precision not in self.precisions:
            raise UsageError(f"precision={precision!r} for {self.name}",
                             expected=" | ".join(self.precisions))
        return self.factory(Path(path), **given, **options)


BACKENDS: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Add a row; a name or alias that is already taken is refused (no silent override)."""
    taken = {n for s in BACKENDS.values() for n in (s.name, *s.aliases)}
    clash = [n for n in (spec.name, *spec.aliases) if n.lower() in taken]
    if clash:
        raise ValueError(f"backend name {clash[0]!r} is already registered")
    BACKENDS[spec.name] = spec
    return spec


def unregister_backend(name: str) -> None:
    """Remove a row (plugins and tests that add one)."""
    BACKENDS.pop(name, None)


def backend_names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def get_backend(name: str) -> BackendSpec:
    """The row for a name or alias (case-insensitive)."""
    key = name.lower()
    for spec in BACKENDS.values():
        if key == spec.name or key in spec.aliases:
            return spec
    raise UsageError(f"unknown backend {name!r}",
                     expected=" | ".join(repr(n) for n in backend_names()))


def backends_opening(path: str | os.PathLike[str]) -> list[BackendSpec]:
    """Every backend that runs this file, the default ones first."""
    suffix = Path(path).suffix.lower()
    found = [s for s in BACKENDS.values() if suffix in s.suffixes]
    return sorted(found, key=lambda s: suffix not in s.default_for)


def backend_for(path: str | os.PathLike[str], backend: str | None = None) -> BackendSpec:
    """The named backend, or the file's default by its suffix. A named backend gets any
    file: its runner judges the bytes (a plan named model.bin is still a plan), and says
    what the file is when it is not its kind."""
    path = Path(path)
    if backend is not None:
        return get_backend(backend)
    defaults = [s for s in BACKENDS.values() if path.suffix.lower() in s.default_for]
    if not defaults:
        from segdeploy.artifact_kind import sniff

        kind = sniff(path) if path.is_file() else None
        if kind is not None and kind.name in ("onnx", "plan"):  # a model, misnamed
            return next(s for s in BACKENDS.values()
                        if (".onnx" if kind.name == "onnx" else ".plan") in s.default_for)
        if kind is not None and kind.name not in ("unknown", "text"):
            raise UsageError(f"{path} is {kind.what}, not a model file this command runs",
                             expected="an ONNX model or a TensorRT plan", fix=kind.use)
        raise UsageError(f"cannot tell the backend of {path.name} from its suffix",
                         expected="a file ending in " + " / ".join(all_suffixes()),
                         fix="`segdeploy info FILE` says what the file is")
    return defaults[0]


def all_suffixes() -> list[str]:
    return list(dict.fromkeys(x for s in BACKENDS.values() for x in s.suffixes))


# -- the built-in rows ---------------------------------------------------------------------
def _onnxruntime(path: Path, **options: Any) -> Runner:
    from segdeploy.runtime.onnxruntime_runner import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, **options)


def _openvino(path: Path, *, precision: str | None = None, **options: Any) -> Runner:
    from segdeploy.runtime.openvino_runner import OpenVINORunner

    return OpenVINORunner(path, precision=precision or "auto", **options)


def _tensorrt(path: Path, **options: Any) -> Runner:
    from segdeploy.runtime.tensorrt_runner import TensorRTRunner

    return TensorRTRunner(path, **options)


def _builtin() -> Mapping[str, BackendSpec]:
    return {s.name: s for s in (
        BackendSpec("onnxruntime", _onnxruntime, ONNX_SUFFIXES, aliases=("ort", "onnx"),
                    default_for=ONNX_SUFFIXES,
                    accepted_options=frozenset({"providers", "threads"}),
                    summary="ONNX Runtime (CPU, or CUDA / TensorRT providers)",
                    label="ONNX Runtime"),
        BackendSpec("openvino", _openvino, ONNX_SUFFIXES, aliases=("ov",),
                    accepted_options=frozenset({"threads", "precision"}),
                    precisions=("auto", "fp32", "bf16"), extra="openvino",
                    summary="OpenVINO on Intel/AMD CPUs", label="OpenVINO",
                    crosscheck_int8=True),
        BackendSpec("tensorrt", _tensorrt, PLAN_SUFFIXES, aliases=("trt",),
                    default_for=PLAN_SUFFIXES, device="gpu", extra="tensorrt",
                    summary="a TensorRT plan on an NVIDIA GPU", label="TensorRT"),
    )}


for _spec in _builtin().values():
    register_backend(_spec)
