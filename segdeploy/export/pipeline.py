"""`segdeploy export` end to end: load, export FP32, convert FP16, check, compare, write.

Every file is written under a temporary name in the target folder and renamed to
NAME.onnx / NAME.fp16.onnx / NAME.parity.json only when every check passed, so a failed
export leaves no file behind (and an older good export is not replaced).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from segdeploy.atomic import atomic_path, check_output_path
from segdeploy.errors import ParityError, UsageError
from segdeploy.export import parity as P
from segdeploy.export.findings import Finding
from segdeploy.export.graph_checks import check_onnx_file, raise_for_errors
from segdeploy.export.sources import SourceFacts
from segdeploy.manifest import ExportInfo


@dataclass
class ExportOptions:
    output: str | None = None
    opset: int = 18
    fp16: bool = True
    fp16_bound: float = 512.0
    with_preprocess: bool = False
    with_argmax: bool = False
    check_sizes: list[str] | None = None
    max_side: int = P.DEFAULT_MAX_SIDE
    trust_code: bool = False
    facts: SourceFacts = field(default_factory=SourceFacts)
    data: str | None = None
    fp16_images: int = 16
    trt_check: bool = True


@dataclass
class ExportResult:
    onnx_path: Path
    fp16_path: Path | None
    parity_path: Path
    info: ExportInfo
    info_fp16: ExportInfo | None
    parity: P.ParityReport
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


def run_export(source_path: str | Path, options: ExportOptions | None = None, *,
               console: Any = None, progress: bool = False) -> ExportResult:
    """Export `source_path`; raise ExportError / ParityError (after printing) on failure."""
    from segdeploy.export import onnx_export as E
    from segdeploy.export.sources import load_source

    opts = options or ExportOptions()
    if opts.opset not in E.SUPPORTED_OPSETS:
        raise UsageError(f"--opset {opts.opset} is not supported",
                         expected="17 (TensorRT 8.5/8.6) or 18 (default)")
    src_path = Path(source_path)
    onnx_path, fp16_path, parity_path = output_paths(src_path, opts.output, opts.fp16)
    timings: dict[str, float] = {}
    notes: list[str] = []
    steps = 6 + (2 if opts.fp16 else 0)
    with _progress(console, progress) as bar, contextlib.ExitStack() as stack:
        task = bar.add_task("loading", total=steps)

        def step(name: str, t0: float) -> float:
            now = time.perf_counter()
            timings[name] = round(now - t0, 3)
            bar.advance(task)
            return now

        t = t_start = time.perf_counter()
        src = load_source(src_path, trust_code=opts.trust_code, facts=opts.facts)
        notes += src.notes
        card = src.card
        wrapper = E.DeployWrapper(src.model, mean=card.mean, std=card.std,
                                  preprocess=opts.with_preprocess,
                                  argmax=opts.with_argmax).eval()
        names = E.output_names(opts.with_argmax)
        t = step("load", t)

        bar.update(task, description=f"exporting FP32 ONNX (opset {opts.opset})")
        model = E.export_onnx(wrapper, card, opset=opts.opset, kind=src.kind)
        info = ExportInfo(
            card=card, output_names=names,
            input_dtype="uint8" if opts.with_preprocess else "float32",
            preprocess_in_graph=opts.with_preprocess, argmax_in_graph=opts.with_argmax,
            precision="fp32", opset=opts.opset, source_sha256=src.sha256,
            input_layout="NHWC" if opts.with_preprocess else "NCHW")
        E.set_metadata(model, info.to_metadata_props())
        tmp32 = stack.enter_context(atomic_path(onnx_path))
        onnx.save(model, str(tmp32))
        del model
        t = step("export_fp32", t)

        bar.update(task, description="checking the FP32 graph")
        findings = _checks(tmp32, names, opts.trt_check, "fp32")
        _fail_on_findings(console, findings, "the FP32 graph")
        t = step("check_fp32", t)

        bar.update(task, description="loading sample images")
        images, source_desc = P.real_images(card, dataset=opts.data, limit=opts.fp16_images)
        if not images:
            notes.append(f"real images unavailable: {source_desc}; used synthetic smooth images")
            h, w = E.example_size(card)
            images = list(P.synthetic_images(8, max(h, 129), max(w, 161), card.in_channels))
            source_desc = f"synthetic x{len(images)} ({images[0].shape[0]}x" \
                          f"{images[0].shape[1]})"
        real_feeds = [P.graph_input(b, card, preprocess=opts.with_preprocess)
                      for b in P.batches(images)]
        t = step("images", t)

        fp16_reasons: dict[str, str] | None = None
        info16 = None
        run16 = None
        if opts.fp16 and fp16_path is not None:
            from segdeploy.export.fp16 import convert_to_mixed_fp16

            bar.update(task, description="converting to mixed FP16")
            model32 = onnx.load(str(tmp32))
            model16, fp16_reasons = convert_to_mixed_fp16(
                model32, [{"input": f} for f in real_feeds[:2]], bound=opts.fp16_bound)
            del model32
            info16 = ExportInfo.from_dict({**info.to_dict(), "precision": "fp16",
                                           "fp32_nodes": fp16_reasons})
            E.set_metadata(model16, info16.to_metadata_props())
            tmp16 = stack.enter_context(atomic_path(fp16_path))
            onnx.save(model16, str(tmp16))
            del model16
            t = step("convert_fp16", t)
            bar.update(task, description="checking the FP16 graph")
            f16 = _checks(tmp16, names, opts.trt_check, "fp16")
            _fail_on_findings(console, f16, "the FP16 graph")
            findings += f16
            run16 = P.onnx_runner(str(tmp16))
            t = step("check_fp16", t)

        report = P.ParityReport(fp16_images=source_desc)
        specs = opts.check_sizes or P.default_sizes(card, opts.max_side)
        sizes, size_notes = P.parse_sizes(specs, card)
        report.notes += size_notes
        ref = P.torch_runner(wrapper, names)
        run32 = P.onnx_runner(str(tmp32))
        for i, (n, h, w) in enumerate(sizes):
            bar.update(task, description=f"parity at {n}x{card.in_channels}x{h}x{w}")
            x = P.graph_input(P.synthetic_images(n, h, w, card.in_channels, seed=i + 1), card,
                              preprocess=opts.with_preprocess)
            label = P.size_label(n, card.in_channels, h, w)
            expected = ref(x)
            report.rows += _timed(P.compare, expected, run32, x, graph="fp32", inputs=label,
                                  gate="fp32")
            if run16 is not None:
                report.rows += _timed(P.compare, expected, run16, x, graph="fp16",
                                      inputs=label, gate="info")
            del expected
        t = step("parity_sizes", t)

        bar.update(task, description="parity on sample images")
        expected_all = [ref(f) for f in real_feeds]
        for graph, runner, gate in (("fp32", run32, "fp32"), ("fp16", run16, "fp16")):
            if runner is None:
                continue
            t0 = time.perf_counter()
            got = [runner(f) for f in real_feeds]
            a, b = P.merge(expected_all, got)
            rows = P.compare(a, b, graph=graph, inputs=source_desc, gate=gate)
            for r in rows:
                r.seconds = round(time.perf_counter() - t0, 3)
            report.rows += rows
        t = step("parity_images", t)
        timings["total"] = round(time.perf_counter() - t_start, 3)
        del run32, run16

        if console is not None:
            from segdeploy.export.report import print_report

            print_report(console, parity=report, findings=findings, fp32_nodes=fp16_reasons,
                         notes=notes)
        if not report.passed:
            bad = report.failures()[0]
            raise ParityError(
                f"{len(report.failures())} parity check(s) failed, e.g. the {bad.graph} graph "
                f"on {bad.inputs} ({bad.output}: argmax agreement "
                f"{bad.argmax_agreement:.3%}, max |diff| {_num(bad.max_abs)}; gate "
                f"{bad.threshold})",
                fix="see the table above; no files were written. For FP16, raise precision "
                    "with a lower --fp16-bound, or use --no-fp16")
        if fp16_path is None and Path(f"{onnx_path.with_suffix('')}.fp16.onnx").exists():
            notes.append("an older FP16 file exists beside the output and was not updated "
                         "(--no-fp16)")
        tmp_json = stack.enter_context(atomic_path(parity_path))
        payload = {"source": str(src_path), "source_kind": src.kind,
                   "onnx": onnx_path.name, "fp16_onnx": fp16_path.name if fp16_path else None,
                   "opset": opts.opset, "fp16_bound": opts.fp16_bound, "timings_s": timings,
                   "fp32_nodes": fp16_reasons or {}, "findings": [f.to_dict() for f in findings],
                   "notes": notes, "parity": report.to_dict(), "export": info.to_dict()}
        tmp_json.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
        # leaving the ExitStack renames every temporary file to its final name
    return ExportResult(onnx_path, fp16_path, parity_path, info, info16, report, findings,
                        timings, notes)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def _timed(compare, expected, runner, x, **kw) -> list[P.ParityRow]:
    t0 = time.perf_counter()
    rows = compare(expected, runner(x), **kw)
    for r in rows:
        r.seconds = round(time.perf_counter() - t0, 3)
    return rows


def _checks(path: Path, names: list[str], trt: bool, label: str) -> list[Finding]:
    findings = check_onnx_file(path, output_names=tuple(names), check_trt=True)
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


def _fail_on_findings(console: Any, findings: list[Finding], what: str) -> None:
    if console is not None and any(f.level == "error" for f in findings):
        from segdeploy.export.report import findings_table

        console.print(findings_table(findings))
    raise_for_errors(findings, what)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def _progress(console: Any, enabled: bool):
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not enabled) as bar:
        yield bar
