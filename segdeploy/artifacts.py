"""The artifact facts every command shares: which suffix is which artifact, where a plan's
manifest lives, and how manifests and ONNX metadata are read and written. No torch.

A TensorRT plan stays a plain plan that trtexec loads; what segdeploy knows about it lives in
the sidecar `MODEL.plan.json` (MODEL.engine -> MODEL.engine.json, and so on).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# the file kinds live in artifact_kind (which sniffs bytes); re-exported for callers here
from segdeploy.artifact_kind import CHECKPOINT_SUFFIXES as CHECKPOINT_SUFFIXES
from segdeploy.artifact_kind import MANIFEST_SUFFIX as MANIFEST_SUFFIX
from segdeploy.artifact_kind import ONNX_SUFFIXES as ONNX_SUFFIXES
from segdeploy.artifact_kind import PLAN_SUFFIXES as PLAN_SUFFIXES
from segdeploy.artifact_kind import plan_manifest_path as plan_manifest_path
from segdeploy.atomic import atomic_path
from segdeploy.errors import ArtifactError
from segdeploy.manifest import ExportInfo, PlanManifest


def is_plan(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in PLAN_SUFFIXES


def is_onnx(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in ONNX_SUFFIXES


def rebuild_hint(plan: Path, manifest: PlanManifest | None = None) -> str:
    source = "MODEL.onnx"
    if manifest is not None and manifest.onnx_sha256:
        source += f" (the plan came from an ONNX with sha256 {manifest.onnx_sha256[:12]}...)"
    return f"rebuild {plan.name} on this machine: `segdeploy build {source}`"


def check_is_plan(plan: Path) -> None:
    """Refuse an ONNX, text or other non-plan file given as a plan, saying what it is (the
    missing-sidecar message would tell the user to rebuild something that is no plan)."""
    if not plan.is_file():
        return
    with plan.open("rb") as fh:
        head = fh.read(4096)
    kind = None
    if is_onnx(plan):
        kind = "an ONNX model"
    elif not is_plan(plan):  # a plan suffix is trusted: TensorRT itself judges the bytes
        try:
            if b"\0" in head:
                raise UnicodeDecodeError("utf-8", head, 0, 1, "binary")
            head.decode("utf-8")
            kind = "a text file" if head.strip() else "an empty file"
        except UnicodeDecodeError:
            kind = f"a {plan.suffix or 'suffix-less'} file"
    if kind is not None:
        fix = (f"run it with ONNX Runtime (--backend onnxruntime), or build a plan from it: "
               f"`segdeploy build {plan}`" if kind == "an ONNX model"
               else "give a .plan file written by `segdeploy build`, or an .onnx file")
        raise ArtifactError(f"{plan} is {kind}, not a TensorRT plan",
                            expected=f"a TensorRT plan ({', '.join(PLAN_SUFFIXES)}) with its "
                                     ".plan.json sidecar", fix=fix)


def read_plan_manifest(plan: str | os.PathLike[str]) -> PlanManifest:
    """Load the sidecar of `plan`; a missing, unreadable or malformed one is an ArtifactError."""
    plan = Path(plan)
    check_is_plan(plan)
    sidecar = plan_manifest_path(plan)
    if not sidecar.is_file():
        raise ArtifactError(
            f"{plan} has no manifest {sidecar.name} next to it",
            expected="the .plan.json sidecar that `segdeploy build` writes with every plan "
                     "(TensorRT version, GPU, profiles, model metadata)",
            fix=rebuild_hint(plan))
    try:
        data = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"manifest {sidecar} is unreadable ({exc})",
                            fix=rebuild_hint(plan)) from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"manifest {sidecar} holds a JSON {type(data).__name__}, "
                            "not a JSON object",
                            expected="a JSON object written by `segdeploy build`",
                            fix=rebuild_hint(plan))
    return PlanManifest.from_dict(data)


def manifest_text(manifest: PlanManifest) -> str:
    """The sidecar's bytes: indented, sorted JSON (diffs between builds stay readable)."""
    return json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n"


def write_plan_manifest(plan: str | os.PathLike[str], manifest: PlanManifest) -> Path:
    """Write the sidecar of `plan` atomically; returns its path."""
    path = plan_manifest_path(plan)
    with atomic_path(path) as tmp:
        tmp.write_text(manifest_text(manifest))
    return path


def read_export_info(path: str | os.PathLike[str]) -> ExportInfo:
    """Model metadata of an .onnx (its metadata_props, segdeploy.onnx_metadata) or a plan (its
    sidecar); anything else is an ArtifactError naming the suffixes segdeploy knows."""
    path = Path(path)
    if is_onnx(path):
        from segdeploy.onnx_metadata import read_onnx_export_info

        return read_onnx_export_info(path)
    if is_plan(path):
        return read_plan_manifest(path).export
    raise ArtifactError(f"cannot tell what {path.name} is from its suffix",
                        expected=f"one of {', '.join(ONNX_SUFFIXES + PLAN_SUFFIXES)}",
                        fix="`segdeploy info FILE` says what the file is")
