"""Refuse a TensorRT plan before deserialising it when it cannot run here.

A plan is tied to the TensorRT version and the GPU (compute capability) it was built on;
TensorRT itself reports a mismatch as a cryptic log line and a None engine. The `.plan.json`
sidecar (segdeploy.manifest.PlanManifest) records both, so these pure functions can say what
is wrong and how to fix it (rebuild with `segdeploy build`), and are tested without TensorRT.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from segdeploy.artifacts import (
    PLAN_SUFFIXES,
    plan_manifest_path,
    read_plan_manifest,
)
from segdeploy.artifacts import rebuild_hint as _rebuild_hint
from segdeploy.digest import sha256_file
from segdeploy.errors import ArtifactError
from segdeploy.manifest import PlanManifest

# the shared artifact facts, re-exported for the runtime's callers
__all__ = ["PLAN_SUFFIXES", "manifest_path", "read_plan_manifest", "check_plan_file",
           "check_plan_compat", "check_tensorrt_version", "check_compute_capability",
           "parse_version"]

manifest_path = plan_manifest_path


def check_plan_file(plan: str | os.PathLike[str], manifest: PlanManifest | None, *,
                    verify_sha256: bool = True) -> None:
    """The plan exists, is not empty and (when recorded) has the manifest's sha256."""
    plan = Path(plan)
    if not plan.is_file():
        raise ArtifactError(f"TensorRT plan {plan} does not exist",
                            fix="check the path, or build one with `segdeploy build MODEL.onnx`")
    if plan.stat().st_size == 0:
        raise ArtifactError(f"TensorRT plan {plan} is empty", fix=_rebuild_hint(plan, manifest))
    if verify_sha256 and manifest is not None and manifest.plan_sha256:
        actual = sha256_file(plan)
        if actual != manifest.plan_sha256:
            raise ArtifactError(
                f"TensorRT plan {plan} does not match its manifest (sha256 {actual[:12]}... "
                f"instead of {manifest.plan_sha256[:12]}...): it is truncated, corrupt or "
                "belongs to another manifest", fix=_rebuild_hint(plan, manifest))


def parse_version(text: str) -> tuple[int, ...]:
    """'10.3.0.26' -> (10, 3, 0, 26); non-numeric tails ('8.6.1.post1') are dropped."""
    parts = []
    for piece in str(text).strip().split("."):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    if not parts:
        raise ArtifactError(f"cannot read the TensorRT version {text!r}",
                            expected="a version like '10.3.0'")
    return tuple(parts)


#: (built major, runtime major) pairs a version-compatible plan may cross. TensorRT's docs
#: ("Version Compatibility", 10.x and 11.x; 11.x support matrix): plans built with 8.6+ run on
#: TensorRT 9 and 10, plans built with 10.x run on 11; no other pair (8 -> 11 is refused).
_VC_CROSS_MAJOR = {(8, 9), (8, 10), (9, 10), (10, 11)}
#: version compatibility exists from TensorRT 8.6 on (plan and runtime)
_VC_MIN = (8, 6)


def check_tensorrt_version(manifest: PlanManifest, runtime_version: str, *,
                           plan: str | os.PathLike[str] = "model.plan") -> None:
    """Same major.minor.patch, or for a version-compatible plan: not older than the build,
    within the same major or across a major step TensorRT supports (8->9/10, 9->10, 10->11)."""
    plan = Path(plan)
    built = parse_version(manifest.tensorrt_version)
    here = parse_version(runtime_version)
    if manifest.build_flags.get("version_compatible"):
        # A version-compatible plan runs on any later runtime of its major version and on the
        # next major versions TensorRT lists; the old rule (same major only) refused an 8.6
        # version-compatible plan on TensorRT 10 and a 10.x one on TensorRT 11.
        ok = (built[:2] >= _VC_MIN and here[:3] >= built[:3]
              and (built[0] == here[0] or (built[0], here[0]) in _VC_CROSS_MAJOR))
        newer = sorted({m for b, m in _VC_CROSS_MAJOR if b == built[0]})
        expected = (f"TensorRT {manifest.tensorrt_version} or newer within {built[0]}.x"
                    + "".join(f" or {m}.x" for m in newer))
    else:
        ok = built[:3] == here[:3]
        expected = f"TensorRT {'.'.join(map(str, built[:3]))} (plans do not move across versions)"
    if not ok:
        raise ArtifactError(
            f"{plan.name} was built with TensorRT {manifest.tensorrt_version} but this machine "
            f"has TensorRT {runtime_version}", expected=expected,
            fix=_rebuild_hint(plan, manifest))


def check_compute_capability(manifest: PlanManifest, compute_capability: str, *,
                             plan: str | os.PathLike[str] = "model.plan") -> None:
    """Same GPU architecture, or any Ampere+ GPU for a hardware-compatible plan."""
    plan = Path(plan)
    built = manifest.compute_capability
    if not built:
        return  # an older manifest without it: TensorRT's own check is the last word
    level = str(manifest.build_flags.get("hardware_compatibility", "")).lower()
    if level in ("ampere_plus", "ampere+"):
        ok = parse_version(compute_capability) >= (8, 0)
        expected = "an Ampere or newer GPU (compute capability >= 8.0)"
    else:
        ok = parse_version(built)[:2] == parse_version(compute_capability)[:2]
        expected = f"a GPU of compute capability {built} ({manifest.gpu_name or 'the build GPU'})"
    if not ok:
        raise ArtifactError(
            f"{plan.name} was built for compute capability {built} "
            f"({manifest.gpu_name or 'unknown GPU'}) but this GPU is {compute_capability}",
            expected=expected, fix=_rebuild_hint(plan, manifest))


def check_plan_compat(manifest: PlanManifest, *, tensorrt_version: str,
                      compute_capability: str, plan: str | os.PathLike[str] = "model.plan") -> None:
    """Both checks; raise ArtifactError with a rebuild hint on the first mismatch."""
    check_tensorrt_version(manifest, tensorrt_version, plan=plan)
    check_compute_capability(manifest, compute_capability, plan=plan)
