"""Training and evaluation (torch); the numpy-only metrics live in `segdeploy.metrics`.

This package imports no torch at import time (the CLI lists its commands without torch);
the torch parts load on first use:

    from segdeploy.training import TrainConfig, train
    result = train(TrainConfig("unet", "brain", width=0.25, epochs=20))
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":
        from segdeploy.training.config import TrainConfig

        return TrainConfig
    if name in ("train", "TrainResult"):
        from segdeploy.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'segdeploy.training' has no attribute {name!r}")
