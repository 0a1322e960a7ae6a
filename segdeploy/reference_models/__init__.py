"""PyTorch reference models: FCN-32s/16s/8s (VGG16), FCN on ResNet-18, U-Net (same / valid).

    from segdeploy.reference_models import get_model, list_models
    model = get_model("fcn8s", num_classes=3, width=0.25)
    model.meta  # arch, config (rebuild with get_model(arch, **config)), stride, min_size ...
"""

from __future__ import annotations

from segdeploy.reference_models import fcn, unet  # noqa: F401  (registers the builders)
from segdeploy.reference_models.registry import (
    BUILTIN_MODELS,
    get_model,
    get_model_builder,
    list_models,
    register_model,
)

__all__ = ["BUILTIN_MODELS", "get_model", "get_model_builder", "list_models", "register_model"]
