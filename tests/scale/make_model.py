"""Make the Ray tests' inputs with the main venv (torch): `python -m tests.scale.make_model DIR`.

DIR/model.onnx: the runtime tests' tiny segmentation net (random weights: the tests compare
the Ray path with the plain one, not accuracy). DIR/images/: 400 PNGs of mixed sizes cut from
the real brain MRI slices (`brain` dataset), image 137 truncated (corrupt). The scale venv
has no torch, nilearn or nibabel, so it cannot make these itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

N_IMAGES, CORRUPT = 400, 137


def make(folder: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
    import torch
    from tiny_models import TinySegNet, write_onnx

    from segdeploy.data import get_dataset

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    write_onnx(folder / "model.onnx", TinySegNet(3, 3).eval())
    images = folder / "images"
    images.mkdir(exist_ok=True)
    ds = get_dataset("brain", split="train")
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        grey = ds[i % len(ds)][0][..., 0]
        h, w = int(rng.integers(48, 160)), int(rng.integers(48, 160))
        y, x = int(rng.integers(0, grey.shape[0] - h)), int(rng.integers(0, grey.shape[1] - w))
        crop = np.stack([grey[y:y + h, x:x + w]] * 3, axis=2)
        path = images / f"img{i:04d}.png"
        Image.fromarray(crop).save(path)
        if i == CORRUPT:
            path.write_bytes(path.read_bytes()[:60])  # a header and nothing else


if __name__ == "__main__":
    make(Path(sys.argv[1]))
