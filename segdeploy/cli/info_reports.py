"""`segdeploy info` on the JSON reports the commands write (bench, verify, eval, the export's
NAME.parity.json): the figures a person opens the file for, pass/fail and the machine, in a
few rows; `--json` still prints everything. Also the short lines for a card's intensity
mapping, graph tensors and a checkpoint's epoch.

Plain dicts only (no numpy): this module is imported when `info` runs.
"""

from __future__ import annotations

from typing import Any

Rows = list[tuple[str, str]]

#: kind name -> the command that writes it
REPORT_KINDS = {"bench report": "`segdeploy bench --json`",
                "verify report": "`segdeploy verify --json`",
                "eval report": "`segdeploy eval --json`",
                "export parity report": "`segdeploy export`, beside the ONNX"}


def report_kind(data: dict[str, Any]) -> str:
    """Which command wrote this JSON, from the keys each one always writes."""
    if "results" in data and "environment" in data:
        return "bench report"
    if "sizes" in data and "thresholds" in data and "passed" in data:
        return "verify report"
    if "confusion_matrix" in data and "metrics" in data:
        return "eval report"
    if isinstance(data.get("parity"), dict) and "rows" in data["parity"]:
        return "export parity report"
    return "JSON report"


def report_rows(data: dict[str, Any]) -> Rows | None:
    """The summary rows of a known report, None for any other JSON."""
    kind = data.get("kind")
    summarise = {"bench report": _bench, "verify report": _verify, "eval report": _eval,
                 "export parity report": _parity}.get(str(kind))
    if summarise is None:
        return None
    rows = [("kind", f"{kind} (written by {REPORT_KINDS[str(kind)]})")]
    try:
        return rows + summarise(data)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        return rows + [("note", f"could not summarise it ({type(exc).__name__}: {exc}); "
                                "--json prints it all")]


def _verdict(passed: object) -> str:
    return {True: "passed", False: "FAILED"}.get(passed, "no verdict")  # type: ignore[call-overload]


def _machine(env: dict[str, Any]) -> str:
    cores = env.get("cores") or {}
    gpus = ", ".join(env.get("gpus") or []) or "none"
    return (f"{env.get('cpu', '?')} ({cores.get('usable', '?')} usable cores), gpu: {gpus}, "
            f"{env.get('os', '?')}; {str(env.get('date', '?'))[:16].replace('T', ' ')}")


def _bench(data: dict[str, Any]) -> Rows:
    from segdeploy.dims import format_dims

    results = data["results"]
    settings = data.get("settings") or {}
    rows: Rows = [("machine", _machine(data["environment"]))]
    loop = (f"{settings['iterations']} iterations" if settings.get("iterations")
            else f"{settings.get('duration_s')} s" if settings.get("duration_s") else "?")
    rows.append(("measured", f"{len({r['backend'] for r in results})} backend(s), {loop} each, "
                             f"threads {settings.get('threads') or 'default'}"))
    shapes: list[list[int]] = []
    for r in results:
        if r["shape"] not in shapes:
            shapes.append(r["shape"])
    for shape in shapes:
        at = sorted((r for r in results if r["shape"] == shape), key=lambda r: r["mean_ms"])
        fast, slow = at[0], at[-1]
        line = (f"fastest {fast['backend']} {fast['mean_ms']:.3g} ms "
                f"({fast['throughput']:.1f} img/s)")
        if len(at) > 1 and fast["mean_ms"] > 0:
            line += (f", {slow['mean_ms'] / fast['mean_ms']:.2f}x faster than the slowest, "
                     f"{slow['backend']} {slow['mean_ms']:.3g} ms")
        rows.append((f"mean ms {format_dims(shape)}", line))
    flagged = sum(bool(r.get("warnings")) for r in results)
    if flagged:
        rows.append(("trust", f"{flagged} of {len(results)} rows have too few samples or high "
                              "spread (--json: each row's warnings)"))
    for name, why in (data.get("skipped") or {}).items():
        rows.append((f"skipped {name}", str(why).splitlines()[0][:120]))
    return rows


def _verify(data: dict[str, Any]) -> Rows:
    th = data["thresholds"]
    need = f"agreement >= {th['min_agreement']:g}%" + (
        f", mIoU drop <= {th['max_miou_drop']:g} points"
        if th.get("max_miou_drop") is not None else "")
    rows: Rows = [
        ("result", _verdict(data["passed"]) + f" (needed: {need})"),
        ("compared", f"{data.get('engine_name')} ({data.get('precision')}, "
                     f"{data.get('backend')}) vs {data.get('checkpoint')} in PyTorch"),
        ("images", f"{data.get('images')} {data.get('data')} {data.get('split')} images")]
    for r in data["sizes"]:
        text = (f"agreement {r['agreement']:.3f}%, max |logit error| "
                f"{r['abs_error']['max']:.1e}")
        if r.get("miou_reference") is not None and r.get("miou_engine") is not None:
            text += (f", mIoU {r['miou_reference']:.2f} -> {r['miou_engine']:.2f} "
                     f"(drop {r.get('miou_drop', 0):+.2f})")
        text += "" if not r.get("failures") else " FAIL: " + "; ".join(r["failures"])
        rows.append(("size " + "x".join(map(str, r["size"])), text))
    return rows


def _eval(data: dict[str, Any]) -> Rows:
    m = data["metrics"]
    classes = data.get("classes") or [str(i) for i in range(len(m["iou"]))]
    rows: Rows = [
        ("model", f"{data.get('arch')} from {data.get('checkpoint')}"),
        ("data", f"{data.get('data')} {data.get('split')}, {data.get('images')} images, "
                 f"{data.get('seconds', '?')} s"),
        ("mIoU", f"{m['mean_iou']:.4f}, pixel acc {m.get('pixel_accuracy', float('nan')):.4f}, "
                 f"mean acc {m.get('mean_accuracy', float('nan')):.4f}"),
        ("IoU per class", ", ".join(f"{c} {_maybe(v)}" for c, v in zip(classes, m["iou"],
                                                                      strict=False)))]
    if data.get("intensity") is not None:
        rows.append(("intensity", intensity_line(data["intensity"])))
    return rows


def _maybe(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _parity(data: dict[str, Any]) -> Rows:
    parity = data["parity"]
    rows: Rows = [("result", _verdict(parity.get("passed"))),
                  ("files", ", ".join(str(data[k]) for k in ("onnx", "fp16_onnx") if data.get(k))
                   + f" (opset {data.get('opset')}) from {data.get('source')}")]
    for r in parity["rows"]:
        verdict = {True: "pass", False: "FAIL", None: "info"}.get(r.get("passed"), "?")
        rows.append((f"{r['graph']} {r['inputs']}",
                     f"{verdict}: max|d| {r['max_abs']:.1e}, argmax "
                     f"{r['argmax_agreement']:.3%} ({r.get('threshold', '')})"))
    if data.get("fp32_nodes"):
        rows.append(("kept fp32", f"{len(data['fp32_nodes'])} node(s) in the FP16 graph"))
    errors = [f for f in data.get("findings") or [] if f.get("level") == "error"]
    if data.get("findings"):
        rows.append(("graph checks", f"{len(data['findings'])} finding(s), "
                                     f"{len(errors)} error(s)"))
    return rows


def intensity_line(intensity: dict[str, Any] | None) -> str:
    """What happens to an image's pixel values, in one short line (the source: --json)."""
    data = intensity or {}
    kind = data.get("kind") or "uint8"
    lo, hi = (data.get("percentiles") or [0.5, 99.5])[:2]
    if kind == "window":
        wide = f"{data.get('low'):g}..{data.get('high'):g} -> 0..255"
    else:
        wide = f"each image's {lo:g}-{hi:g}th percentiles -> 0..255"
    return f"8-bit as is; 16-bit/float: {wide}"


_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)":
           "float64", "tensor(uint8)": "uint8", "tensor(int64)": "int64",
           "tensor(int32)": "int32"}


def tensor_row(t: dict[str, Any]) -> tuple[str, str]:
    """('graph input', 'input: float32, batch x 1 x height x width') for one graph tensor."""
    dtype = _DTYPES.get(str(t.get("dtype")), str(t.get("dtype")))
    shape = " x ".join(str(d) for d in t.get("shape") or []) or "scalar"
    return f"graph {t.get('mode')}", f"{t.get('name')}: {dtype}, {shape}"


def epoch_line(training: dict[str, Any]) -> str | None:
    """'4 of 20, the last epoch (resume with --resume ...); best was epoch 3' for a checkpoint."""
    epoch = training.get("epoch")
    if epoch is None:
        return None
    total = training.get("epochs")
    text = f"{epoch}" + (f" of {total}" if total else "")
    best, miou = training.get("best_epoch"), training.get("best_miou")
    best_text = f"the best was epoch {best}" + (f" (val mIoU {miou:.4f})" if miou else "")
    if training.get("resumable"):
        return f"{text}: the last epoch trained, for --resume; {best_text}"
    if best in (None, epoch):
        return f"{text}: the best epoch by val mIoU"
    return f"{text}; {best_text}"
