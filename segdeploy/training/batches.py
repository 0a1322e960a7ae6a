"""Torch views of a SegmentationDataset: random crops for training, full images for validation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from segdeploy.errors import DataError
from segdeploy.imaging import normalize
from segdeploy.training.evaluate import Geometry


class TrainCrops(Dataset):
    """Augmented training samples (data.transforms.TrainTransform: random scale, crop, flips),
    normalised with the dataset's mean/std. For output_mode "valid" models the image is
    reflection-padded (Geometry.pad_image) so the logits cover the whole mask from (0, 0);
    the loop crops logits larger than the mask.

    Randomness comes from `sample_rng(seed, epoch, index)`: the same for any number of
    workers or ranks, and repeated exactly by --resume. Set `.epoch` before each epoch (the
    DataLoader must not keep persistent workers, which would hold a stale copy).
    """

    def __init__(self, dataset, indices: Sequence[int], size: tuple[int, int] | None,
                 mean: Sequence[float], std: Sequence[float], *,
                 geometry: Geometry | None = None, seed: int = 0, hflip: bool = True,
                 vflip: bool = False, scale: tuple[float, float] | None = None):
        from segdeploy.data.transforms import TrainTransform

        self.dataset = dataset
        self.indices = list(indices)
        if scale is None:  # crops: random scale 0.75-1.25; whole images: none
            scale = (0.75, 1.25) if size is not None else (1.0, 1.0)
        self.transform = TrainTransform(size, scale=tuple(scale), hflip=hflip, vflip=vflip)
        self.mean, self.std = list(mean), list(std)
        self.geometry = geometry if geometry is not None and geometry.output_mode == "valid" \
            else None
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from segdeploy.data.transforms import sample_rng

        index = self.indices[i]
        image, mask = self.dataset[index]
        rng = sample_rng(self.seed, self.epoch, index)
        image, mask = self.transform(image, mask, rng)
        if self.geometry is not None:
            image = self.geometry.pad_image(np.ascontiguousarray(image))
        x = torch.from_numpy(normalize(np.ascontiguousarray(image), self.mean, self.std))
        y = torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))
        return x, y


def check_same_size(dataset, indices: Sequence[int]) -> None:
    """Full-image training batches need one image size; say how to fix it when they differ."""
    sizes = {dataset[i][1].shape for i in indices[:64]}
    if len(sizes) > 1:
        raise DataError(f"training images have different sizes {sorted(sizes)[:4]}",
                        expected="one size when --image-size is 'full'",
                        fix="pass --image-size 192 (random crops) or --batch-size 1")
