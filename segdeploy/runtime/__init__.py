"""Torch-free inference: ONNX Runtime and TensorRT behind one Runner protocol, and Segmenter.

    from segdeploy.runtime import Segmenter
    seg = Segmenter.load("model.onnx")      # or "model.plan" -> TensorRT
    mask = seg.predict(image)               # HxWx3 uint8 -> HxW class ids

Only numpy is needed to import this package; onnxruntime, tensorrt and cuda-python are
imported when a runner is activated.
"""

from segdeploy.runtime.device_arrays import DeviceView
from segdeploy.runtime.onnxruntime_runner import OnnxRuntimeRunner
from segdeploy.runtime.runner import Runner, TensorSpec
from segdeploy.runtime.segmenter import Segmenter
from segdeploy.runtime.tensorrt_runner import TensorRTRunner

__all__ = ["DeviceView", "OnnxRuntimeRunner", "Runner", "Segmenter", "TensorRTRunner",
           "TensorSpec"]
