"""Static INT8 quantization (QDQ) of an exported FP32 ONNX, judged by a segmentation gate.

    segdeploy quantize unet.onnx --data brain          -> unet.int8.onnx

ONNX Runtime's `quantize_static` inserts QuantizeLinear/DequantizeLinear pairs (per-channel
int8 weights, activations from ranges measured on training images). The result must keep
the argmax of the FP32 graph (>= 99 % of pixels) and its mIoU (<= 1 point lost) on real
validation images. When it does not, each quantized layer's effect is measured alone and the
most sensitive layers are kept in float, one more at a time, until the gate passes; their
names land in the metadata (`ExportInfo.fp32_nodes`). The same QDQ file builds as explicit
INT8 on TensorRT >= 10 (`--symmetric`: TensorRT needs zero points of 0).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from segdeploy.atomic import atomic_path, check_output_path
from segdeploy.comparison import Thresholds
from segdeploy.errors import ArtifactError, ParityError, UsageError, first_line, require
from segdeploy.export.int8_gate import (
    CalibrationFeeds,
    GateResult,
    common_crops,
    judge,
    load_split,
    model_feed,
    predict_masks,
)
from segdeploy.export.quantize_defaults import CALIBRATIONS, DEFAULT_CALIBRATION
from segdeploy.manifest import ExportInfo
from segdeploy.precision import Precision

QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
QUANT_METADATA_KEY = "segdeploy.quantization"
#: validation images the per-layer sensitivity is measured on (the gate uses them all)
SENSITIVITY_IMAGES = 6


@dataclass
class QuantizeOptions:
    data: str
    output: str | Path | None = None
    calibration: str = DEFAULT_CALIBRATION
    calibration_images: int = 32
    val_images: int = 16
    min_agreement: float | None = None
    max_miou_drop: float | None = None
    symmetric: bool = False  #: int8 activations with zero point 0 (TensorRT), else uint8
    threads: int | None = None


@dataclass
class QuantizeResult:
    output: Path
    calibration: str
    gate: GateResult
    thresholds: Thresholds
    fp32_nodes: list[str] = field(default_factory=list)
    first_gate: GateResult | None = None
    sensitivity: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "calibration": self.calibration,
                "gate": self.gate.to_dict(), "thresholds": self.thresholds.to_dict(),
                "fp32_nodes": self.fp32_nodes, "sensitivity": self.sensitivity,
                "first_gate": self.first_gate.to_dict() if self.first_gate else None,
                "seconds": round(self.seconds, 2), "notes": self.notes}


def default_output(source: Path) -> Path:
    """unet.onnx -> unet.int8.onnx"""
    return source.with_name(source.name.removesuffix(".onnx") + ".int8.onnx")


def read_info(path: Path) -> tuple[ExportInfo, Any]:
    """The ONNX's ExportInfo and its input dtype (through onnxruntime)."""
    from segdeploy.runtime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(path, providers="cpu") as runner:
        info = ExportInfo.from_metadata_props(runner.metadata(), source=str(path))
        return info, runner.input_specs()[info.input_name].dtype


def quantize_model(source: str | Path, options: QuantizeOptions,
                   log: Callable[[str], None] = lambda _: None) -> QuantizeResult:
    """Quantize, gate, fall back layer by layer if needed, write atomically; see module doc."""
    t0 = time.perf_counter()
    source = Path(source)
    if options.calibration not in CALIBRATIONS:
        raise UsageError(f"calibration {options.calibration!r}", expected=" | ".join(CALIBRATIONS))
    if not source.is_file():
        raise ArtifactError(f"ONNX file {source} does not exist",
                            fix="export one with `segdeploy export CHECKPOINT`")
    output = check_output_path(options.output or default_output(source))
    info, dtype = read_info(source)
    if info.precision != Precision.FP32:
        raise ArtifactError(f"{source.name} is a {info.precision} graph",
                            expected="the FP32 ONNX (MODEL.onnx)",
                            fix="quantize MODEL.onnx, not MODEL.fp16.onnx")
    thresholds = Thresholds.for_precision("int8", min_agreement=options.min_agreement,
                                          max_miou_drop=options.max_miou_drop)
    calib = load_split(options.data, info, "train", options.calibration_images)
    val = load_split(options.data, info, "val", options.val_images)
    images, labels = [im for im, _ in val], [m for _, m in val]
    reference = predict_masks(source, images, threads=options.threads)
    crops, crop_note = common_crops([im for im, _ in calib], info)
    feeds = CalibrationFeeds(info.input_name, [model_feed(im, info, dtype) for im in crops])
    k = info.card.num_classes
    with tempfile.TemporaryDirectory(prefix="segdeploy-int8-") as tmp:
        q = _Quantizer(source, Path(tmp), feeds, options)
        q.notes += [crop_note] if crop_note else []
        log(f"calibrating ({options.calibration}, {len(calib)} training images)")

        def gate(excluded: list[str], n: int | None = None) -> GateResult:
            path = q.quantize(excluded)
            masks = predict_masks(path, images[:n], threads=options.threads)
            return judge(reference[:n], masks, labels[:n], k)

        first = result = gate([])
        excluded: list[str] = []
        sensitivity: dict[str, float] = {}
        log(_line("all layers int8", first))
        if not _passes(first, thresholds):
            sensitivity = measure_sensitivity(q.candidates(), gate, log)
            for node in sorted(sensitivity, key=sensitivity.__getitem__, reverse=True):
                excluded.append(node)
                result = gate(excluded)
                log(_line(f"{len(excluded)} layer(s) in float", result))
                if _passes(result, thresholds):
                    break
            if not _passes(result, thresholds):
                others = [c for c in CALIBRATIONS if c != options.calibration]
                raise ParityError(
                    f"INT8 fails the gate even with every quantized layer in float "
                    f"({_figures(result)})", expected=_need(thresholds),
                    fix=f"try --calibration {' or '.join(others)}, or more "
                        "--calibration-images")
        final = q.quantize(excluded)
        out = QuantizeResult(output, options.calibration, result, thresholds, excluded,
                             first, sensitivity, notes=q.notes)
        _write(final, output, info, out, options)
    out.seconds = time.perf_counter() - t0
    return out


def measure_sensitivity(candidates: list[str], gate: Callable[..., GateResult],
                        log: Callable[[str], None]) -> dict[str, float]:
    """Agreement gained (points) by keeping each quantized layer alone in float."""
    base = gate([], SENSITIVITY_IMAGES).agreement
    log(f"measuring the sensitivity of {len(candidates)} quantized layers")
    return {node: gate([node], SENSITIVITY_IMAGES).agreement - base for node in candidates}


def _passes(result: GateResult, t: Thresholds) -> bool:
    return result.passes(t.min_agreement, t.max_miou_drop)


def _need(t: Thresholds) -> str:
    return f"argmax agreement >= {t.min_agreement:g}% and mIoU drop <= {t.max_miou_drop:g}"


def _figures(r: GateResult) -> str:
    """Agreement and mIoU, with the mIoU change named for what it is (a drop or a gain)."""
    change = (f"drop {r.miou_drop:.2f}" if r.miou_drop >= 0 else f"gain {-r.miou_drop:.2f}")
    return (f"agreement {r.agreement:.3f}%, mIoU {r.miou_int8:.2f} "
            f"(fp32 {r.miou_fp32:.2f}, {change})")


def _line(label: str, r: GateResult) -> str:
    return f"{label}: {_figures(r)}"


#: DequantizeLinear takes a per-channel `axis` from opset 13 on
MIN_QDQ_OPSET = 13


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Third-party progress prints (ONNX Runtime's calibrators) kept off our terminal."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class _Quantizer:
    """quant_pre_process once, calibration once (cached), then one QDQ graph per exclusion set."""

    def __init__(self, source: Path, tmp: Path, feeds: CalibrationFeeds,
                 options: QuantizeOptions) -> None:
        self.q = require("onnxruntime.quantization", extra="torch", package="onnx",
                         purpose="to quantize ONNX models")
        self.tmp, self.feeds, self.options = tmp, feeds, options
        self.notes: list[str] = []
        self.model = self._pre_process(source)
        self.cache = tmp / "ranges.json"
        self._uses_cache = "calibration_cache_path" in inspect.signature(
            self.q.quantize_static).parameters
        self._count = 0

    def _pre_process(self, source: Path) -> Path:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        source = self._at_least_opset13(source)
        out = self.tmp / "pre.onnx"
        try:  # symbolic shape inference fails on our dynamic H, W: ONNX's own inference does
            quant_pre_process(str(source), str(out), skip_symbolic_shape=True)
            return out
        except Exception as exc:  # noqa: BLE001 - optional step: quantize the graph as is
            self.notes.append(f"quant_pre_process skipped ({first_line(exc, limit=120)})")
            return source

    def _at_least_opset13(self, source: Path) -> Path:
        """Per-channel QDQ (DequantizeLinear's axis) needs opset >= 13: an older graph (as
        other tools still export, e.g. opset 11/12) is upgraded with onnx's version
        converter, or refused in one line."""
        import onnx
        import onnx.version_converter

        model = onnx.load(str(source))
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        if opset >= MIN_QDQ_OPSET:
            return source
        try:
            upgraded = onnx.version_converter.convert_version(model, MIN_QDQ_OPSET)
            onnx.checker.check_model(upgraded)
        except Exception as exc:  # the converter raises its own C++ errors
            raise UsageError(f"{source.name} is ONNX opset {opset} and could not be upgraded "
                             f"to {MIN_QDQ_OPSET} for per-channel INT8 ({first_line(exc)})",
                             expected=f"opset >= {MIN_QDQ_OPSET}",
                             fix="re-export the model with opset 13 or newer (segdeploy "
                                 "export --opset 17)") from None
        out = self.tmp / "opset13.onnx"
        onnx.save(upgraded, str(out))
        self.notes.append(f"upgraded the graph from opset {opset} to {MIN_QDQ_OPSET} "
                          "(per-channel QDQ needs it); the output keeps opset 13")
        return out

    def candidates(self) -> list[str]:
        import onnx

        graph = onnx.load(str(self.model), load_external_data=False).graph
        return [n.name for n in graph.node if n.op_type in QUANTIZED_OPS and n.name]

    def quantize(self, excluded: list[str]) -> Path:
        q = self.q
        self._count += 1
        out = self.tmp / f"q{self._count}.onnx"
        method = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
                  "percentile": q.CalibrationMethod.Percentile}[self.options.calibration]
        extra: dict[str, Any] = {"CalibPercentile": 99.999} if \
            self.options.calibration == "percentile" else {}
        if self.options.symmetric:
            extra.update(ActivationSymmetric=True, WeightSymmetric=True)
        kw: dict[str, Any] = {"calibration_cache_path": str(self.cache)} if self._uses_cache \
            else {}
        self.feeds.rewind()
        with quiet_stdout():  # ONNX Runtime prints its calibration progress with print()
            q.quantize_static(
                str(self.model), str(out), self.feeds, quant_format=q.QuantFormat.QDQ,
                per_channel=True, weight_type=q.QuantType.QInt8,
                activation_type=(q.QuantType.QInt8 if self.options.symmetric
                                 else q.QuantType.QUInt8),
                calibrate_method=method, nodes_to_exclude=list(excluded), extra_options=extra,
                **kw)
        return out


def _write(model_path: Path, output: Path, info: ExportInfo, result: QuantizeResult,
           options: QuantizeOptions) -> None:
    """The final QDQ graph with metadata precision=int8, written atomically."""
    import onnx

    from segdeploy.onnx_metadata import set_metadata

    model = onnx.load(str(model_path))
    reasons = {n: f"kept float: INT8 here cost {result.sensitivity.get(n, 0.0):.3f} agreement "
                  "points" for n in result.fp32_nodes}
    new = replace(info, precision=Precision.INT8, fp32_nodes=reasons)
    props = new.to_metadata_props()
    props[QUANT_METADATA_KEY] = json.dumps({
        "calibration": result.calibration, "calibration_images": options.calibration_images,
        "activations": "int8 symmetric" if options.symmetric else "uint8 asymmetric",
        "weights": "int8 symmetric per-channel", "format": "QDQ",
        "gate": result.gate.to_dict()}, sort_keys=True)
    set_metadata(model, props)
    with atomic_path(output) as tmp:
        onnx.save(model, str(tmp))
