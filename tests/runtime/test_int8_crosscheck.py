"""An INT8 file on OpenVINO is checked against ONNX Runtime at load: a wrong run is refused
in one line, never written as masks (OpenVINO mis-ran the brain U-Net's QDQ file before)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_run import run_cli
from PIL import Image

from segdeploy.errors import ArtifactError
from segdeploy.manifest import ModelCard
from segdeploy.runtime.int8_crosscheck import crosscheck, probe_images


class MasksSegmenterDouble:
    """A test double of Segmenter for the check's own logic: fixed masks per image."""

    def __init__(self, flip: bool) -> None:
        self.card = ModelCard(arch="t", num_classes=2, classes=["a", "b"], in_channels=1,
                              mean=[0.5], std=[0.25], train_size=[40, 56])
        self.channels, self.flip = 1, flip

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [((im[..., 0] > 127) ^ self.flip).astype(np.uint8) for im in images]

    def __enter__(self) -> MasksSegmenterDouble:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_the_check_refuses_a_wrong_run_and_passes_a_right_one() -> None:
    right, wrong = MasksSegmenterDouble(False), MasksSegmenterDouble(True)
    assert crosscheck(right, lambda: MasksSegmenterDouble(False), "OpenVINO") == 1.0
    with pytest.raises(ArtifactError, match=r"OpenVINO runs this INT8 graph wrongly here: .* "
                                            r"0\.0% .*--backend onnxruntime"):
        crosscheck(wrong, lambda: MasksSegmenterDouble(False), "OpenVINO")
    images = probe_images(40, 56, 3)
    assert images[0].shape == (40, 56, 3) and images[0].dtype == np.uint8
    assert 20 < images[0].std() < 128  # content, not a flat image


def _qdq_copy(src: Path, dst: Path) -> Path:
    """ONNX Runtime's quantize_static of our export (U8S8, the flavour OpenVINO is let run;
    S8S8 / U8U8 are refused before it: test_qdq_flavours.py), no gate: its label says fp32."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from segdeploy.data import get_dataset
    from segdeploy.imaging import normalize
    from segdeploy.onnx_metadata import read_onnx_export_info

    card = read_onnx_export_info(src).card
    ds = get_dataset("brain", "train", channel_mode=card.channel_mode)
    feeds = iter([{"input": normalize(ds[i][0], card.mean, card.std)[None]}
                  for i in range(0, len(ds), max(1, len(ds) // 6))])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(dst)).graph.node)
    return dst


def test_openvino_never_writes_masks_of_a_wrong_int8_run(brain_onnx, tmp_path: Path,
                                                         capsys) -> None:
    pytest.importorskip("openvino")
    from segdeploy.data import get_dataset
    from segdeploy.runtime import Segmenter

    qdq = _qdq_copy(brain_onnx[0], tmp_path / "unet.int8.onnx")
    image = get_dataset("brain", "val")[3][0]
    Image.fromarray(image[..., 0]).save(tmp_path / "slice.png")
    with Segmenter.load(qdq) as ort_seg:
        expected = ort_seg.predict(image)
    try:
        seg = Segmenter.load(qdq, backend="openvino", threads=1)
    except ArtifactError as exc:  # this CPU's OpenVINO mis-runs or cannot run it: refused
        reason = "wrongly" if "wrongly" in str(exc) else "cannot compile"
        assert reason in str(exc) and "--backend onnxruntime" in str(exc)
        code, _, err = run_cli(["predict", "--engine", str(qdq), "--backend", "openvino",
                                str(tmp_path / "slice.png"), "-o", str(tmp_path / "m.png")],
                               capsys)
        assert code == 1 and reason in err and "Traceback" not in err
        assert not (tmp_path / "m.png").exists()
        return
    with seg:  # it runs right here: the check measured it, and the masks agree
        assert seg.int8_agreement is not None and seg.int8_agreement >= 0.95
        assert np.mean(seg.predict(image) == expected) >= 0.95
