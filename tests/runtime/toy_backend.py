"""A toy backend for the backend-table test: one module (this Runner) plus one table row.

It runs a fixed numpy "model" (class 1 where the first channel is above its mean), so the
test can check that Segmenter.load, the bench and the CLI pick a new row up with no other
edit. It reads the card from the ONNX file it is given, as a real ONNX backend would.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.onnx_metadata import read_metadata_props, read_onnx_export_info
from segdeploy.runtime.runner import Runner, TensorSpec


class ToyThresholdRunner(Runner):
    name = "toy"

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.threads = threads
        self.info = read_onnx_export_info(self.path)

    def _activate(self) -> None:
        pass

    def _deactivate(self) -> None:
        pass

    def metadata(self) -> dict[str, str]:
        return read_metadata_props(self.path)

    def _input_specs(self) -> dict[str, TensorSpec]:
        c = self.info.card.in_channels
        return {self.info.input_name: TensorSpec(self.info.input_name, np.dtype(np.float32),
                                                 (None, c, None, None))}

    def _output_specs(self) -> dict[str, TensorSpec]:
        k = self.info.card.num_classes
        name = self.info.output_names[0]
        return {name: TensorSpec(name, np.dtype(np.float32), (None, k, None, None))}

    def _infer(self, feeds: Mapping[str, Any], output_names: list[str]) -> dict[str, np.ndarray]:
        x = next(iter(feeds.values()))
        k = self.info.card.num_classes
        fg = x[:, :1] > x[:, :1].mean()
        logits = np.zeros((x.shape[0], k, *x.shape[2:]), np.float32)
        logits[:, 1:2] = fg
        return {output_names[0]: logits}
