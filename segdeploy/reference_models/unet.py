"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015): padded ("same") and original ("valid").

Both: `depth` (4 in the paper) down steps of 2x2 max-pooling, channels 64 * 2**level at
width 1 (64..1024), two 3x3 convs per level, 2x2 stride-2 transposed up-convs, skips joined
by concatenation, 1x1 classifier. `batch_norm=True` adds BN after each conv (the paper has
none; BN trains faster from scratch, set False for the original).

- `unet`: padded convs, output = input size for any H, W >= 2**depth. The up-sampled map is
  resized to the skip's size with functional.interpolate(size=skip.shape[-2:]) (an identity when the
  sizes already match): unlike pad-then-crop this exports to ONNX with dynamic H/W.
- `unet_valid`: unpadded convs, skips centre-cropped at the constant offsets of
  segdeploy.geometry; output side = geometry.unet_valid_output_size(side), centred
  `unet_valid_margin(depth)` pixels in from the top-left (overlap-tile).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from segdeploy.errors import ModelError
from segdeploy.geometry import unet_valid_crop_offsets, unet_valid_min_input_size
from segdeploy.reference_models.registry import attach_meta, check_common, register_model, scaled


def _tracing() -> bool:
    """True under torch.export / dynamo / jit tracing, where Python shape checks must not run."""
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    return bool(torch.jit.is_tracing() or torch.compiler.is_compiling() or exporting())


class DoubleConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, *, padding: int, batch_norm: bool):
        layers: list[nn.Module] = []
        for c in (c_in, c_out):
            layers.append(nn.Conv2d(c, c_out, 3, padding=padding, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UNet(nn.Module):
    """Encoder-decoder with skips; `padding` 1 = same-size output, 0 = valid (original)."""

    def __init__(self, *, num_classes: int, width: float = 1.0, in_channels: int = 3,
                 depth: int = 4, batch_norm: bool = True, padding: int = 1):
        super().__init__()
        if not isinstance(depth, int) or depth < 1:
            raise ModelError(f"U-Net depth must be a positive integer, got {depth!r}",
                             expected="1 or more down steps (4 in the paper)")
        self.depth = depth
        self.valid = padding == 0
        chans = [scaled(64 * 2**i, width) for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_prev = in_channels
        for c in chans:
            self.down.append(DoubleConv(c_prev, c, padding=padding, batch_norm=batch_norm))
            c_prev = c
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for level in range(depth - 1, -1, -1):
            self.up.append(nn.ConvTranspose2d(chans[level + 1], chans[level], 2, stride=2))
            self.dec.append(DoubleConv(2 * chans[level], chans[level], padding=padding,
                                       batch_norm=batch_norm))
        self.head = nn.Conv2d(chans[0], num_classes, 1)
        self.crop_offsets = unet_valid_crop_offsets(depth) if self.valid else []
        self.min_size = unet_valid_min_input_size(depth) if self.valid else 2**depth
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _check_size(self, x: torch.Tensor) -> None:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if min(h, w) >= self.min_size:
            return
        kind = "valid U-Net" if self.valid else "U-Net"
        raise ModelError(f"input {h}x{w} is too small for a {kind} of depth {self.depth}",
                         expected=f"height and width >= {self.min_size}",
                         fix="pad or resize the image" + (
                             ", or use the padded 'unet'" if self.valid else ""))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _tracing():
            self._check_size(x)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for j, (up, dec) in enumerate(zip(self.up, self.dec, strict=True)):
            skip = skips.pop()
            y = up(x)
            if self.valid:
                o = self.crop_offsets[j]
                skip = skip[:, :, o:o + y.shape[2], o:o + y.shape[3]]
            else:
                y = functional.interpolate(y, size=skip.shape[-2:], mode="bilinear",
                                           align_corners=False)
            x = dec(torch.cat([skip, y], dim=1))
        return self.head(x)


def _config(num_classes: int, width: float, in_channels: int, depth: int,
            batch_norm: bool) -> dict:
    return {"num_classes": num_classes, "width": width, "in_channels": in_channels,
            "depth": depth, "batch_norm": batch_norm}


@register_model()
def unet(*, num_classes: int = 2, width: float = 1.0, in_channels: int = 3, depth: int = 4,
         batch_norm: bool = True) -> UNet:
    """U-Net with padded convs: logits have the input's H x W for any H, W >= 2**depth."""
    check_common(num_classes, in_channels)
    model = UNet(num_classes=num_classes, width=width, in_channels=in_channels, depth=depth,
                 batch_norm=batch_norm, padding=1)
    return attach_meta(model, arch="unet",
                       config=_config(num_classes, width, in_channels, depth, batch_norm),
                       output_stride=2**depth, min_size=model.min_size)


@register_model()
def unet_valid(*, num_classes: int = 2, width: float = 1.0, in_channels: int = 3,
               depth: int = 4, batch_norm: bool = True) -> UNet:
    """Original U-Net with unpadded convs: logits are unet_valid_output_size(H) x (W), centred."""
    check_common(num_classes, in_channels)
    model = UNet(num_classes=num_classes, width=width, in_channels=in_channels, depth=depth,
                 batch_norm=batch_norm, padding=0)
    return attach_meta(model, arch="unet_valid",
                       config=_config(num_classes, width, in_channels, depth, batch_norm),
                       output_stride=2**depth, min_size=model.min_size, output_mode="valid")
