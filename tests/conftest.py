"""Markers for hardware: tests marked `gpu` or `tensorrt` skip with a reason where absent."""

from __future__ import annotations

import importlib.util
import shutil

import pytest


def _has_gpu() -> tuple[bool, str]:
    try:
        import torch

        if torch.cuda.is_available():
            return True, ""
    except ImportError:
        pass
    if shutil.which("nvidia-smi") is None:
        return False, "no NVIDIA GPU on this machine (nvidia-smi not found)"
    return False, "no CUDA device visible to torch"


def _has_tensorrt() -> tuple[bool, str]:
    if importlib.util.find_spec("tensorrt") is None:
        return False, "TensorRT is not installed (pip install 'segdeploy[tensorrt]')"
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # the bindings exist but the libraries do not load
        return False, f"TensorRT does not import here: {exc}"
    return True, ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_ok, gpu_why = _has_gpu()
    trt_ok, trt_why = _has_tensorrt()
    for item in items:
        if "gpu" in item.keywords and not gpu_ok:
            item.add_marker(pytest.mark.skip(reason=gpu_why))
        if "tensorrt" in item.keywords and not trt_ok:
            item.add_marker(pytest.mark.skip(reason=trt_why))


#: settings of the shared `brain_checkpoint`: about 20 s on one CPU core, val mIoU ~0.88
BRAIN_CHECKPOINT_SETTINGS = dict(arch="unet", data="brain", width=0.125, batch_norm=True,
                                 epochs=4, lr=3e-3, batch_size=8, image_size=(128, 128),
                                 seed=0, device="cpu")


@pytest.fixture(scope="session")
def brain_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """A small U-Net (width 0.125, batch norm) trained on `brain` once per session.

    Returns the best checkpoint's Path (val mIoU ~0.88, so argmax masks are meaningful for
    parity tests); `<stem>.last.pt` sits beside it. Trained through the Python API, on CPU.
    """
    import torch

    from segdeploy.training import TrainConfig, train

    out = tmp_path_factory.mktemp("brain_checkpoint") / "unet_brain.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy 2-core CI box one thread beats two contending ones
    try:
        train(TrainConfig(**BRAIN_CHECKPOINT_SETTINGS, output=str(out), progress=False,
                          verbose=False))
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="session")
def brain_onnx(brain_checkpoint, tmp_path_factory: pytest.TempPathFactory):
    """`brain_checkpoint` exported once per session: (fp32 .onnx Path, fp16 .onnx Path).

    Opset 17 (the legacy exporter: seconds, where the dynamo exporter takes ~15 s) and the
    lightest export-time parity checks; bench and verify tests measure parity themselves.
    """
    from segdeploy.export import ExportOptions, run_export

    out = tmp_path_factory.mktemp("brain_onnx") / "unet_brain.onnx"
    result = run_export(brain_checkpoint, ExportOptions(
        output=str(out), opset=17, check_sizes=["1x1x97x131"], fp16_images=4))
    return result.onnx_path, result.fp16_path
