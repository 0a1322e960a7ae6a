"""segdeploy.runtime runs where torch and TensorRT are not installed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys

    class Block(importlib.abc.MetaPathFinder):
        '''Make torch and tensorrt look uninstalled: any import of them fails.'''
        attempts = []

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "tensorrt", "torchvision"):
                self.attempts.append(name)
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    import numpy as np
    from segdeploy.runtime import Segmenter

    seg = Segmenter.load(sys.argv[1], threads=1)
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    mask = seg.predict(image)
    tiled = seg.predict_tiled(image, tile=32, overlap=8)
    import segdeploy.imaging, segdeploy.volumes  # the decoder and NIfTI predict: no torch
    wide = seg.predict(image.astype(np.uint16) * 250)  # 16-bit: the card's mapping
    seg.close()
    print(json.dumps({
        "shape": list(mask.shape), "dtype": str(mask.dtype), "max": int(mask.max()),
        "tiled_shape": list(tiled.shape), "wide_shape": list(wide.shape),
        "loaded": sorted(m for m in sys.modules
                         if m.split(".")[0] in ("torch", "tensorrt", "torchvision")),
        "attempts": Block.attempts,
    }))
""")


def test_runtime_never_imports_torch(tiny_model, tmp_path):
    path, _ = tiny_model()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []  # "torch" not in sys.modules, nor tensorrt
    assert result["shape"] == [37, 53] and result["dtype"] == "uint8" and result["max"] < 3
    assert result["tiled_shape"] == [37, 53] == result["wide_shape"]
    # nothing on the ONNX Runtime path even tried to import them
    assert result["attempts"] == []
