"""Sample images for the FP16 activation ranges and the FP16 check, from `--data`.

A segdeploy checkpoint names its training data; a foreign model (TorchScript, `.pt2`) does
not, so the user passes `--data`: a built-in dataset (brain, nuclei; `--channels` says how
its grey images are fed), a dataset folder with masks, or a plain folder of images without
masks. An explicit `--data` that cannot be used is an error: silently switching to synthetic
images would make the FP16 ranges and check meaningless without saying so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segdeploy.errors import DataError, InputError
from segdeploy.imaging import IMAGE_SUFFIXES, load_image
from segdeploy.manifest import ModelCard


def sample_images(card: ModelCard, *, data: str | None, channels: str | None = None,
                  limit: int = 16) -> tuple[list[np.ndarray], str]:
    """(images fitted to the model, description) or ([], why none) when `data` is None and
    the card names no usable data. With an explicit `data`, failures raise DataError."""
    from segdeploy.export import parity

    if data is None:
        return parity.real_images(card, dataset=None, limit=limit)
    path = Path(data).expanduser()
    if data not in ("brain", "nuclei") and path.is_dir() and not _has_masks(path):
        images, desc = _folder_images(path, card, limit)
    else:
        mode = channels or _default_mode(data, card)
        fed = ModelCard.from_dict({**card.to_dict(), "channel_mode": mode})
        images, desc = parity.real_images(fed, dataset=data, limit=limit, fit=False)
        if not images:
            raise DataError(f"--data {data} cannot be used: {desc}",
                            expected="a built-in dataset (brain, nuclei), a dataset folder, "
                                     "or a folder of images",
                            fix="check the name or path, or drop --data for synthetic images")
    fitted = [f for f in (parity.fit_image(img, card) for img in images) if f is not None]
    if not fitted:
        raise DataError(f"--data {data}: every image is smaller than the model's minimum size "
                        f"{card.min_size}", fix="pass larger images")
    return fitted, desc


def _default_mode(data: str, card: ModelCard) -> str:
    if card.in_channels == 1:
        return "grey"
    return "grey3" if data in ("brain", "nuclei") else card.channel_mode


def _has_masks(path: Path) -> bool:
    return any((path / d).is_dir() for d in ("masks", "SegmentationClass"))


def _folder_images(path: Path, card: ModelCard, limit: int) -> tuple[list[np.ndarray], str]:
    """Evenly spaced images of a folder, read as predict reads them (the one decoder: float /
    multi-band GeoTIFFs included, mapped by the card's intensity mapping)."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"--data {path} holds no images",
                        expected=f"files ending in {', '.join(IMAGE_SUFFIXES)}",
                        fix="point --data at a folder of images or a dataset")
    picks = np.unique(np.linspace(0, len(files) - 1, num=min(limit, len(files)))
                      .round().astype(int))
    images = []
    for i in picks:
        try:
            images.append(load_image(files[int(i)], channels=card.in_channels,
                                     intensity=card.intensity_mapping()))
        except InputError as exc:
            raise exc.retyped(DataError, what=f"--data: {exc.what}",
                              fix="remove or replace the file") from None
    return images, f"{path.name}/ images x{len(images)} (no masks)"
