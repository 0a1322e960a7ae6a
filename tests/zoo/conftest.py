"""The zoo suite needs segmentation_models_pytorch and torchvision (`make test-zoo` builds a
separate venv with them); in the normal venv every test here is skipped saying so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = []
    for module in ("segmentation_models_pytorch", "torchvision"):
        try:
            __import__(module)
        except Exception as exc:  # torchvision raises RuntimeError with the CPU torch build
            missing.append(f"{module} ({type(exc).__name__})")
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"zoo tests need {', '.join(missing)}: run `make test-zoo`")
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(skip)
