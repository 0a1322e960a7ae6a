"""`segdeploy predict --backend openvino` gives ONNX Runtime's masks; `segdeploy verify
--backend openvino` judges the precision OpenVINO really computed in."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_run import run_cli
from PIL import Image

pytest.importorskip("openvino")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, out, err = run_cli(argv, capsys)
    return code, out + err


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_predict_openvino_matches_onnxruntime(tmp_path, tiny_model, capsys,
                                              precision: str) -> None:
    model, _ = tiny_model()
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, hw in enumerate([(45, 67), (70, 33)]):  # odd sizes: padding and cropping
        Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(
            folder / f"img{i}.png")
    masks = {}
    for backend in ("onnxruntime", "openvino"):
        out = tmp_path / backend
        argv = ["predict", "-e", str(model), str(folder), "-o", str(out), "--threads", "1",
                "--backend", backend]
        code, err = run(argv + (["--precision", precision] if backend == "openvino" else []),
                        capsys)
        assert code == 0, err
        masks[backend] = {p.name: np.asarray(Image.open(p)) for p in sorted(out.iterdir())}
    assert sorted(masks["openvino"]) == ["img0.png", "img1.png"]
    for name, ref in masks["onnxruntime"].items():
        got = masks["openvino"][name]
        assert got.shape == ref.shape and got.max() < 3
        # fp32 computes what ONNX Runtime computes up to float rounding; bf16 (auto on CPUs
        # with AMX / AVX-512 BF16) may flip pixels whose top two logits nearly tie
        assert (got == ref).mean() >= (0.999 if precision == "fp32" else 0.98)


def test_predict_rejects_precision_without_openvino(tmp_path, tiny_model, capsys) -> None:
    model, _ = tiny_model()
    src = tmp_path / "img.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(src)
    code, err = run(["predict", "-e", str(model), str(src), "-o", str(tmp_path / "m.png"),
                     "--precision", "bf16"], capsys)
    assert code == 1 and "OpenVINO only" in err
    assert not (tmp_path / "m.png").exists()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_verify_openvino_judges_the_precision_it_ran(brain_checkpoint, brain_onnx, tmp_path,
                                                     capsys, precision: str) -> None:
    from segdeploy.runtime.openvino_runner import OpenVINORunner

    with OpenVINORunner(brain_onnx[0], precision=precision, threads=1) as runner:
        computed = runner.inference_precision  # a CPU without bf16 falls back to fp32
    report = tmp_path / f"ov_{precision}.json"
    code, out = run(["verify", str(brain_checkpoint), "-e", str(brain_onnx[0]), "--backend",
                     "openvino", "--precision", precision, "--sizes", "97x131",
                     "--max-images", "2", "--threads", "1", "--no-progress",
                     "--json", str(report)], capsys)
    data = json.loads(report.read_text())
    assert data["backend"] == "openvino" and data["precision"] == "fp32"
    assert data["judged_as"] == computed
    expected = ({"min_agreement": 99.9, "max_miou_drop": None} if computed == "fp32"
                else {"min_agreement": 99.5, "max_miou_drop": 0.5})
    assert data["thresholds"] == expected
    size = data["sizes"][0]
    assert size["images"] == 2 and size["agreement"] >= expected["min_agreement"]
    assert code == 0 and data["passed"] is True, out
    if computed == "fp32":
        assert size["abs_error"]["max"] < 1e-3
    else:
        assert size["abs_error"]["max"] > 1e-4  # bf16 rounding is visible in the logits
