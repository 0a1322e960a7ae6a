"""Fixtures of the robustness suite (helpers and their rationale: robust_helpers.py)."""

from __future__ import annotations

import pytest
from robust_helpers import Artifacts, make_artifacts


@pytest.fixture(scope="session")
def art(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    return make_artifacts(tmp_path_factory.mktemp("robustness"))
