"""torchvision-format VGG16 / ResNet-18 state dicts load onto our backbones by key mapping.

The files are built here with torchvision's exact key names and shapes (written out
independently of our modules); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional

from segdeploy.errors import CheckpointError, ModelError
from segdeploy.reference_models import get_model
from segdeploy.reference_models.torchvision_weights import (
    assign_backbone,
    convert_resnet18_state_dict,
    convert_vgg16_state_dict,
)
from segdeploy.reference_models.vgg import VGG16Trunk

VGG16_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def tv_vgg16_shapes(width: float = 1.0) -> dict[str, tuple[int, ...]]:
    """torchvision.models.vgg16().state_dict() shapes (width 1), scaled by `width`."""
    def c(n: int) -> int:
        return max(8, round(n * width))

    shapes: dict[str, tuple[int, ...]] = {}
    idx, c_in = 0, 3
    for item in VGG16_D:
        if item == "M":
            idx += 1
            continue
        shapes[f"features.{idx}.weight"] = (c(item), c_in, 3, 3)
        shapes[f"features.{idx}.bias"] = (c(item),)
        c_in, idx = c(item), idx + 2
    fc = c(4096)
    shapes.update({"classifier.0.weight": (fc, c(512) * 7 * 7), "classifier.0.bias": (fc,),
                   "classifier.3.weight": (fc, fc), "classifier.3.bias": (fc,),
                   "classifier.6.weight": (1000, fc), "classifier.6.bias": (1000,)})
    return shapes


def tv_resnet18_state_dict(*, with_counts: bool = True) -> dict[str, torch.Tensor]:
    """Random tensors with torchvision.models.resnet18().state_dict() keys and shapes."""
    g = torch.Generator().manual_seed(0)
    sd: dict[str, torch.Tensor] = {}

    def conv(name: str, shape: tuple[int, ...]) -> None:
        sd[f"{name}.weight"] = torch.randn(shape, generator=g) * 0.05

    def bn(name: str, n: int) -> None:
        sd[f"{name}.weight"] = torch.rand(n, generator=g) + 0.5
        sd[f"{name}.bias"] = torch.randn(n, generator=g) * 0.1
        sd[f"{name}.running_mean"] = torch.randn(n, generator=g) * 0.1
        sd[f"{name}.running_var"] = torch.rand(n, generator=g) + 0.5
        if with_counts:
            sd[f"{name}.num_batches_tracked"] = torch.tensor(1000)

    conv("conv1", (64, 3, 7, 7))
    bn("bn1", 64)
    c_in = 64
    for layer, c in enumerate((64, 128, 256, 512), start=1):
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            conv(f"{p}.conv1", (c, c_in if block == 0 else c, 3, 3))
            bn(f"{p}.bn1", c)
            conv(f"{p}.conv2", (c, c, 3, 3))
            bn(f"{p}.bn2", c)
            if block == 0 and layer > 1:
                conv(f"{p}.downsample.0", (c, c_in, 1, 1))
                bn(f"{p}.downsample.1", c)
        c_in = c
    sd["fc.weight"] = torch.randn(1000, 512, generator=g)
    sd["fc.bias"] = torch.randn(1000, generator=g)
    return sd


def test_vgg16_full_width_layout_matches_on_meta_device() -> None:
    """Exact torchvision shapes at width 1 (fc6 4096x25088) without allocating 0.5 GB."""
    tv = {k: torch.empty(s, device="meta") for k, s in tv_vgg16_shapes().items()}
    converted = convert_vgg16_state_dict(tv)
    with torch.device("meta"):
        trunk = VGG16Trunk(width=1.0)
    own = {k: tuple(v.shape) for k, v in trunk.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == own
    assert own["fc6.weight"] == (4096, 512, 7, 7) and own["fc7.weight"] == (4096, 4096, 1, 1)
    grey = convert_vgg16_state_dict(tv, in_channels=1)
    assert grey["features.0.weight"].shape == (64, 1, 3, 3)


def test_vgg16_mapping_keeps_the_linear_semantics(tmp_path: Path) -> None:
    width = 0.125
    g = torch.Generator().manual_seed(0)
    tv = {k: torch.randn(s, generator=g) * 0.05 for k, s in tv_vgg16_shapes(width).items()}
    model = get_model("fcn8s", num_classes=2, width=width)
    assign_backbone(model.backbone, convert_vgg16_state_dict(tv), source="test", arch="VGG16")
    trunk = model.backbone
    torch.testing.assert_close(trunk.features[28].weight, tv["features.28.weight"])
    # fc6 on a 7x7 pool5 map == torchvision's Linear on the flattened (C, H, W) map
    pool5 = torch.randn(2, trunk.fc6.in_channels, 7, 7, generator=g)
    linear = functional.linear(pool5.flatten(1), tv["classifier.0.weight"], tv["classifier.0.bias"])
    torch.testing.assert_close(trunk.fc6(pool5).flatten(1), linear, rtol=1e-4, atol=1e-5)
    v = torch.randn(2, trunk.fc7.in_channels, 1, 1, generator=g)
    torch.testing.assert_close(trunk.fc7(v).flatten(1), functional.linear(
        v.flatten(1), tv["classifier.3.weight"], tv["classifier.3.bias"]), rtol=1e-4, atol=1e-5)
    # a grey model sees the RGB kernels summed: same output as RGB on a replicated grey image
    grey = VGG16Trunk(width=width, in_channels=1).eval()
    rgb = VGG16Trunk(width=width).eval()
    assign_backbone(grey, convert_vgg16_state_dict(tv, in_channels=1), source="t", arch="VGG16")
    assign_backbone(rgb, convert_vgg16_state_dict(tv), source="t", arch="VGG16")
    x = torch.rand(1, 1, 40, 40, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(grey(x)["fc7"], rgb(x.expand(1, 3, 40, 40))["fc7"],
                                   rtol=1e-4, atol=1e-5)


def test_resnet18_full_width_loads_through_the_builder(tmp_path: Path) -> None:
    tv = tv_resnet18_state_dict()
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(tv, path)
    model = get_model("fcn_resnet18", num_classes=2, backbone_weights=str(path))
    assert "backbone_weights" not in model.meta["config"]  # rebuild needs no file
    own = model.backbone.state_dict()
    for key in ("conv1.weight", "layer3.0.downsample.0.weight", "layer4.1.bn2.running_var"):
        torch.testing.assert_close(own[key], tv[key])
    assert not any(k.startswith("fc.") for k in own)
    # older files without num_batches_tracked, and a grey model (RGB kernels summed)
    old = tmp_path / "resnet18-old.pth"
    torch.save(tv_resnet18_state_dict(with_counts=False), old)
    grey = get_model("fcn_resnet18", num_classes=3, in_channels=1, backbone_weights=str(old))
    torch.testing.assert_close(grey.backbone.conv1.weight, tv["conv1.weight"].sum(1, True))
    assert convert_resnet18_state_dict(tv).keys() == own.keys()


def test_weight_errors_are_clear(tmp_path: Path) -> None:
    tv = tv_resnet18_state_dict()
    path = tmp_path / "r.pth"
    torch.save(tv, path)
    with pytest.raises(ModelError, match="width=1.0"):
        get_model("fcn_resnet18", num_classes=2, width=0.5, backbone_weights=str(path))
    with pytest.raises(ModelError, match="width=1.0"):
        get_model("fcn8s", num_classes=2, width=0.5, backbone_weights=str(path))
    with pytest.raises(ModelError, match="in_channels"):
        get_model("fcn_resnet18", num_classes=2, in_channels=4, backbone_weights=str(path))
    del tv["layer2.0.downsample.0.weight"]
    tv["layer2.0.extra.weight"] = torch.zeros(1)
    torch.save(tv, path)
    with pytest.raises(ModelError) as info:
        get_model("fcn_resnet18", num_classes=2, backbone_weights=str(path))
    msg = str(info.value)
    assert "layer2.0.downsample.0.weight" in msg and "layer2.0.extra.weight" in msg
    with pytest.raises(CheckpointError, match="does not exist"):
        get_model("fcn_resnet18", num_classes=2, backbone_weights=str(tmp_path / "none.pth"))
    # a VGG file given to the ResNet: every key is named as unexpected/missing
    small = {k: torch.zeros(1) for k in tv_vgg16_shapes()}
    with pytest.raises(ModelError, match="looks like a VGG16 file"):
        assign_backbone(get_model("fcn_resnet18", num_classes=2, width=0.125).backbone,
                        convert_resnet18_state_dict(small), source="vgg.pth", arch="ResNet-18")
