"""Click choices read from the backend table (runtime/backends.py) when first needed.

`--help` and parsing read the table; importing a command module does not, so CLI start-up
stays free of numpy and a backend registered by a plugin appears in every command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click


class LazyChoice(click.Choice):
    """A click.Choice whose values come from `source()` each time they are read."""

    def __init__(self, source: Callable[[], Sequence[str]]) -> None:
        self._source = source
        super().__init__((), case_sensitive=False)

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._source())

    @choices.setter
    def choices(self, value: Any) -> None:  # click.Choice.__init__ assigns it
        pass


def _runtime_backends() -> tuple[str, ...]:
    from segdeploy.runtime.backends import backend_names

    return backend_names()


def _runtime_backends_and_auto() -> tuple[str, ...]:
    from segdeploy.runtime.auto_backend import AUTO

    return (AUTO, *_runtime_backends())


def _bench_backends() -> tuple[str, ...]:
    from segdeploy.bench.harness import bench_backend_names

    return bench_backend_names()


def _openvino_precisions() -> tuple[str, ...]:
    from segdeploy.runtime.backends import get_backend

    return get_backend("openvino").precisions


def backend_choice(*, auto: bool = True) -> LazyChoice:
    """`--backend` of predict and verify: "auto" (runtime/auto_backend.py) and every row of
    the runtime's table; auto=False: the rows only (triton serves one named backend)."""
    return LazyChoice(_runtime_backends_and_auto if auto else _runtime_backends)


def bench_backend_choice() -> LazyChoice:
    """`bench --backend`: the table plus the PyTorch baseline and Segmenter end to end."""
    return LazyChoice(_bench_backends)


def openvino_precision_choice() -> LazyChoice:
    return LazyChoice(_openvino_precisions)
