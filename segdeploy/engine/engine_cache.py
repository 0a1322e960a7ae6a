"""Engine cache: reuse a plan when the very same build was done before on this kind of GPU.

The key is the sha256 of (ONNX sha256, build flags, TensorRT version, GPU compute capability),
so any change to one of them misses. Entries are `KEY.plan` + `KEY.plan.json`, written
atomically; an entry whose plan does not match its recorded sha256 is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from segdeploy.artifacts import plan_manifest_path, read_plan_manifest, write_plan_manifest
from segdeploy.atomic import write_bytes_atomic
from segdeploy.digest import sha256_bytes
from segdeploy.errors import SegdeployError, UsageError
from segdeploy.manifest import PlanManifest

CACHE_SCHEMA = 1






def cache_key(*, onnx_sha256: str, flags: dict[str, Any], tensorrt_version: str,
              compute_capability: str) -> str:
    """A stable hex key: equal inputs give equal keys, any changed input another key."""
    if not onnx_sha256 or not tensorrt_version or not compute_capability:
        raise ValueError("cache_key needs the ONNX sha256, TensorRT version and compute capability")
    payload = {"schema": CACHE_SCHEMA, "onnx_sha256": onnx_sha256, "flags": flags,
               "tensorrt_version": tensorrt_version, "compute_capability": compute_capability}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set, frozenset)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cache key flag of type {type(value).__name__} is not JSON-serialisable")


class EngineCache:
    """A folder of `KEY.plan` + `KEY.plan.json` pairs."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)

    def prepare(self) -> EngineCache:
        """Create the folder (or fail clearly) before any long build starts."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the engine cache folder {self.folder} ({exc})",
                             fix="pass a --cache-dir you can write to") from exc
        if not os.access(self.folder, os.W_OK):
            raise UsageError(f"engine cache folder {self.folder} is not writable",
                             fix="pass a --cache-dir you can write to")
        return self

    def paths(self, key: str) -> tuple[Path, Path]:
        plan = self.folder / f"{key}.plan"
        return plan, plan_manifest_path(plan)

    def lookup(self, key: str) -> tuple[bytes, PlanManifest] | None:
        """The cached plan and manifest, or None when absent, unreadable or inconsistent."""
        plan_path, manifest_path = self.paths(key)
        if not plan_path.is_file() or not manifest_path.is_file():
            return None
        try:
            manifest = read_plan_manifest(plan_path)
            plan = plan_path.read_bytes()
        except (OSError, ValueError, SegdeployError):
            return None
        if not manifest.plan_sha256 or sha256_bytes(plan) != manifest.plan_sha256:
            return None
        return plan, manifest

    def store(self, key: str, plan: bytes, manifest: PlanManifest) -> None:
        plan_path, manifest_path = self.paths(key)
        write_bytes_atomic(plan_path, plan)
        write_plan_manifest(plan_path, manifest)
