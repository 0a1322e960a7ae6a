"""Tiny segmentation nets and ONNX files with segdeploy metadata, made with torch + onnx
(test fixtures only: the runtime itself uses neither)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="making test ONNX files needs torch")
onnx = pytest.importorskip("onnx", reason="making test ONNX files needs onnx")
nn = torch.nn
F = torch.nn.functional

MEAN3, STD3 = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class TinySegNet(nn.Module):
    """conv - pool - conv - upsample + skip - 1x1: any H, W; receptive field radius < 8."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3, valid: bool = False):
        super().__init__()
        pad = 0 if valid else 1
        self.valid = valid
        self.a = nn.Conv2d(in_channels, 8, 3, padding=pad)
        self.b = nn.Conv2d(8, 8, 3, padding=pad)
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x: Any) -> Any:
        y = F.relu(self.a(x))
        if self.valid:  # two valid 3x3 convs: output is input - 4, centred
            return self.head(F.relu(self.b(y)))
        z = F.relu(self.b(F.max_pool2d(y, 2)))
        z = F.interpolate(z, size=y.shape[-2:], mode="nearest")
        return self.head(y + z)


class InGraph(nn.Module):
    """uint8 NHWC/NCHW in, normalisation in-graph; optionally argmax `mask` out."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float], layout: str,
                 argmax: bool):
        super().__init__()
        self.net, self.layout, self.argmax = net, layout, argmax
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Any) -> Any:
        x = x.float()
        if self.layout == "NHWC":
            x = x.permute(0, 3, 1, 2)
        logits = self.net((x / 255.0 - self.mean) / self.std)
        if self.argmax:
            return logits, logits.argmax(dim=1).to(torch.int32)
        return logits


def torch_reference(net: nn.Module, image: np.ndarray, mean: list[float],
                    std: list[float]) -> np.ndarray:
    """K x H x W logits of one HxWxC uint8 image in PyTorch (no padding)."""
    x = (image.astype(np.float32) / 255.0 - np.float32(mean)) / np.float32(std)
    with torch.no_grad():
        return net(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()))[0].numpy()


def write_onnx(path: Path, net: nn.Module, *, in_channels: int = 3, num_classes: int = 3,
               uint8: bool = False, layout: str = "NCHW", argmax: bool = False,
               valid: bool = False, size_multiple: int = 1, min_size: int = 8,
               with_metadata: bool = True, static: bool = False, output_stride: int = 2,
               intensity_window: tuple[float, float] | None = None) -> Path:
    from segdeploy.manifest import ExportInfo, ModelCard

    mean = MEAN3[:in_channels] if in_channels == 3 else [0.5]
    std = STD3[:in_channels] if in_channels == 3 else [0.25]
    card = ModelCard(arch="tiny", num_classes=num_classes,
                     classes=[f"c{i}" for i in range(num_classes)], in_channels=in_channels,
                     mean=mean, std=std, output_stride=output_stride,
                     size_multiple=size_multiple,
                     min_size=min_size, output_mode="valid" if valid else "same",
                     channel_mode="rgb" if in_channels == 3 else "grey",
                     intensity={} if intensity_window is None else
                     {"kind": "window", "low": intensity_window[0],
                      "high": intensity_window[1]})
    names = ["logits", "mask"] if argmax else ["logits"]
    model: nn.Module = net
    if uint8:
        model = InGraph(net, mean, std, layout, argmax)
        shape = (2, 37, 41, in_channels) if layout == "NHWC" else (2, in_channels, 37, 41)
        x = torch.randint(0, 255, shape, dtype=torch.uint8)
    else:
        x = torch.randn(2, in_channels, 37, 41)
    hw = (1, 2) if (uint8 and layout == "NHWC") else (2, 3)
    dyn = {"input": {0: "batch", hw[0]: "height", hw[1]: "width"},
           "logits": {0: "batch", 2: "height", 3: "width"},
           "mask": {0: "batch", 1: "height", 2: "width"}}
    model.eval()
    with warnings.catch_warnings():  # the legacy exporter (opset 17) warns it is legacy
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=names,
                          dynamic_axes=None if static else {n: dyn[n] for n in ["input", *names]})
    if with_metadata:
        info = ExportInfo(card=card, output_names=names,
                          input_dtype="uint8" if uint8 else "float32",
                          preprocess_in_graph=uint8, argmax_in_graph=argmax,
                          input_layout=layout, opset=17)
        proto = onnx.load(str(path))
        for key, value in info.to_metadata_props().items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(path))
    return path


#: the three QDQ flavours: (activation type, weight type) names of onnxruntime.quantization
QDQ_FLAVOURS = {"U8S8": ("QUInt8", "QInt8"), "S8S8": ("QInt8", "QInt8"),
                "U8U8": ("QUInt8", "QUInt8")}


def quantize_qdq(src: Path, dst: Path, flavour: str, *, in_channels: int = 3) -> Path:
    """ONNX Runtime's quantize_static (QDQ, per channel) of a float32-input tiny model, in
    one of QDQ_FLAVOURS, calibrated on smooth random images; the metadata is kept."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    rng = np.random.default_rng(0)
    feeds = iter([{"input": rng.standard_normal((1, in_channels, 40, 48)).astype(np.float32)}
                  for _ in range(4)])

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(feeds, None)

    act, weight = QDQ_FLAVOURS[flavour]
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=getattr(QuantType, act),
                    weight_type=getattr(QuantType, weight))
    return dst
