"""`segdeploy info FILE`: what an artifact is, what it was made from, and how to feed it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from segdeploy.errors import ArtifactError, UsageError


def describe_artifact(path: Path) -> dict[str, Any]:
    """Read a .pt checkpoint, an .onnx graph, a .plan (via its .plan.json) or a sidecar JSON."""
    # imported here, not at module level: every CLI command imports this module at start-up
    from segdeploy.artifacts import (
        CHECKPOINT_SUFFIXES,
        MANIFEST_SUFFIX,
        ONNX_SUFFIXES,
        PLAN_SUFFIXES,
        plan_manifest_path,
    )

    known = ("a " + ", ".join(CHECKPOINT_SUFFIXES + ONNX_SUFFIXES + PLAN_SUFFIXES)
             + f" or {MANIFEST_SUFFIX} file")
    if not path.exists():
        raise UsageError(f"{path} does not exist", expected=known)
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        from segdeploy.reference_models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        n_params = sum(int(t.numel()) for t in ckpt.state_dict.values())
        extra = ckpt.extra or {}
        config = extra.get("train_config")
        config = config if isinstance(config, dict) else {}
        return {"kind": "segdeploy checkpoint", "parameters": n_params,
                "card": ckpt.card.to_dict(), "epoch": extra.get("epoch"),
                "training": {"epoch": extra.get("epoch"), "epochs": config.get("epochs"),
                             "best_epoch": extra.get("best_epoch"),
                             "best_miou": extra.get("best_miou"),
                             "resumable": "optimizer" in extra}}
    if suffix in ONNX_SUFFIXES:
        return _describe_onnx(path)
    if suffix in PLAN_SUFFIXES:
        sidecar = plan_manifest_path(path)
        if not sidecar.exists():
            raise ArtifactError(f"{path} has no manifest {sidecar.name} beside it",
                                fix="rebuild it with `segdeploy build MODEL.onnx`")
        from segdeploy.runtime.plan_compat import read_plan_manifest

        info = read_plan_manifest(path).to_dict()  # type-checked, unlike the raw JSON
        info["kind"] = "TensorRT plan (manifest " + sidecar.name + ")"
        info["plan_bytes"] = path.stat().st_size
        return info
    if suffix == MANIFEST_SUFFIX:
        from segdeploy.cli.info_reports import report_kind

        info = _read_json(path)
        info.setdefault("kind", report_kind(info))
        return info
    raise UsageError(f"unknown artifact type {suffix!r} for {path}",
                     expected=known)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not readable JSON ({exc})",
                            expected="a JSON file written by segdeploy",
                            fix="copy the file again or re-create it") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} holds a JSON {type(data).__name__}, not a JSON object",
                            expected="a JSON report or manifest written by segdeploy",
                            fix="re-create it with the segdeploy command that writes it")
    return data


def _describe_onnx(path: Path) -> dict[str, Any]:
    import onnxruntime as ort

    from segdeploy.errors import first_line
    from segdeploy.manifest import ExportInfo
    from segdeploy.onnx_metadata import read_metadata_props

    props = read_metadata_props(path)
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ArtifactError(f"{path} is not a loadable ONNX model ({first_line(exc)})",
                            fix="re-export it with `segdeploy export`") from exc
    io = [{"name": t.name, "mode": mode, "dtype": t.type, "shape": list(t.shape)}
          for mode, ts in (("input", sess.get_inputs()), ("output", sess.get_outputs()))
          for t in ts]
    out: dict[str, Any] = {"kind": "ONNX model", "bytes": path.stat().st_size, "io": io}
    try:
        out["export"] = ExportInfo.from_metadata_props(props, source=str(path)).to_dict()
    except ArtifactError:
        out["export"] = None
        out["note"] = "no segdeploy metadata (not written by `segdeploy export`)"
    return out


def summary_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """The few lines a person wants first: what it is, what it predicts, how to feed it."""
    from segdeploy.cli.info_reports import epoch_line, intensity_line, report_rows, tensor_row

    report = report_rows(info)
    if report is not None:
        return report
    export = info.get("export") or {}
    card = info.get("card") or export.get("card") or {}
    rows: list[tuple[str, str]] = [("kind", str(info.get("kind", "?")))]
    epoch = epoch_line(info.get("training") or {})
    if epoch:
        rows.append(("epoch", epoch))
    if card:
        rows += [("model", f"{card.get('arch')} {card.get('config', {})}"),
                 ("classes", ", ".join(card.get("classes", []))),
                 ("input", f"{card.get('in_channels')} channel(s) ({card.get('channel_mode')}), "
                           f"mean {card.get('mean')} std {card.get('std')} on image/255"),
                 ("geometry", _geometry(card))]
        try:
            rows.append(("intensity", intensity_line(card.get("intensity"))))
        except (TypeError, ValueError):  # a foreign or broken card still gets described
            rows.append(("intensity", str(card.get("intensity"))))
        data = card.get("trained_on") or {}
        if data:
            rows.append(("trained on", f"{data.get('name')} ({data.get('images', '?')} images)"))
        metrics = card.get("metrics") or {}
        if metrics.get("mean_iou") is not None:
            rows.append(("val metrics", f"mIoU {metrics['mean_iou']:.4f}, pixel acc "
                                        f"{metrics.get('pixel_accuracy', float('nan')):.4f}"))
        if isinstance(card.get("crf"), dict):
            rows.append(("dense CRF", _crf_line(card["crf"])))
    if export:
        rows.append(("graph", f"{export.get('precision')} opset {export.get('opset')}, input "
                              f"{export.get('input_dtype')} {export.get('input_layout')}, "
                              f"outputs {', '.join(export.get('output_names', []))}"))
        if export.get("fp32_nodes"):
            rows.append(("kept fp32", f"{len(export['fp32_nodes'])} node(s)"))
    for key in ("tensorrt_version", "precision", "compute_capability", "gpu_name"):
        if info.get(key):
            rows.append((key.replace("_", " "), str(info[key])))
    rows += [tensor_row(t) for t in info.get("io", [])]
    if info.get("parameters"):
        rows.append(("parameters", f"{info['parameters']:,}"))
    for key in ("bytes", "plan_bytes"):
        if info.get(key):
            rows.append(("size", f"{info[key] / 1e6:.1f} MB"))
    if info.get("note"):
        rows.append(("note", str(info["note"])))
    return rows


def _geometry(card: dict[str, Any]) -> str:
    """Stride, sizes and training size; "unknown" where a foreign model's card never had them
    (TorchScript/.pt2 exports and `segdeploy card` list them in config["unknown"])."""
    config = card.get("config") or {}
    unknown = set(config.get("unknown") or [])

    def val(key: str) -> str:
        return "unknown" if key in unknown else str(card.get(key))

    parts = [f"stride {val('output_stride')}", f"min size {val('min_size')}"]
    if (card.get("size_multiple") or 1) > 1:
        parts.append(f"H, W multiples of {card['size_multiple']}")
    if card.get("static_size"):
        parts.append("fixed size {}x{}".format(*card["static_size"]))
    parts += [f"output {card.get('output_mode')}", f"trained at {val('train_size')}"]
    return ", ".join(parts)


@click.command("info")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def command(file: Path, as_json: bool) -> None:
    """Describe a checkpoint, ONNX model, TensorRT plan or report (--json for everything)."""
    info = describe_artifact(file)
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(file), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in summary_rows(info):
        table.add_row(key, value)
    Console().print(table)


def _crf_line(crf: dict[str, Any]) -> str:
    """The tuned CRF in one line: its parameters and what tuning measured."""
    params = ", ".join(f"{k} {v:g}" for k, v in (crf.get("params") or {}).items()
                       if isinstance(v, int | float))
    tuned = crf.get("tuned_on") or {}
    without, with_ = tuned.get("without") or {}, tuned.get("with") or {}
    if "mean_iou" in without and "mean_iou" in with_:
        params += (f" (crf-tune on {tuned.get('data')}: mIoU {without['mean_iou']:.4f} -> "
                   f"{with_['mean_iou']:.4f})")
    return params

