"""A two-level U-Net-like ONNX graph (random weights, onnx.helper, no torch) with the op pattern
OpenVINO 2026.4 mis-runs as a dynamic-shape U8S8 QDQ file; see runtime/openvino_runner.py.

The pattern, as torch.export writes a U-Net: the decoder's last upsampled map is resized to
the INPUT's H, W (Shape(input) slices), the inner one to H // 2, W // 2 (Squeeze, Div,
Reshape), and each is concatenated with its encoder skip (a Conv + Relu also read by a
MaxPool). Run as a script, it prints raw OpenVINO's agreement with ONNX Runtime at dynamic
and at fixed size (the upstream repro):

    .venv/bin/python -m tests.runtime.qdq_unet_graph
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CHANNELS = 8


def _graph() -> Any:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    c = CHANNELS
    params: dict[str, np.ndarray] = {"two": np.array(2, np.int64), "one": np.array([1], np.int64)}

    def rand(*shape: int, scale: float) -> np.ndarray:
        return rng.normal(0, scale, shape).astype(np.float32)

    def conv(x: str, y: str, cin: int, bias: float = 1.0) -> list[Any]:
        params[f"{y}_w"], params[f"{y}_b"] = rand(c, cin, 3, 3, scale=(cin * 9) ** -0.5), \
            rand(c, scale=bias)
        return [helper.make_node("Conv", [x, f"{y}_w", f"{y}_b"], [f"{y}_c"], pads=[1] * 4,
                                 name=y),
                helper.make_node("Relu", [f"{y}_c"], [y], name=f"{y}_relu")]

    def up(x: str, y: str, hw: str) -> list[Any]:
        params[f"{y}_w"], params[f"{y}_b"] = rand(c, c, 2, 2, scale=0.3), rand(c, scale=0.2)
        return [helper.make_node("ConvTranspose", [x, f"{y}_w", f"{y}_b"], [f"{y}_t"],
                                 strides=[2, 2], name=y),
                helper.make_node("Shape", [f"{y}_t"], [f"{y}_nc"], start=0, end=2),
                helper.make_node("Concat", [f"{y}_nc", hw], [f"{y}_size"], axis=0),
                helper.make_node("Resize", [f"{y}_t", "", "", f"{y}_size"], [y], mode="linear",
                                 name=f"{y}_resize")]

    def pool(x: str, y: str) -> Any:
        return helper.make_node("MaxPool", [x], [y], kernel_shape=[2, 2], strides=[2, 2])

    def cat(a: str, b: str, y: str) -> Any:
        return helper.make_node("Concat", [a, b], [y], axis=1, name=y)

    sizes = [helper.make_node("Shape", ["input"], ["h1"], start=2, end=3),
             helper.make_node("Shape", ["input"], ["w1"], start=3, end=4),
             helper.make_node("Concat", ["h1", "w1"], ["hw0"], axis=0)]
    for d in "hw":  # H // 2 and W // 2 as scalars, as torch.export's symbolic sizes
        sizes += [helper.make_node("Squeeze", [f"{d}1"], [f"{d}"]),
                  helper.make_node("Div", [d, "two"], [f"{d}2"]),
                  helper.make_node("Reshape", [f"{d}2", "one"], [f"{d}2r"])]
    sizes.append(helper.make_node("Concat", ["h2r", "w2r"], ["hw1"], axis=0))
    nodes = [*sizes, *conv("input", "e0a", 1), *conv("e0a", "skip0", c), pool("skip0", "p0"),
             *conv("p0", "e1a", c), *conv("e1a", "skip1", c), pool("skip1", "p1"),
             *conv("p1", "mid", c), *up("mid", "up1", "hw1"), cat("skip1", "up1", "cat1"),
             *conv("cat1", "d1", 2 * c), *up("d1", "up0", "hw0"), cat("skip0", "up0", "cat0"),
             *conv("cat0", "d0", 2 * c)]
    params["head_w"], params["head_b"] = rand(3, c, 1, 1, scale=0.5), rand(3, scale=0.1)
    nodes.append(helper.make_node("Conv", ["d0", "head_w", "head_b"], ["logits"], name="head"))
    graph = helper.make_graph(
        nodes, "qdq_unet", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                          [1, 1, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [numpy_helper.from_array(v, k) for k, v in params.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def images(n: int, h: int = 37, w: int = 45, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, (1, 1, h, w)).astype(np.float32) for _ in range(n)]


def write_int8(folder: Path) -> Path:
    """The float graph quantized as `segdeploy quantize` does (ONNX Runtime quantize_static,
    QDQ, per-channel int8 weights, uint8 activations); returns the .int8.onnx path."""
    import onnx
    from onnxruntime import quantization as q

    fp32, int8 = folder / "qdq_unet.onnx", folder / "qdq_unet.int8.onnx"
    onnx.save(_graph(), str(fp32))

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([{"input": x} for x in images(8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    q.quantize_static(str(fp32), str(int8), Reader(), quant_format=q.QuantFormat.QDQ,
                      per_channel=True, weight_type=q.QuantType.QInt8,
                      activation_type=q.QuantType.QUInt8)
    return int8


def _main() -> None:
    import tempfile

    import onnxruntime as ort
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        path = str(write_int8(Path(tmp)))
        xs = images(8)
        ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        core = ov.Core()
        fixed = core.read_model(path)
        fixed.reshape({"input": list(xs[0].shape)})
        for label, model in (("dynamic H, W", core.read_model(path)), ("fixed size", fixed)):
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            agree = np.mean([(ref.run(None, {"input": x})[0].argmax(1)
                              == compiled(x)[compiled.outputs[0]].argmax(1)).mean()
                             for x in xs])
            print(f"OpenVINO {ov.__version__} {label}: {100 * agree:.1f} % argmax agreement "
                  "with ONNX Runtime")


if __name__ == "__main__":
    _main()
