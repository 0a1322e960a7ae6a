"""VGG16 trunk (Simonyan & Zisserman, configuration D) laid out like torchvision's VGG.

`features` keeps torchvision's module indices (conv layers at 0, 2, 5, ..., 28) so a
torchvision state dict maps onto it by name; the classifier becomes the convolutional
fc6 (7x7) and fc7 (1x1) of the FCN paper. Pooling uses ceil_mode like caffe's FCN.
"""

from __future__ import annotations

import torch
from torch import nn

from segdeploy.reference_models.registry import scaled

#: VGG16 ("D"): channels per conv, "M" = 2x2 max-pooling
VGG16_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                              512, 512, 512, "M", 512, 512, 512, "M"]
#: torchvision indices of the conv layers inside `features`
VGG16_CONV_INDICES: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
#: `features` slices ending after pool3, pool4, pool5
POOL3_END, POOL4_END, POOL5_END = 17, 24, 31


def make_vgg16_features(in_channels: int, width: float, first_padding: int) -> nn.Sequential:
    """Conv/ReLU/MaxPool stack with torchvision's indices; conv1_1 gets `first_padding`."""
    layers: list[nn.Module] = []
    c_in = in_channels
    for item in VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
            continue
        c_out = scaled(int(item), width)
        pad = first_padding if not layers else 1
        layers += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=pad), nn.ReLU(inplace=True)]
        c_in = c_out
    return nn.Sequential(*layers)


class VGG16Trunk(nn.Module):
    """VGG16 conv blocks plus fc6/fc7 as convolutions; returns pool3, pool4 and fc7."""

    def __init__(self, *, in_channels: int = 3, width: float = 1.0, first_padding: int = 100,
                 fc6_padding: int = 0, dropout: float = 0.5):
        super().__init__()
        self.features = make_vgg16_features(in_channels, width, first_padding)
        c5 = scaled(512, width)
        c_fc = scaled(4096, width)
        self.fc6 = nn.Conv2d(c5, c_fc, kernel_size=7, padding=fc6_padding)
        self.fc7 = nn.Conv2d(c_fc, c_fc, kernel_size=1)
        self.drop = nn.Dropout2d(dropout)
        self.channels = {"pool3": scaled(256, width), "pool4": c5, "fc7": c_fc}
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pool3 = self.features[:POOL3_END](x)
        pool4 = self.features[POOL3_END:POOL4_END](pool3)
        pool5 = self.features[POOL4_END:POOL5_END](pool4)
        fc6 = self.drop(torch.relu(self.fc6(pool5)))
        fc7 = self.drop(torch.relu(self.fc7(fc6)))
        return {"pool3": pool3, "pool4": pool4, "fc7": fc7}
