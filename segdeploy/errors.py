"""One exception tree so the CLI can turn any expected failure into one clear line.

Every message says what was wrong, what was expected, and how to fix it.
"""

from __future__ import annotations


class SegdeployError(Exception):
    """Base of every error segdeploy raises on purpose (bad input, missing dependency...)."""

    def __init__(self, what: str, *, expected: str | None = None, fix: str | None = None):
        self.what = what
        self.expected = expected
        self.fix = fix
        super().__init__(self.render())

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
