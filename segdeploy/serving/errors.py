"""Errors of the serving layer (still `SegdeployError`s: the CLI prints one line)."""

from __future__ import annotations

from segdeploy.errors import SegdeployError


class ServingError(SegdeployError):
    """A Triton server that cannot be reached, a model not ready, a timeout, a refused request."""


class ConfigSchemaError(SegdeployError):
    """A config.pbtxt segdeploy generated that Triton's own schema rejects: our bug."""
