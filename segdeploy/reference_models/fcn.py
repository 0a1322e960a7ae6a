"""Fully convolutional networks (Long, Shelhamer & Darrell, CVPR 2015 / TPAMI 2016).

FCN-32s/16s/8s follow the reference caffe nets (voc-fcn*s/net.py): VGG16 with conv1_1
padded by 100 and caffe (ceil) pooling, fc6/fc7 as 7x7/1x1 convs with ReLU + dropout,
1x1 score layers, skips fused by SUM after cropping at the paper's fixed offsets
(pool4: 5, pool3: 9), bias-free transposed convolutions initialised to bilinear
(upscore2 k4 s2, upscore8 k16 s8, upscore16 k32 s16, upscore k64 s32) and a final crop at
offset 31/27/19 whose size is taken from the input. This pad-then-fixed-offset-crop works
for ANY input size >= 1 pixel and exports to ONNX with dynamic H/W with both the dynamo
and the legacy (opset 17) exporter: every crop is a slice with a constant start.

`paper_padding=False` is a compact variant (no pad 100; see FCNVGG16) for cheaper inference.

Deviation from the paper: score layers keep PyTorch's default init instead of zeros, so
untrained models give non-trivial logits (export parity tests need them).
`at_once=True` scales pool4 by 0.01 and pool3 by 0.0001 as in the paper's "at-once" FCN-8s.
"""

from __future__ import annotations

import torch
from torch import nn

from segdeploy.reference_models.bilinear import bilinear_upsampler
from segdeploy.reference_models.registry import (
    attach_meta,
    check_common,
    register_model,
    require_full_width,
)
from segdeploy.reference_models.resnet import ResNet18Trunk
from segdeploy.reference_models.vgg import VGG16Trunk

#: offsets of the caffe reference nets: skip crops and final crop per variant
POOL4_OFFSET, POOL3_OFFSET = 5, 9
FINAL_OFFSET = {32: 19, 16: 27, 8: 31}


def _score(c_in: int, num_classes: int) -> nn.Conv2d:
    """1x1 classifier; PyTorch's default weight init (the paper zero-initialises it)."""
    conv = nn.Conv2d(c_in, num_classes, kernel_size=1)
    nn.init.zeros_(conv.bias)
    return conv


def _crop_like(x: torch.Tensor, offset: int, ref: torch.Tensor) -> torch.Tensor:
    """x[..., offset:offset+h, offset:offset+w] with h, w of `ref` (caffe's Crop layer)."""
    return x[:, :, offset:offset + ref.shape[2], offset:offset + ref.shape[3]]


class FCNVGG16(nn.Module):
    """FCN-32s, -16s or -8s on VGG16 (`stride` 32, 16 or 8 = finest fused skip).

    paper_padding=True: the caffe nets (conv1_1 pad 100, fixed-offset crops).
    paper_padding=False ("compact"): conv1_1 pad 1, fc6 pad 3, deconvs padded by f/2, so
    every map sits on its stride grid (stride-s cell i centred at s*i + (s-1)/2) and the
    crops all start at 0; same layers and weights, about 2-4x fewer FLOPs on small images.
    """

    def __init__(self, *, stride: int, num_classes: int, width: float = 1.0,
                 in_channels: int = 3, at_once: bool = False, dropout: float = 0.5,
                 paper_padding: bool = True):
        super().__init__()
        if stride not in FINAL_OFFSET:
            raise ValueError(f"FCN stride must be 32, 16 or 8, got {stride}")
        self.stride = stride
        self.paper = paper_padding
        self.backbone = VGG16Trunk(in_channels=in_channels, width=width,
                                   first_padding=100 if paper_padding else 1,
                                   fc6_padding=0 if paper_padding else 3, dropout=dropout)
        ch = self.backbone.channels
        self.score_fr = _score(ch["fc7"], num_classes)
        self.pool4_scale = 0.01 if at_once else 1.0
        self.pool3_scale = 0.0001 if at_once else 1.0

        def up(factor: int) -> nn.ConvTranspose2d:
            return bilinear_upsampler(num_classes, factor,
                                      padding=0 if paper_padding else factor // 2)

        if stride == 32:
            self.upscore = up(32)
        else:
            self.upscore2 = up(2)
            self.score_pool4 = _score(ch["pool4"], num_classes)
        if stride == 16:
            self.upscore16 = up(16)
        if stride == 8:
            self.score_pool3 = _score(ch["pool3"], num_classes)
            self.upscore_pool4 = up(2)
            self.upscore8 = up(8)

    def _fuse(self, up: torch.Tensor, skip: torch.Tensor, offset: int) -> torch.Tensor:
        """Sum an upsampled score map and a skip score map over their common window."""
        if self.paper:  # the skip is larger: caffe crops it at the fixed offset
            return up + _crop_like(skip, offset, up)
        return _crop_like(up, 0, skip) + skip  # 2*ceil(H/2s) >= ceil(H/s): trim the up map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        score = self.score_fr(feats["fc7"])
        if self.stride == 32:
            up = self.upscore(score)
        else:
            pool4 = self.score_pool4(feats["pool4"] * self.pool4_scale)
            fuse4 = self._fuse(self.upscore2(score), pool4, POOL4_OFFSET)
            if self.stride == 16:
                up = self.upscore16(fuse4)
            else:
                pool3 = self.score_pool3(feats["pool3"] * self.pool3_scale)
                fuse3 = self._fuse(self.upscore_pool4(fuse4), pool3, POOL3_OFFSET)
                up = self.upscore8(fuse3)
        return _crop_like(up, FINAL_OFFSET[self.stride] if self.paper else 0, x)


def _build_fcn_vgg(arch: str, stride: int, num_classes: int, width: float, in_channels: int,
                   backbone_weights: str | None, at_once: bool, dropout: float,
                   paper_padding: bool) -> FCNVGG16:
    check_common(num_classes, in_channels)
    if backbone_weights is not None:  # before allocating a full-width fc6 for nothing
        require_full_width(width, "VGG16")
    model = FCNVGG16(stride=stride, num_classes=num_classes, width=width,
                     in_channels=in_channels, at_once=at_once, dropout=dropout,
                     paper_padding=paper_padding)
    if backbone_weights is not None:
        from segdeploy.reference_models.torchvision_weights import load_vgg16_backbone

        load_vgg16_backbone(model.backbone, backbone_weights, width=width)
    config = {"num_classes": num_classes, "width": width, "in_channels": in_channels,
              "at_once": at_once, "dropout": dropout, "paper_padding": paper_padding}
    return attach_meta(model, arch=arch, config=config, output_stride=32, min_size=1)


@register_model()
def fcn32s(*, num_classes: int = 21, width: float = 1.0, in_channels: int = 3,
           backbone_weights: str | None = None, at_once: bool = False,
           dropout: float = 0.5, paper_padding: bool = True) -> FCNVGG16:
    """FCN-32s: VGG16, one x32 bilinear-initialised transposed conv."""
    return _build_fcn_vgg("fcn32s", 32, num_classes, width, in_channels, backbone_weights,
                          at_once, dropout, paper_padding)


@register_model()
def fcn16s(*, num_classes: int = 21, width: float = 1.0, in_channels: int = 3,
           backbone_weights: str | None = None, at_once: bool = False,
           dropout: float = 0.5, paper_padding: bool = True) -> FCNVGG16:
    """FCN-16s: FCN-32s plus the pool4 skip (sum), x2 then x16 upsampling."""
    return _build_fcn_vgg("fcn16s", 16, num_classes, width, in_channels, backbone_weights,
                          at_once, dropout, paper_padding)


@register_model()
def fcn8s(*, num_classes: int = 21, width: float = 1.0, in_channels: int = 3,
          backbone_weights: str | None = None, at_once: bool = False,
          dropout: float = 0.5, paper_padding: bool = True) -> FCNVGG16:
    """FCN-8s: FCN-16s plus the pool3 skip (sum), x2, x2 then x8 upsampling."""
    return _build_fcn_vgg("fcn8s", 8, num_classes, width, in_channels, backbone_weights,
                          at_once, dropout, paper_padding)


class FCNResNet18(nn.Module):
    """ResNet-18 trunk, 1x1 score conv, one x32 bilinear-initialised transposed conv.

    The trunk maps H to ceil(H/32); ConvTranspose2d(k=64, s=32, p=16) maps that to
    32*ceil(H/32) >= H, and the top-left H x W is kept (a slice: exports for any size).
    """

    def __init__(self, *, num_classes: int, width: float = 1.0, in_channels: int = 3):
        super().__init__()
        self.backbone = ResNet18Trunk(in_channels=in_channels, width=width)
        self.score = _score(self.backbone.out_channels, num_classes)
        self.upscore = bilinear_upsampler(num_classes, 32, padding=16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.upscore(self.score(self.backbone(x)))
        return _crop_like(up, 0, x)


@register_model()
def fcn_resnet18(*, num_classes: int = 21, width: float = 1.0, in_channels: int = 3,
                 backbone_weights: str | None = None) -> FCNResNet18:
    """FCN head on ResNet-18 (BasicBlocks + BN, no avgpool/fc)."""
    check_common(num_classes, in_channels)
    if backbone_weights is not None:
        require_full_width(width, "ResNet-18")
    model = FCNResNet18(num_classes=num_classes, width=width, in_channels=in_channels)
    if backbone_weights is not None:
        from segdeploy.reference_models.torchvision_weights import load_resnet18_backbone

        load_resnet18_backbone(model.backbone, backbone_weights, width=width)
    config = {"num_classes": num_classes, "width": width, "in_channels": in_channels}
    return attach_meta(model, arch="fcn_resnet18", config=config, output_stride=32,
                       min_size=1)
