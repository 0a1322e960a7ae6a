"""Static INT8 quantization (QDQ) of an exported FP32 ONNX, judged by a segmentation gate.

    segdeploy quantize unet.onnx --data brain          -> unet.int8.onnx

ONNX Runtime's `quantize_static` inserts QuantizeLinear/DequantizeLinear pairs (per-channel
int8 weights, uint8 activations from ranges measured on training images) ONCE, over every
layer. The gate (`noise_gate.SizedGate`) compares the result with FP32 on real validation
images at their own size and a larger one: argmax agreement at least the lower of the fixed
threshold (99 %) and FP32's own agreement under +-1 grey level of input noise, and an mIoU
drop of at most 1 point. When it fails, each layer's effect is measured once (that layer
alone put back in float, `qdq_edit.dequantize_nodes`: no recalibration, no requantization)
and layers are put back in float in the order of agreement gained per FLOP, so cheap layers
(a 1-channel first convolution, a 1x1 head) go first, until the gate passes. The file is then
timed against FP32 on this CPU and not written when it is not faster (`--allow-slower`
writes it). The float layers land in the metadata (`ExportInfo.fp32_nodes`, with their cost
and sensitivity). The same QDQ file builds as explicit INT8 on TensorRT >= 10 (`--symmetric`:
TensorRT needs zero points of 0).
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from segdeploy.atomic import check_output_path
from segdeploy.comparison import Thresholds
from segdeploy.errors import ArtifactError, UsageError, first_line, require
from segdeploy.export.int8_fallback import SENSITIVITY_IMAGES, FallbackSearch, fallback_order
from segdeploy.export.int8_gate import (
    CalibrationFeeds,
    GateResult,
    common_crops,
    load_split,
    model_feed,
)
from segdeploy.export.int8_speed import SpeedCheck, SpeedTimer, ort_speed, refuse_slower
from segdeploy.export.noise_gate import DEFAULT_GATE_SCALES, SizeCheck, SizedGate
from segdeploy.export.qdq_edit import dequantize_nodes, layer_costs
from segdeploy.export.quantize_defaults import CALIBRATIONS, DEFAULT_CALIBRATION
from segdeploy.manifest import ExportInfo
from segdeploy.precision import Precision

QUANT_METADATA_KEY = "segdeploy.quantization"
__all__ = ["QUANT_METADATA_KEY", "SENSITIVITY_IMAGES", "QuantizeOptions", "QuantizeResult",
           "fallback_order", "quantize_model"]


@dataclass
class QuantizeOptions:
    data: str
    output: str | Path | None = None
    calibration: str = DEFAULT_CALIBRATION
    calibration_images: int = 32
    val_images: int = 16
    min_agreement: float | None = None  #: given: applied as is (no noise-floor limit)
    max_miou_drop: float | None = None
    symmetric: bool = False  #: int8 activations with zero point 0 (TensorRT), else uint8
    threads: int | None = None
    gate_scales: tuple[float, ...] = DEFAULT_GATE_SCALES
    allow_slower: bool = False  #: write an INT8 file even when it is not faster than FP32


@dataclass
class QuantizeResult:
    output: Path
    calibration: str
    gate: GateResult  #: the final graph at the images' own size
    thresholds: Thresholds
    fp32_nodes: list[str] = field(default_factory=list)
    first_gate: GateResult | None = None  #: every layer int8, own size
    sensitivity: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    checks: list[SizeCheck] = field(default_factory=list)  #: the final graph, every size
    first_checks: list[SizeCheck] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=dict)  #: layer -> percent of the FLOPs
    speed: SpeedCheck | None = None
    phases: dict[str, float] = field(default_factory=dict)  #: seconds per phase

    @property
    def decided_by(self) -> str:
        """Which agreement limit bound the final gate: 'noise floor' if it did at any size."""
        return ("noise floor" if any(c.decided_by == "noise floor" for c in self.checks)
                else "fixed threshold")

    def to_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "calibration": self.calibration,
                "gate": self.gate.to_dict(), "thresholds": self.thresholds.to_dict(),
                "checks": [c.to_dict() for c in self.checks], "decided_by": self.decided_by,
                "fp32_nodes": self.fp32_nodes, "sensitivity": self.sensitivity,
                "costs": self.costs,
                "first_gate": self.first_gate.to_dict() if self.first_gate else None,
                "first_checks": [c.to_dict() for c in self.first_checks],
                "speed": self.speed.to_dict() if self.speed else None,
                "seconds": round(self.seconds, 2), "phases": self.phases, "notes": self.notes}


def default_output(source: Path) -> Path:
    """unet.onnx -> unet.int8.onnx"""
    return source.with_name(source.name.removesuffix(".onnx") + ".int8.onnx")


def read_info(path: Path) -> tuple[ExportInfo, Any]:
    """The ONNX's ExportInfo and its input dtype (through onnxruntime)."""
    from segdeploy.runtime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(path, providers="cpu") as runner:
        info = ExportInfo.from_metadata_props(runner.metadata(), source=str(path))
        return info, runner.input_specs()[info.input_name].dtype


def _checked(source: Path, options: QuantizeOptions) -> tuple[Path, ExportInfo, Any]:
    if options.calibration not in CALIBRATIONS:
        raise UsageError(f"calibration {options.calibration!r}", expected=" | ".join(CALIBRATIONS))
    if not options.gate_scales or min(options.gate_scales) <= 0:
        raise UsageError(f"gate scales {options.gate_scales}",
                         expected="one or more positive factors, e.g. 1,2")
    if not source.is_file():
        raise ArtifactError(f"ONNX file {source} does not exist",
                            fix="export one with `segdeploy export CHECKPOINT`")
    output = check_output_path(options.output or default_output(source))
    info, dtype = read_info(source)
    if info.precision != Precision.FP32:
        raise ArtifactError(f"{source.name} is a {info.precision} graph",
                            expected="the FP32 ONNX (MODEL.onnx)",
                            fix="quantize MODEL.onnx, not MODEL.fp16.onnx")
    return output, info, dtype


def quantize_model(source: str | Path, options: QuantizeOptions,
                   log: Callable[[str], None] = lambda _: None, *,
                   timer: SpeedTimer | None = None,
                   step: Callable[[str, int, int], None] = lambda *_: None) -> QuantizeResult:
    """Quantize once, gate, fall back layer by layer if needed, time, write; see module doc.

    `timer` times the FP32 source against the candidate (default `ort_speed`; tests pass a
    double); `step(label,
    done, total)` reports progress of the per-layer phase.
    """
    t0 = time.perf_counter()
    source = Path(source)
    output, info, dtype = _checked(source, options)
    thresholds = Thresholds.for_precision("int8", min_agreement=options.min_agreement,
                                          max_miou_drop=options.max_miou_drop)
    calib = load_split(options.data, info, "train", options.calibration_images)
    val = load_split(options.data, info, "val", options.val_images)
    crops, crop_note = common_crops([im for im, _ in calib], info)
    feeds = CalibrationFeeds(info.input_name, [model_feed(im, info, dtype) for im in crops])
    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="segdeploy-int8-") as tmp:
        q = _Quantizer(source, Path(tmp), feeds, options)
        q.notes += [crop_note] if crop_note else []
        log(f"calibrating ({options.calibration}, {len(calib)} training images)")
        t = time.perf_counter()
        q.quantize_all()
        phases["calibrate_and_quantize"] = time.perf_counter() - t
        t = time.perf_counter()
        scales = options.gate_scales
        if info.card.fixed_size() and len(scales) > 1:  # every size is resized to the graph's
            scales = scales[:1]
            q.notes.append("a fixed-size graph: judged at one size")
        gate = SizedGate(source, val, info.card.num_classes, thresholds,
                         scales=scales, use_floor=options.min_agreement is None,
                         threads=options.threads)
        phases["fp32_reference_and_noise_floor"] = time.perf_counter() - t
        feed = {info.input_name: model_feed(val[0][0], info, dtype)}
        search = FallbackSearch(q, gate, layer_costs(q.float_model, feed), log, step)
        t = time.perf_counter()
        excluded, checks = search.run()
        phases["gate_and_fallback"] = time.perf_counter() - t
        final = q.trial(excluded)
        speed = None
        if options.symmetric:  # zero points of 0 are for TensorRT: this CPU's speed says nothing
            q.notes.append("symmetric INT8 (for TensorRT): not timed on this CPU")
        else:
            t = time.perf_counter()
            speed = _speed_check(timer or ort_speed, source, final, feed, options, q.notes, log)
            phases["speed_check"] = time.perf_counter() - t
        out = QuantizeResult(output, options.calibration, checks[0].result, thresholds, excluded,
                             search.first[0].result, search.sensitivity, notes=q.notes,
                             checks=checks, first_checks=search.first,
                             costs={n: search.share(n) for n in search.costs}, speed=speed,
                             phases={k: round(v, 2) for k, v in phases.items()})
        _write(final, output, info, out, options)
    out.seconds = time.perf_counter() - t0
    return out


def _speed_check(timer: SpeedTimer, source: Path, final: Path, feed: dict[str, Any],
                 options: QuantizeOptions, notes: list[str],
                 log: Callable[[str], None]) -> SpeedCheck:
    """Time the candidate against FP32; a file that is not faster is refused (or noted)."""
    speed = timer(source, final, feed, options.threads)
    log(f"speed on this CPU: {speed.speedup:.2f}x FP32 ({speed.int8_ms:.1f} vs "
        f"{speed.fp32_ms:.1f} ms, {speed.cpu})")
    if speed.speedup <= 1.0:
        if not options.allow_slower:
            raise refuse_slower(speed, source)
        notes.append(f"INT8 does not pay off here: {speed.speedup:.2f}x FP32 on {speed.cpu}; "
                     "written anyway (--allow-slower)")
    return speed


#: DequantizeLinear takes a per-channel `axis` from opset 13 on
MIN_QDQ_OPSET = 13


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Third-party progress prints (ONNX Runtime's calibrators) kept off our terminal."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class _Quantizer:
    """quant_pre_process once, calibration and quantization once, then each fallback trial
    as a graph edit of that one QDQ graph (no recalibration, no requantization)."""

    def __init__(self, source: Path, tmp: Path, feeds: CalibrationFeeds,
                 options: QuantizeOptions) -> None:
        self.q = require("onnxruntime.quantization", extra="torch", package="onnx",
                         purpose="to quantize ONNX models")
        self.tmp, self.feeds, self.options = tmp, feeds, options
        self.notes: list[str] = []
        self.model = self._pre_process(source)
        self.float_model: Any = None
        self.qdq_model: Any = None
        self._trials: dict[frozenset[str], Path] = {}
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

    def quantize_all(self) -> None:
        """Every supported layer quantized, ranges from one calibration pass."""
        import onnx

        q = self.q
        out = self.tmp / "all_int8.onnx"
        method = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
                  "percentile": q.CalibrationMethod.Percentile}[self.options.calibration]
        extra: dict[str, Any] = {"CalibPercentile": 99.999} if \
            self.options.calibration == "percentile" else {}
        if self.options.symmetric:
            extra.update(ActivationSymmetric=True, WeightSymmetric=True)
        self.feeds.rewind()
        with quiet_stdout():  # ONNX Runtime prints its calibration progress with print()
            q.quantize_static(
                str(self.model), str(out), self.feeds, quant_format=q.QuantFormat.QDQ,
                per_channel=True, weight_type=q.QuantType.QInt8,
                activation_type=(q.QuantType.QInt8 if self.options.symmetric
                                 else q.QuantType.QUInt8),
                calibrate_method=method, extra_options=extra)
        self.float_model = onnx.load(str(self.model))
        self.qdq_model = onnx.load(str(out))

    def trial(self, excluded: list[str]) -> Path:
        """The QDQ graph with `excluded` in float, as a file (made once per set)."""
        import onnx

        key = frozenset(excluded)
        if key not in self._trials:
            self._count += 1
            path = self.tmp / f"trial{self._count}.onnx"
            onnx.save(dequantize_nodes(self.qdq_model, self.float_model, excluded), str(path))
            self._trials[key] = path
            # a big model's trials would fill the disk: keep every-layer INT8 and the last two
            for old in [k for k in self._trials if k and k != key][:-1]:
                self._trials.pop(old).unlink(missing_ok=True)
        return self._trials[key]


def _write(model_path: Path, output: Path, info: ExportInfo, result: QuantizeResult,
           options: QuantizeOptions) -> None:
    """The final QDQ graph with metadata precision=int8, written atomically."""
    import onnx

    from segdeploy.onnx_metadata import save_with_metadata

    model = onnx.load(str(model_path))
    reasons = {n: f"kept float: INT8 here cost {result.sensitivity.get(n, 0.0):.3f} agreement "
                  f"points; {result.costs.get(n, 0.0):.2f}% of the FLOPs"
               for n in result.fp32_nodes}
    new = replace(info, precision=Precision.INT8, fp32_nodes=reasons)
    props = new.to_metadata_props()
    props[QUANT_METADATA_KEY] = json.dumps({
        "calibration": result.calibration, "calibration_images": options.calibration_images,
        "activations": "int8 symmetric" if options.symmetric else "uint8 asymmetric",
        "weights": "int8 symmetric per-channel", "format": "QDQ",
        "gate": result.gate.to_dict(), "checks": [c.to_dict() for c in result.checks],
        "decided_by": result.decided_by,
        "speed": result.speed.to_dict() if result.speed else None}, sort_keys=True)
    save_with_metadata(model, props, output)
