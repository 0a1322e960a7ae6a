"""What the server tests serve, and the skip when the serving venv is not the one running."""

from __future__ import annotations

import importlib.util

import pytest

#: the Python models the server tests serve: name -> (artifact key, repository options)
SERVED = {"brain": ("fp32", {}),
          "brain_int8": ("int8", {"max_image_pixels": 250 * 250, "instances": 2}),
          "brain_ingraph": ("ingraph", {}),
          "nuclei_binary": ("binary", {})}


def need_triton() -> None:
    for module, why in (("tritonclient", "tritonclient"), ("pytriton", "nvidia-pytriton")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{why} is not installed here: the server tests run in the serving "
                        "venv (make test-serving)")
