"""Binary heads (one output channel) end to end, on a real binary model: a U-Net trained here
on the real nuclei image with --num-classes 1 (BCE on one logit), and the same network as
another exporter writes it (a plain torch.onnx.export, sigmoid in the graph, opset 12)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from cli_run import run_cli
from PIL import Image

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def binary_unet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segdeploy.training import TrainConfig, train

    out = tmp_path_factory.mktemp("binary") / "unet_nuclei_bin.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(TrainConfig(arch="unet", data="nuclei", width=0.125, batch_norm=True, epochs=2,
                          lr=3e-3, batch_size=8, image_size=(96, 96), seed=0, device="cpu",
                          num_classes=1, output=str(out), progress=False, verbose=False))
    finally:
        torch.set_num_threads(threads)
    return out


def _val_images(n: int = 3) -> list[np.ndarray]:
    from segdeploy.data import get_dataset

    ds = get_dataset("nuclei", "val")
    return [ds[i][0] for i in range(n)]


def _sigmoid_export(checkpoint: Path, path: Path) -> Path:
    """The checkpoint as another tool would ship it: no metadata, sigmoid out, opset 12."""
    from segdeploy.reference_models.checkpoint import load_model

    model, _ = load_model(checkpoint)

    class WithSigmoid(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.m(x))

    buf = io.BytesIO()
    torch.onnx.export(WithSigmoid().eval(), (torch.randn(1, 1, 64, 64),), buf, dynamo=False,
                      opset_version=12, input_names=["img"], output_names=["prob"],
                      dynamic_axes={"img": {0: "n", 2: "h", 3: "w"},
                                    "prob": {0: "n", 2: "h", 3: "w"}})
    path.write_bytes(buf.getvalue())
    return path


def test_binary_training_card_and_masks(binary_unet: Path, tmp_path: Path) -> None:
    from segdeploy.export import ExportOptions, run_export
    from segdeploy.reference_models.checkpoint import load_checkpoint
    from segdeploy.runtime import Segmenter

    card = load_checkpoint(binary_unet).card
    assert card.threshold == 0.0 and card.num_classes == 2 and card.output_channels == 1
    assert card.classes[0] == "background" and card.metrics["mean_iou"] > 0.5
    result = run_export(binary_unet, ExportOptions(output=str(tmp_path / "bin.onnx"), opset=17,
                                                   with_argmax=True))
    with Segmenter.load(result.onnx_path) as seg:
        assert seg.runner.output_specs()["logits"].shape[1] == 1
        for image in _val_images():
            mask = seg.predict(image)
            logits = seg.image_logits(image)
            assert logits.shape[0] == 1
            assert np.array_equal(mask, (logits[0] > 0).astype(np.uint8))
            assert 0.02 < mask.mean() < 0.9  # a real foreground, not all one class


def test_binary_cli_predict_verify_bench_quantize(binary_unet: Path, tmp_path: Path,
                                                  capsys) -> None:
    code, _, err = run_cli(["export", str(binary_unet), "-o", str(tmp_path / "b.onnx"),
                            "--opset", "17", "--no-progress"], capsys)
    assert code == 0, err
    onnx_path = tmp_path / "b.onnx"
    images = []
    for i, image in enumerate(_val_images(2)):
        images.append(tmp_path / f"img{i}.png")
        Image.fromarray(image[..., 0]).save(images[-1])
    code, _, err = run_cli(["predict", "--engine", str(onnx_path), *map(str, images), "-o",
                            str(tmp_path / "masks"), "--overlay"], capsys)
    assert code == 0, err
    assert set(np.unique(np.asarray(Image.open(tmp_path / "masks" / "img0.png")))) <= {0, 1}
    code, out, err = run_cli(["verify", str(binary_unet), "--engine",
                              str(tmp_path / "b.fp16.onnx"), "--max-images", "2",
                              "--sizes", "96x128", "--no-progress"], capsys)
    assert code == 0, out + err
    code, out, err = run_cli(["bench", "--engine", str(onnx_path), "-n", "2", "--warmup", "0",
                              "-b", "onnxruntime", "-b", "segmenter"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["quantize", str(onnx_path), "--data", "nuclei",
                              "--calibration-images", "6", "--val-images", "3"], capsys)
    assert code in (0, 1), err  # the gate may refuse; it must not crash
    assert "Collecting" not in out + err and "Number of tensors" not in out + err


def test_another_exporters_sigmoid_graph(binary_unet: Path, tmp_path: Path, capsys) -> None:
    import onnxruntime as ort

    from segdeploy.reference_models.checkpoint import load_checkpoint
    from segdeploy.runtime import Segmenter

    card = load_checkpoint(binary_unet).card
    plain = _sigmoid_export(binary_unet, tmp_path / "text_like.onnx")
    mean, std = str(card.mean[0]), str(card.std[0])
    code, out, err = run_cli(["card", str(plain), "--classes", "nucleus", "--mean", mean,
                              "--std", std, "--size-multiple", "16"], capsys)
    assert code == 0, err
    assert "'nucleus' where the output > 0.5 (a sigmoid output" in out
    session = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
    with Segmenter.load(plain) as seg:
        assert seg.classes == ["background", "nucleus"] and seg.card.threshold == 0.5
        for image in _val_images():
            mask = seg.predict(image)  # 128x128: a multiple of 16, fed as it is
            x = ((image.astype(np.float32) / 255 - card.mean[0]) / card.std[0])
            prob = session.run(None, {"img": x.transpose(2, 0, 1)[None]})[0]
            assert np.array_equal(mask, (prob[0, 0] > 0.5).astype(np.uint8))
    code, out, err = run_cli(["quantize", str(plain), "--data", "nuclei",
                              "--calibration-images", "6", "--val-images", "3"], capsys)
    assert code in (0, 1), err
    assert "opset 12 to 13" in out + err and "Unrecognized attribute" not in out + err


def test_binary_card_refusals(binary_unet: Path, tmp_path: Path, capsys) -> None:
    plain = _sigmoid_export(binary_unet, tmp_path / "m.onnx")
    code, _, err = run_cli(["card", str(plain), "--classes", "a,b,c", "--mean", "0.5",
                            "--std", "0.25"], capsys)
    assert code == 1 and "outputs 1 channel (a binary head)" in err
    from segdeploy.errors import UsageError
    from segdeploy.export.binary_head import head_classes

    with pytest.raises(UsageError, match="--threshold 0.3 but m.onnx outputs 3 channels"):
        head_classes(3, ["a", "b", "c"], 0.3, sigmoid=False, source="m.onnx")
    assert head_classes(1, None, None, sigmoid=False, source="m")[:2] == (
        ["background", "foreground"], 0.0)


def test_mixed_size_calibration_with_every_method(binary_unet: Path, tmp_path: Path) -> None:
    """Calibration images of three sizes: percentile and entropy used to crash
    ('inhomogeneous shape'); every method must calibrate."""
    from segdeploy.data import get_dataset
    from segdeploy.errors import ParityError
    from segdeploy.export import ExportOptions, run_export
    from segdeploy.export.quantize import QuantizeOptions, quantize_model

    onnx_path = run_export(binary_unet, ExportOptions(output=str(tmp_path / "m.onnx"),
                                                      opset=17)).onnx_path
    root = tmp_path / "mixed"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    ds = get_dataset("nuclei", "train")
    for i in range(12):
        image, mask = ds[i]
        h, w = ((128, 128), (112, 96), (96, 80))[i % 3]
        Image.fromarray(image[:h, :w, 0]).save(root / "images" / f"t{i:02d}.png")
        Image.fromarray(mask[:h, :w]).save(root / "masks" / f"t{i:02d}.png")
    for method in ("minmax", "percentile", "entropy"):
        opts = QuantizeOptions(data=str(root), output=tmp_path / f"m.{method}.onnx",
                               calibration=method, calibration_images=6, val_images=3,
                               allow_slower=True)  # a tiny model: speed is not the point
        try:
            result = quantize_model(onnx_path, opts)
        except ParityError:
            continue  # the gate may refuse a method; calibrating must not crash
        assert any("centre crops" in n for n in result.notes), result.notes
