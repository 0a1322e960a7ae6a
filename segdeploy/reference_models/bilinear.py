"""Transposed convolutions initialised to bilinear interpolation (Long et al., FCN, sec. 3.3).

The FCN paper upsamples with "deconvolution" layers whose filters start as bilinear
interpolation kernels (caffe's `bilinear` filler / surgery.interp); they stay learnable.
"""

from __future__ import annotations

import torch
from torch import nn


def bilinear_kernel(kernel_size: int) -> torch.Tensor:
    """The 2-D bilinear interpolation kernel (kernel_size x kernel_size) of caffe's FCN code."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float64)
    filt = 1 - torch.abs(og - center) / factor
    return (filt[:, None] * filt[None, :]).to(torch.float32)


def init_bilinear_(deconv: nn.ConvTranspose2d) -> nn.ConvTranspose2d:
    """Fill a ConvTranspose2d so each channel is upsampled on its own (weight[c, c] = kernel)."""
    in_ch, out_ch_per_group, kh, kw = deconv.weight.shape
    if kh != kw:
        raise ValueError(f"bilinear init needs a square kernel, got {kh}x{kw}")
    if deconv.groups != 1 or in_ch != out_ch_per_group:
        raise ValueError("bilinear init needs in_channels == out_channels and groups == 1")
    kernel = bilinear_kernel(kh)
    with torch.no_grad():
        deconv.weight.zero_()
        idx = torch.arange(in_ch)
        deconv.weight[idx, idx] = kernel
        if deconv.bias is not None:
            deconv.bias.zero_()
    return deconv


def bilinear_upsampler(channels: int, factor: int, *, kernel_size: int | None = None,
                       padding: int = 0) -> nn.ConvTranspose2d:
    """A learnable x`factor` upsampler without bias, kernel 2*factor as in the FCN paper."""
    k = kernel_size or 2 * factor
    deconv = nn.ConvTranspose2d(channels, channels, k, stride=factor, padding=padding, bias=False)
    return init_bilinear_(deconv)
