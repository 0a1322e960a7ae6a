"""Third-party models with random weights (nothing downloads): segmentation_models_pytorch
and torchvision, the smallest encoders each architecture supports so CI stays quick."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

NUM_CLASSES = 3


@dataclass(frozen=True)
class ZooModel:
    name: str
    build: Callable[[], torch.nn.Module]
    #: export options beyond the defaults (size_multiple is found by the probe otherwise)
    options: dict = field(default_factory=dict)
    #: what BENCHMARKS.md says about the encoder choice
    encoder: str = ""


def _smp(arch: str, encoder: str, **kw) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        import segmentation_models_pytorch as smp

        torch.manual_seed(0)
        return getattr(smp, arch)(encoder_name=encoder, encoder_weights=None,
                                  classes=NUM_CLASSES, **kw).eval()
    return build


def _tv(name: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        from torchvision.models import segmentation as seg

        torch.manual_seed(0)
        kw = {"aux_loss": False} if name != "lraspp_mobilenet_v3_large" else {}
        return getattr(seg, name)(weights=None, weights_backbone=None,
                                  num_classes=NUM_CLASSES, **kw).eval()
    return build


SMP = [
    ZooModel("smp_Unet", _smp("Unet", "resnet18"), encoder="resnet18"),
    ZooModel("smp_UnetPlusPlus", _smp("UnetPlusPlus", "resnet18"), encoder="resnet18"),
    ZooModel("smp_FPN", _smp("FPN", "resnet18"), encoder="resnet18"),
    ZooModel("smp_DeepLabV3Plus", _smp("DeepLabV3Plus", "resnet18"), encoder="resnet18"),
    ZooModel("smp_Linknet", _smp("Linknet", "resnet18"), encoder="resnet18"),
    ZooModel("smp_MAnet", _smp("MAnet", "resnet18"), encoder="resnet18"),
    ZooModel("smp_PSPNet", _smp("PSPNet", "resnet18"), {"static_size": (240, 336)},
             encoder="resnet18"),
    ZooModel("smp_UPerNet", _smp("UPerNet", "resnet18"), {"static_size": (192, 384)},
             encoder="resnet18"),
    # smp's default dynamic_img_size=True resamples the position embedding with antialiased
    # bicubic interpolation, which no ONNX exporter translates: a fixed-size ViT instead
    ZooModel("smp_DPT", _smp("DPT", "tu-test_vit", dynamic_img_size=False),
             {"static_size": (160, 160)}, encoder="tu-test_vit (timm's smallest ViT, 160x160)"),
    # eager Segformer refuses H, W not divisible by 32, but a trace drops that check and runs
    # (differently) at multiples of 4: the user says what the model needs
    ZooModel("smp_Segformer", _smp("Segformer", "mit_b0"), {"size_multiple": 32},
             encoder="mit_b0"),
]

TORCHVISION = [
    ZooModel("tv_fcn_resnet50", _tv("fcn_resnet50"), encoder="resnet50"),
    ZooModel("tv_deeplabv3_mobilenet_v3_large", _tv("deeplabv3_mobilenet_v3_large"),
             encoder="mobilenet_v3_large"),
    ZooModel("tv_lraspp_mobilenet_v3_large", _tv("lraspp_mobilenet_v3_large"),
             encoder="mobilenet_v3_large"),
]

ALL = SMP + TORCHVISION
