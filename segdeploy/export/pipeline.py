"""`segdeploy export` end to end: load, export FP32, convert FP16, check, compare, write.

Every file is written under a temporary name in the target folder and renamed to
NAME.onnx / NAME.fp16.onnx / NAME.parity.json only when every check passed, so a failed
export leaves no file behind (and an older good export is not replaced).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from segdeploy.atomic import atomic_path, check_output_path
from segdeploy.errors import ExportError, ParityError, UsageError, first_line
from segdeploy.export import parity
from segdeploy.export.findings import Finding
from segdeploy.export.graph_checks import check_onnx_file, raise_for_errors
from segdeploy.export.sources import SourceFacts
from segdeploy.locking import output_lock
from segdeploy.manifest import ExportInfo, ModelCard
from segdeploy.onnx_metadata import set_metadata
from segdeploy.precision import Precision

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from segdeploy.export.onnx_export import DeployWrapper
    from segdeploy.export.sources import Source


@dataclass
class ExportOptions:
    output: str | None = None
    opset: int = 18
    fp16: bool = True
    fp16_bound: float = 512.0
    with_preprocess: bool = False
    with_argmax: bool = False
    #: the mask's dtype: None = uint8 where the classes fit, else int32 (for TensorRT 8.x)
    argmax_dtype: str | None = None
    check_sizes: list[str] | None = None
    max_side: int = parity.DEFAULT_MAX_SIDE
    trust_code: bool = False
    facts: SourceFacts = field(default_factory=SourceFacts)
    data: str | None = None
    #: how --data's grey images are fed to a foreign model: "grey" | "grey3" | "rgb"
    channels: str | None = None
    fp16_images: int = 16
    trt_check: bool = True


@dataclass
class ExportResult:
    onnx_path: Path
    fp16_path: Path | None
    parity_path: Path
    info: ExportInfo
    info_fp16: ExportInfo | None
    parity: parity.ParityReport
    findings: list[Finding]
    timings: dict[str, float]
    notes: list[str]


def output_paths(source: Path, output: str | None, fp16: bool) -> tuple[Path, Path | None, Path]:
    onnx_path = Path(output) if output else source.with_suffix(".onnx")
    if onnx_path.suffix != ".onnx":
        raise UsageError(f"output {onnx_path} does not end in .onnx",
                         expected="-o NAME.onnx (NAME.fp16.onnx and NAME.parity.json go beside it)")
    check_output_path(onnx_path)
    base = onnx_path.with_suffix("")
    return (onnx_path, Path(f"{base}.fp16.onnx") if fp16 else None,
            Path(f"{base}.parity.json"))


@dataclass
class _Stage:
    """What every stage of one export shares: options, progress bar, timings, temp files."""

    opts: ExportOptions
    console: Console | None
    bar: Progress
    task: TaskID
    stack: contextlib.ExitStack
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    t: float = field(default_factory=time.perf_counter)

    def say(self, text: str) -> None:
        self.bar.update(self.task, description=text)

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.t, 3)
        self.t = now
        self.bar.advance(self.task)

    #: a --static-size graph (fixed H, W on purpose) / a scripted TorchScript source
    static: bool = False
    scripted: bool = False

    def checked(self, path: Path, names: list[str], label: str) -> None:
        found = _checks(path, names, self.opts.trt_check, label, static=self.static)
        _fail_on_findings(self.console, found, f"the {label.upper()} graph",
                          scripted=self.scripted)
        self.findings += found


@dataclass
class _Graphs:
    """The exported graphs (temporary paths until the export succeeds) and their metadata."""

    names: list[str]
    info: ExportInfo
    tmp32: Path
    info16: ExportInfo | None = None
    fp16_reasons: dict[str, str] | None = None
    run16: Any = None


def run_export(source_path: str | Path, options: ExportOptions | None = None, *,
               console: Console | None = None, progress: bool = False) -> ExportResult:
    """Export `source_path`; raise ExportError / ParityError (after printing) on failure."""
    from segdeploy.export import onnx_export
    from segdeploy.export.sources import load_source

    opts = options or ExportOptions()
    if opts.opset not in onnx_export.SUPPORTED_OPSETS:
        raise UsageError(f"--opset {opts.opset} is not supported",
                         expected="17 (TensorRT 8.5/8.6) or 18 (default)")
    src_path = Path(source_path)
    onnx_path, fp16_path, parity_path = output_paths(src_path, opts.output, opts.fp16)
    steps = 6 + (2 if opts.fp16 else 0)
    # one exporter per -o: a second one is refused at once instead of replacing these files
    with (output_lock(onnx_path), _progress(console, progress) as bar,
          contextlib.ExitStack() as stack):
        stage = _Stage(opts, console, bar, bar.add_task("loading", total=steps), stack)
        t_start = stage.t
        src = load_source(src_path, trust_code=opts.trust_code, facts=opts.facts)
        stage.notes += src.notes
        stage.static = onnx_export.static_size(src.card) is not None
        stage.scripted = src.kind == "torchscript" and onnx_export.is_scripted(src.model)
        mask_dtype = (onnx_export.mask_dtype_for(opts.argmax_dtype, src.card.num_classes)
                      if opts.with_argmax else "int32")
        wrapper = onnx_export.DeployWrapper(src.model, mean=src.card.mean, std=src.card.std,
                                            preprocess=opts.with_preprocess,
                                            argmax=opts.with_argmax,
                                            threshold=src.card.threshold,
                                            mask_dtype=mask_dtype).eval()
        stage.done("load")
        graphs = _export_fp32(stage, src, wrapper, onnx_path)
        real_feeds, source_desc = _sample_feeds(stage, src.card)
        if opts.fp16 and fp16_path is not None:
            _convert_fp16(stage, graphs, real_feeds, fp16_path)
        report = _parity(stage, src.card, wrapper, graphs, real_feeds, source_desc)
        stage.timings["total"] = round(time.perf_counter() - t_start, 3)
        _judge(stage, report, graphs)
        if fp16_path is None and Path(f"{onnx_path.with_suffix('')}.fp16.onnx").exists():
            stage.notes.append("an older FP16 file exists beside the output and was not "
                               "updated (--no-fp16)")
        payload = {"source": str(src_path), "source_kind": src.kind,
                   "onnx": onnx_path.name, "fp16_onnx": fp16_path.name if fp16_path else None,
                   "opset": opts.opset, "fp16_bound": opts.fp16_bound,
                   "timings_s": stage.timings, "fp32_nodes": graphs.fp16_reasons or {},
                   "findings": [f.to_dict() for f in stage.findings], "notes": stage.notes,
                   "parity": report.to_dict(), "export": graphs.info.to_dict()}
        tmp_json = stack.enter_context(atomic_path(parity_path))
        tmp_json.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
        # leaving the ExitStack renames every temporary file to its final name
    return ExportResult(onnx_path, fp16_path, parity_path, graphs.info, graphs.info16, report,
                        stage.findings, stage.timings, stage.notes)


def _export_fp32(stage: _Stage, src: Source, wrapper: DeployWrapper,
                 onnx_path: Path) -> _Graphs:
    """torch -> FP32 ONNX with metadata, written to a temporary path and checked."""
    from segdeploy.export import onnx_export

    opts, card = stage.opts, src.card
    names = onnx_export.output_names(opts.with_argmax)
    stage.say(f"exporting FP32 ONNX (opset {opts.opset})")
    model = onnx_export.export_onnx(wrapper, card, opset=opts.opset, kind=src.kind)
    info = ExportInfo(
        card=card, output_names=names,
        input_dtype="uint8" if opts.with_preprocess else "float32",
        preprocess_in_graph=opts.with_preprocess, argmax_in_graph=opts.with_argmax,
        mask_dtype=wrapper.mask_dtype if opts.with_argmax else "",
        precision=Precision.FP32, opset=opts.opset, source_sha256=src.sha256,
        input_layout="NHWC" if opts.with_preprocess else "NCHW")
    set_metadata(model, info.to_metadata_props())
    tmp32 = stage.stack.enter_context(atomic_path(onnx_path))
    onnx.save(model, str(tmp32))
    del model
    stage.done("export_fp32")
    stage.say("checking the FP32 graph")
    stage.checked(tmp32, names, "fp32")
    stage.done("check_fp32")
    return _Graphs(names=names, info=info, tmp32=tmp32)


def _sample_feeds(stage: _Stage, card: ModelCard) -> tuple[list[np.ndarray], str]:
    """Graph inputs made from real images of the model's data (synthetic when unavailable)."""
    from segdeploy.export.onnx_export import example_size, static_size
    from segdeploy.export.samples import sample_images

    stage.say("loading sample images")
    opts = stage.opts
    images, source_desc = sample_images(card, data=opts.data, channels=opts.channels,
                                        limit=opts.fp16_images)
    if not images:
        stage.notes.append(f"real images unavailable: {source_desc}; used synthetic smooth "
                           "images")
        h, w = example_size(card)
        if static_size(card) is None:
            h, w = card.fit_size(max(h, 129), max(w, 161))
        images = list(parity.synthetic_images(8, h, w, card.in_channels))
        source_desc = f"synthetic x{len(images)} ({images[0].shape[0]}x{images[0].shape[1]})"
    feeds = [parity.graph_input(b, card, preprocess=opts.with_preprocess)
             for b in parity.batches(images)]
    stage.done("images")
    return feeds, source_desc


def _convert_fp16(stage: _Stage, graphs: _Graphs, real_feeds: list[np.ndarray],
                  fp16_path: Path) -> None:
    """FP32 -> mixed FP16 (activation ranges measured on the real feeds), written and checked."""
    from segdeploy.export.fp16 import convert_to_mixed_fp16

    stage.say("converting to mixed FP16")
    model32 = onnx.load(str(graphs.tmp32))
    model16, graphs.fp16_reasons = convert_to_mixed_fp16(
        model32, [{"input": f} for f in real_feeds[:2]], bound=stage.opts.fp16_bound)
    del model32
    graphs.info16 = ExportInfo.from_dict({**graphs.info.to_dict(), "precision": "fp16",
                                          "fp32_nodes": graphs.fp16_reasons})
    set_metadata(model16, graphs.info16.to_metadata_props())
    tmp16 = stage.stack.enter_context(atomic_path(fp16_path))
    onnx.save(model16, str(tmp16))
    del model16
    stage.done("convert_fp16")
    stage.say("checking the FP16 graph")
    stage.checked(tmp16, graphs.names, "fp16")
    graphs.run16 = _ort(parity.onnx_runner, str(tmp16), what="the FP16 graph",
                        card=graphs.info.card)
    stage.done("check_fp16")


def _parity(stage: _Stage, card: ModelCard, wrapper: DeployWrapper, graphs: _Graphs,
            real_feeds: list[np.ndarray], source_desc: str) -> parity.ParityReport:
    """ONNX Runtime vs PyTorch at the check sizes (synthetic) and on the sample images."""
    opts = stage.opts
    report = parity.ParityReport(fp16_images=source_desc)
    specs = opts.check_sizes or parity.default_sizes(card, opts.max_side)
    sizes, size_notes = parity.parse_sizes(specs, card)
    report.notes += size_notes
    ref = parity.torch_runner(wrapper, graphs.names)
    run32 = _ort(parity.onnx_runner, str(graphs.tmp32), what="the FP32 graph", card=card)
    run16 = graphs.run16
    for i, (n, h, w) in enumerate(sizes):
        stage.say(f"parity at {n}x{card.in_channels}x{h}x{w}")
        x = parity.graph_input(parity.synthetic_images(n, h, w, card.in_channels, seed=i + 1),
                               card, preprocess=opts.with_preprocess)
        label = parity.size_label(n, card.in_channels, h, w)
        expected = ref(x)
        report.rows += _timed(parity.compare, expected, run32, x, graph="fp32", inputs=label,
                              gate="fp32", threshold=card.threshold)
        if run16 is not None:
            report.rows += _timed(parity.compare, expected, run16, x, graph="fp16",
                                  inputs=label, gate="info", threshold=card.threshold)
        del expected
    stage.done("parity_sizes")
    stage.say("parity on sample images")
    expected_all = [ref(f) for f in real_feeds]
    for graph, runner in (("fp32", run32), ("fp16", run16)):
        if runner is None:
            continue
        t0 = time.perf_counter()
        a, b = parity.merge(expected_all, [runner(f) for f in real_feeds])
        rows = parity.compare(a, b, graph=graph, inputs=source_desc, gate=graph,
                              threshold=card.threshold)
        for r in rows:
            r.seconds = round(time.perf_counter() - t0, 3)
        report.rows += rows
    stage.done("parity_images")
    graphs.run16 = None  # close the FP16 session before the files are renamed
    return report


def _judge(stage: _Stage, report: parity.ParityReport, graphs: _Graphs) -> None:
    """Print the report; a failed gate raises (and the ExitStack removes every temp file)."""
    if stage.console is not None:
        from segdeploy.export.report import print_report

        print_report(stage.console, parity=report, findings=stage.findings,
                     fp32_nodes=graphs.fp16_reasons, notes=stage.notes)
    if not report.passed:
        bad = report.failures()[0]
        raise ParityError(
            f"{len(report.failures())} parity check(s) failed, e.g. the {bad.graph} graph "
            f"on {bad.inputs} ({bad.output}: argmax agreement "
            f"{bad.argmax_agreement:.3%}, max |diff| {_num(bad.max_abs)}; gate "
            f"{bad.threshold})",
            fix="see the table above; no files were written. "
                + _parity_fix(bad, graphs.info.card))


def _parity_fix(bad: parity.ParityRow, card: ModelCard) -> str:
    if bad.graph == Precision.FP16:
        return "For FP16, raise precision with a lower --fp16-bound, or use --no-fp16"
    from segdeploy.export.onnx_export import static_size

    if static_size(card) is None:
        return ("A model that matches at its example size only (adaptive pooling to fixed "
                "bins, e.g. PSPNet/UPerNet) needs a fixed-size graph: --static-size HxW")
    return "Check the model runs deterministically in eval mode"


def _ort(make: Any, path: str, *, what: str, card: ModelCard) -> Any:
    """An ONNX Runtime runner whose failures (session or run) are one ExportError line."""
    from segdeploy.export.onnx_export import static_size

    hint = ("" if static_size(card) is not None else
            "; a model that only works at one size exports with --static-size HxW")

    def fail(exc: Exception, when: str) -> ExportError:
        return ExportError(f"ONNX Runtime cannot run {what}{when}: "
                           f"{first_line(exc, limit=300)}",
                           fix="the exported graph is wrong for this input size" + hint)

    try:
        run = make(path)
    except Exception as exc:
        raise fail(exc, "") from None

    def guarded(x: np.ndarray) -> dict[str, np.ndarray]:
        try:
            return run(x)
        except Exception as exc:
            raise fail(exc, f" at {'x'.join(str(d) for d in x.shape)}") from None

    return guarded


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def _timed(compare, expected, runner, x, **kw) -> list[parity.ParityRow]:
    t0 = time.perf_counter()
    rows = compare(expected, runner(x), **kw)
    for r in rows:
        r.seconds = round(time.perf_counter() - t0, 3)
    return rows


def _checks(path: Path, names: list[str], trt: bool, label: str, *,
            static: bool = False) -> list[Finding]:
    findings = check_onnx_file(path, output_names=tuple(names), check_trt=True, static=static)
    out = []
    for f in findings:
        if f.check == "tensorrt-ops" and f.level == "error":
            if trt:
                f = Finding(f.level, f.check, f.message, f.nodes,
                            f"{f.fix} (or --no-trt-check to keep a graph for ONNX Runtime only)")
            else:
                f = Finding("warning", f.check, f.message, f.nodes, f.fix)
        out.append(Finding(f.level, f"{label}:{f.check}", f.message, f.nodes, f.fix))
    return out


def _fail_on_findings(console: Console | None, findings: list[Finding], what: str, *,
                      scripted: bool = False) -> None:
    if console is not None and any(f.level == "error" for f in findings):
        from segdeploy.export.report import findings_table

        console.print(findings_table(findings))
    try:
        raise_for_errors(findings, what)
    except ExportError as exc:
        if not scripted:
            raise
        from segdeploy.export.onnx_export import SCRIPTED_FIX

        raise ExportError(exc.what, fix=f"{SCRIPTED_FIX}; {exc.fix}" if exc.fix
                          else SCRIPTED_FIX) from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def _progress(console: Console | None, enabled: bool) -> Iterator[Progress]:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not enabled) as bar:
        yield bar
