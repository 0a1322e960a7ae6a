"""One exception tree so the CLI can turn any expected failure into one clear line.

Every message says what was wrong, what was expected, and how to fix it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

ErrorT = TypeVar("ErrorT", bound="SegdeployError")


class SegdeployError(Exception):
    """Base of every error segdeploy raises on purpose (bad input, missing dependency...)."""

    def __init__(self, what: str, *, expected: str | None = None, fix: str | None = None):
        self.what = what
        self.expected = expected
        self.fix = fix
        super().__init__(self.render())

    def retyped(self, cls: type[ErrorT], **changes: str | None) -> ErrorT:
        """The same message as another error type (an image error met while reading a
        dataset is the dataset's error); keyword changes replace what/expected/fix."""
        fields = {"what": self.what, "expected": self.expected, "fix": self.fix, **changes}
        new = cls(str(fields.pop("what")), **fields)
        new.__cause__ = self
        return new

    def render(self) -> str:
        parts = [self.what.rstrip(".") + "."]
        if self.expected:
            parts.append(f"Expected {self.expected.rstrip('.')}.")
        if self.fix:
            parts.append(f"Fix: {self.fix.rstrip('.')}.")
        return " ".join(parts)


class UsageError(SegdeployError):
    """A bad option value or combination given by the user."""


class CheckpointError(SegdeployError):
    """A checkpoint that is missing, corrupt, foreign or of an unknown schema."""


class DataError(SegdeployError):
    """A dataset that cannot be found or read, or images/masks that do not match."""


class ModelError(SegdeployError):
    """An unknown architecture or a model configuration that cannot work."""


class ExportError(SegdeployError):
    """ONNX export failed or produced a graph that fails its checks."""


class ParityError(SegdeployError):
    """Two backends disagree beyond the allowed thresholds."""


class ArtifactError(SegdeployError):
    """An .onnx/.plan/.json artifact that is corrupt, truncated or incompatible."""


class OutputError(SegdeployError):
    """An output that cannot be written: a full disk, a read-only folder, another writer."""


class InputError(SegdeployError):
    """Inference input with the wrong shape, dtype, channel count, range or NaNs."""


class BuildError(SegdeployError):
    """A TensorRT engine build that failed or produced the wrong precision."""


class DeviceError(SegdeployError):
    """No GPU, or a CUDA call failed."""


class MissingDependencyError(SegdeployError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, *, extra: str | None = None, purpose: str = "",
                 fix: str | None = None):
        self.package = package
        self.extra = extra
        what = f"{package} is not installed"
        if purpose:
            what += f" (needed {purpose})"
        if fix is None:
            fix = (f"pip install 'segdeploy[{extra}]'" if extra else f"pip install {package}")
        super().__init__(what, fix=fix)


def require(module: str, *, extra: str | None = None, purpose: str = "",
            package: str | None = None):
    """Import an optional module or raise MissingDependencyError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised where the package is absent
        raise MissingDependencyError(package or module.split(".")[0], extra=extra,
                                     purpose=purpose) from exc


_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")


def first_line(exc: BaseException, *, join: bool = False, limit: int = 500,
               with_type: bool = False) -> str:
    """A library's exception as one line for our messages: its first line (or, with `join`,
    all its lines joined: ONNX Runtime says which dimension was wrong on the second), ONNX
    Runtime's "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT :" prefix and generic advice dropped."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Please fix either")]
    text = _ORT_PREFIX.sub("", "; ".join(lines) if join else (lines[0] if lines else ""))
    text = text or type(exc).__name__
    if with_type and text != type(exc).__name__:
        text = f"{type(exc).__name__}: {text}"
    return text[:limit]


Translation = Callable[[BaseException], "SegdeployError"]


@contextlib.contextmanager
def map_exceptions(mapping: Mapping[type[BaseException] | tuple[type[BaseException], ...],
                                    Translation]) -> Iterator[None]:
    """Translate a library's exceptions into ours at one boundary (as httpx's
    `map_exceptions`): the first matching entry wins, the original stays the `__cause__`,
    anything unmapped passes unchanged, and so do SegdeployErrors unless an entry names a
    SegdeployError type (a broad `Exception` entry never re-types our own errors)."""
    try:
        yield
    except BaseException as exc:
        for types, translate in mapping.items():
            kinds = types if isinstance(types, tuple) else (types,)
            if isinstance(exc, SegdeployError) and not any(
                    issubclass(k, SegdeployError) for k in kinds):
                continue
            if isinstance(exc, kinds):
                raise translate(exc) from exc
        raise
