"""`segdeploy info FILE`: what an artifact is, what it was made from, and how to feed it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from segdeploy.errors import ArtifactError, UsageError


def describe_artifact(path: Path) -> dict[str, Any]:
    """Read a .pt checkpoint, an .onnx graph, a .plan (via its .plan.json) or a sidecar JSON."""
    if not path.exists():
        raise UsageError(f"{path} does not exist", expected="a .pt, .onnx, .plan or .json file")
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        from segdeploy.reference_models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        n_params = sum(int(t.numel()) for t in ckpt.state_dict.values())
        return {"kind": "segdeploy checkpoint", "parameters": n_params,
                "card": ckpt.card.to_dict(),
                "epoch": (ckpt.extra or {}).get("epoch")}
    if suffix == ".onnx":
        return _describe_onnx(path)
    if suffix in (".plan", ".engine"):
        sidecar = path.with_name(path.name + ".json")
        if not sidecar.exists():
            raise ArtifactError(f"{path} has no manifest {sidecar.name} beside it",
                                fix="rebuild it with `segdeploy build MODEL.onnx`")
        info = _read_json(sidecar)
        info["kind"] = "TensorRT plan (manifest " + sidecar.name + ")"
        info["plan_bytes"] = path.stat().st_size
        return info
    if suffix == ".json":
        info = _read_json(path)
        info.setdefault("kind", "JSON report")
        return info
    raise UsageError(f"unknown artifact type {suffix!r} for {path}",
                     expected=".pt, .onnx, .plan/.engine or .json")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} does not hold a JSON object")
    return data


def _describe_onnx(path: Path) -> dict[str, Any]:
    import onnxruntime as ort

    from segdeploy.manifest import ExportInfo

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ArtifactError(f"{path} is not a loadable ONNX model ({str(exc).splitlines()[0]})",
                            fix="re-export it with `segdeploy export`") from exc
    props = sess.get_modelmeta().custom_metadata_map
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


@click.command("info")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON instead of a summary.")
def command(file: Path, as_json: bool) -> None:
    """Describe a checkpoint, ONNX model, TensorRT plan or report."""
    info = describe_artifact(file)
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True, default=str))
        return
    from rich.console import Console
    from rich.pretty import Pretty

    console = Console()
    console.print(f"[bold]{file}[/]: {info.get('kind', '?')}")
    console.print(Pretty({k: v for k, v in info.items() if k != "kind"}, expand_all=False))
