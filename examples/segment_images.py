"""An application embedding segdeploy's runtime: no torch, only numpy + onnxruntime/TensorRT.

    python examples/segment_images.py MODEL.onnx|MODEL.plan IMAGE [IMAGE ...]

Loads the model once, segments each image (any PNG / JPEG / 8- or 16-bit TIFF, read as the
model was trained: EXIF orientation applied, wide pixels mapped by the model's intensity
mapping), prints per-class pixel fractions and the latency of each call. This is the whole
integration an edge app needs.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from segdeploy.imaging import load_image
from segdeploy.runtime import Segmenter


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    model, images = argv[0], argv[1:]
    with Segmenter.load(model) as seg:  # reads classes, mean/std, size rules, intensity
        for path in images:
            # the one decoder: EXIF orientation, 16-bit / float mapped as in training
            image = load_image(path, channels=seg.channels, intensity=seg.intensity)
            start = time.perf_counter()
            mask = seg.predict(image)  # HxW(x3) uint8 -> HxW class ids
            ms = (time.perf_counter() - start) * 1e3
            counts = np.bincount(mask.ravel(), minlength=seg.card.num_classes) / mask.size
            shares = ", ".join(f"{name} {share:.1%}"
                               for name, share in zip(seg.card.classes, counts, strict=False))
            print(f"{path}: {mask.shape[0]}x{mask.shape[1]} in {ms:.1f} ms: {shares}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
