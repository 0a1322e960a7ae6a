"""Hand-made models and data for the dense CRF tests (onnx.helper, no torch).

A folder of grey images with sharp-edged shapes (mask = the bright pixels) and two ONNX
"models" of it: `exact` thresholds the pixels (perfect probabilities: a CRF cannot help),
`coarse` does the same on a 8x average-pooled copy upsampled bilinearly (a stride-8 FCN's
blur: a CRF snaps it back to the edges)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from PIL import Image

from segdeploy.manifest import ExportInfo, ModelCard

STRIDE = 8


def shapes_image(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(H x W uint8 grey image, H x W mask): bright rectangles and a disc on dark, noisy."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(3):
        y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
        mask[y:y + rng.integers(16, 40), x:x + rng.integers(16, 40)] = 1
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx, r = rng.integers(16, h - 16), rng.integers(16, w - 16), rng.integers(10, 16)
    mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    image = np.where(mask == 1, 185, 70) + rng.integers(-20, 21, (h, w))
    return image.astype(np.uint8), mask


def make_folder(root: Path, n: int = 10, hw: tuple[int, int] = (96, 120)) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("background\nshape\n")
    for i in range(n):
        image, mask = shapes_image(*hw, seed=i)
        Image.fromarray(image).save(root / "images" / f"im{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"im{i:02d}.png")
    return root


def _const(name: str, value: list[float] | list[int], kind: int = TensorProto.FLOAT
           ) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(
        name + "_v", kind, [len(value)], value))


def write_model(path: Path, *, coarse: bool, gain: float = 12.0) -> Path:
    """An ONNX whose 2-channel logits are +-gain * (pixel/255 - 0.5): per pixel (exact) or
    on a stride-8 average, bilinearly upsampled (coarse). Card: grey, classes of the folder."""
    nodes = [_const("half", [0.5]), _const("gain", [gain])]
    src = "input"
    if coarse:
        nodes += [helper.make_node("AveragePool", ["input"], ["pooled"],
                                   kernel_shape=[STRIDE, STRIDE], strides=[STRIDE, STRIDE]),
                  _const("scales", [1.0, 1.0, float(STRIDE), float(STRIDE)]),
                  helper.make_node("Resize", ["pooled", "", "scales"], ["up"], mode="linear")]
        src = "up"
    nodes += [helper.make_node("Sub", [src, "half"], ["centred"]),
              helper.make_node("Mul", ["centred", "gain"], ["fg"]),
              helper.make_node("Neg", ["fg"], ["bg"]),
              helper.make_node("Concat", ["bg", "fg"], ["logits"], axis=1)]
    graph = helper.make_graph(
        nodes, "crf_toy",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 2, "h", "w"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    card = ModelCard(arch="coarse_toy" if coarse else "exact_toy", num_classes=2,
                     classes=["background", "shape"], in_channels=1, mean=[0.0], std=[1.0],
                     output_stride=STRIDE if coarse else 1,
                     size_multiple=STRIDE if coarse else 1, min_size=STRIDE,
                     channel_mode="grey", train_size=[96, 120])
    info = ExportInfo(card=card, opset=17)
    for key, value in info.to_metadata_props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def coarse_probs(mask: np.ndarray, k: int, stride: int) -> np.ndarray:
    """K x H x W: the one-hot truth averaged over stride x stride blocks and upsampled
    bilinearly (what a stride-`stride` FCN's upsampled softmax looks like), never certain."""
    h, w = mask.shape
    hp, wp = -(-h // stride) * stride, -(-w // stride) * stride
    onehot = np.stack([np.pad(mask == c, ((0, hp - h), (0, wp - w)), mode="edge")
                       for c in range(k)]).astype(np.float32)
    blocks = onehot.reshape(k, hp // stride, stride, wp // stride, stride).mean(axis=(2, 4))
    ys = (np.arange(h) + 0.5) / stride - 0.5
    xs = (np.arange(w) + 0.5) / stride - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, blocks.shape[1] - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, blocks.shape[2] - 1)
    y1 = np.minimum(y0 + 1, blocks.shape[1] - 1)
    x1 = np.minimum(x0 + 1, blocks.shape[2] - 1)
    fy = np.clip(ys - y0, 0, 1)[:, None]
    fx = np.clip(xs - x0, 0, 1)[None, :]
    up = (blocks[:, y0][:, :, x0] * (1 - fy) * (1 - fx) + blocks[:, y1][:, :, x0] * fy * (1 - fx)
          + blocks[:, y0][:, :, x1] * (1 - fy) * fx + blocks[:, y1][:, :, x1] * fy * fx)
    p = 0.1 / k + 0.9 * up
    return (p / p.sum(axis=0, keepdims=True)).astype(np.float32)
