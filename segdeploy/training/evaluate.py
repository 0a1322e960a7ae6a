"""Full-image evaluation of a torch model against a dataset split, into a ConfusionMatrix.

Images are evaluated one at a time at their full size. Inputs are padded by reflection to a
size the model accepts, and the logits are cropped back to the image, so every labelled pixel
is scored and models of any output mode compare on the same pixels:

- output_mode "same": pad bottom/right up to `min_size` and a multiple of `size_multiple`
  and, by default, of the output stride (stride-aligned inference: every image pools on the
  grid of the training crops; `segdeploy eval --no-pad-to-stride` keeps the smallest size).
- output_mode "valid" (unet_valid): pad by the U-Net margin on the top/left and enough on the
  bottom/right for the output to cover the whole image (the overlap-tile strategy of
  Ronneberger et al.). We do NOT score a centre crop of the mask: the padded result is what a
  deployment produces and is comparable with "same" models. Training pads its crops the same
  way, so a valid U-Net learns from every pixel of a crop even on small images (brain).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from segdeploy.errors import UsageError
from segdeploy.geometry import round_up
from segdeploy.imaging import normalize
from segdeploy.metrics import ConfusionMatrix


@dataclass(frozen=True)
class Geometry:
    """The input/output size rules of a model, from `model.meta` or a ModelCard."""

    output_mode: str = "same"
    size_multiple: int = 1
    min_size: int = 1
    depth: int = 4
    #: "same" models: inputs are also padded to a multiple of this (the output stride)
    stride: int = 1

    @classmethod
    def of(cls, meta: Any, *, pad_to_stride: bool = True) -> Geometry:
        """Accepts a `model.meta` dict or a ModelCard; `pad_to_stride=False` pads only to
        what the model requires (min_size, size_multiple)."""
        get = meta.get if isinstance(meta, dict) else (lambda k, d=None: getattr(meta, k, d))
        config = get("config", {}) or {}
        mode = get("output_mode", "same") or "same"
        stride = int(get("output_stride", 1) or 1) if pad_to_stride and mode == "same" else 1
        return cls(output_mode=mode,
                   size_multiple=int(get("size_multiple", 1) or 1),
                   min_size=int(get("min_size", 1) or 1),
                   depth=int(config.get("depth", 4)), stride=stride)

    def pads(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) padding so the output covers the image from index 0."""
        if self.output_mode == "valid":
            from segdeploy.geometry import unet_valid_input_size, unet_valid_margin

            m = unet_valid_margin(self.depth)
            hh, ww = unet_valid_input_size(h, self.depth), unet_valid_input_size(w, self.depth)
            return m, hh - h - m, m, ww - w - m

        m = math.lcm(max(self.size_multiple, 1), max(self.stride, 1))

        def grow(n: int) -> int:
            return round_up(max(n, self.min_size), m)

        return 0, grow(h) - h, 0, grow(w) - w

    def pad_image(self, image: np.ndarray) -> np.ndarray:
        """Reflection-pad an HxWxC image as `pads` says (a no-op when nothing is needed)."""
        top, bottom, left, right = self.pads(*image.shape[:2])
        if not (top or bottom or left or right):
            return image
        mode = "reflect" if min(image.shape[:2]) > 1 else "edge"
        return np.pad(image, ((top, bottom), (left, right), (0, 0)), mode=mode)

    def check_train_size(self, h: int, w: int) -> None:
        """A "same" model's training crop must itself be a size the model accepts ("valid"
        models get their crops reflection-padded, as in evaluation)."""
        if self.output_mode == "valid":
            return
        m = max(self.size_multiple, 1)
        if min(h, w) < self.min_size or h % m or w % m:
            raise UsageError(f"training crop {h}x{w} does not suit this model",
                             expected=f"sides >= {self.min_size} and multiples of "
                                      f"{self.size_multiple}",
                             fix="choose another --image-size")


def padded_input(image: np.ndarray, mean: Sequence[float], std: Sequence[float],
                 geometry: Geometry) -> torch.Tensor:
    """HxWxC uint8 -> 1xCxH'xW' float32, reflection-padded as `geometry` requires."""
    return torch.from_numpy(normalize(geometry.pad_image(image), mean, std)).unsqueeze(0)


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, image: np.ndarray, mean: Sequence[float],
                   std: Sequence[float], geometry: Geometry, device: torch.device) -> torch.Tensor:
    """1 x K x H x W logits covering the image exactly."""
    h, w = image.shape[:2]
    x = padded_input(image, mean, std, geometry).to(device)
    logits = model(x)
    if logits.shape[-2] < h or logits.shape[-1] < w:  # pragma: no cover - a broken model
        raise UsageError(f"model output {tuple(logits.shape[-2:])} is smaller than the image "
                         f"{h}x{w} after padding", fix="check the model's output_mode/min_size")
    return logits[..., :h, :w]


def evaluate(model: torch.nn.Module, dataset, indices: Iterable[int], *, num_classes: int,
             mean: Sequence[float], std: Sequence[float], geometry: Geometry,
             device: torch.device, loss_fn: torch.nn.Module | None = None,
             on_step=None, on_logits=None) -> tuple[ConfusionMatrix, float, int]:
    """Score `dataset[i]` for i in `indices`; returns (confusion matrix, loss sum, images).
    `on_logits(image, logits, mask)` sees each image's K x H x W float32 numpy logits
    (`segdeploy eval --crf` scores them again after the dense CRF)."""
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes)
    loss_sum, count = 0.0, 0
    try:
        for i in indices:
            image, mask = dataset[i]
            logits = predict_logits(model, image, mean, std, geometry, device)
            if loss_fn is not None:
                target = torch.from_numpy(mask.astype(np.int64)).unsqueeze(0).to(device)
                with torch.inference_mode():
                    loss = loss_fn(logits.float(), target)
                if torch.isfinite(loss):  # an all-ignore mask gives NaN cross-entropy
                    loss_sum += float(loss)
                    count += 1
            dtype = torch.uint8 if num_classes <= 255 else torch.int64
            pred = ((logits[:, 0] > 0) if logits.shape[1] == 1 else logits.argmax(1))[0].to(dtype)
            cm.update(pred.cpu().numpy(), mask)
            if on_logits is not None:
                on_logits(image, logits[0].float().cpu().numpy(), mask)
            if on_step is not None:
                on_step()
    finally:
        model.train(was_training)
    return cm, loss_sum, count

