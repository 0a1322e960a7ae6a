"""The one reader (and writer) of an ONNX file's `metadata_props`: where segdeploy keeps the
model card (docs/ARCHITECTURE.md). No torch, no onnx package, no ONNX Runtime session.

Reading walks the top level of the ModelProto in protobuf's wire format and seeks past the
graph, so a 500 MB VGG file is read in microseconds and a runtime-only install (or a machine
whose ONNX Runtime cannot load the graph) still knows what the file is. Writing needs the
onnx package (`segdeploy card`, `export`, `quantize`), imported when called.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from segdeploy.errors import ArtifactError, require
from segdeploy.manifest import ExportInfo
from segdeploy.onnx_wire import NotOnnxError, scan_model_proto


def read_metadata_props(path: str | os.PathLike[str]) -> dict[str, str]:
    """All metadata_props of an ONNX file; a file that is no ONNX model is an ArtifactError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            props, has_graph = scan_model_proto(fh, size)
    except OSError as exc:
        raise ArtifactError(f"cannot read {path} ({exc.strerror or exc})",
                            fix="check the path and its permissions") from None
    except NotOnnxError as exc:
        from segdeploy.artifact_kind import wrong_kind

        if (other := wrong_kind(path, "onnx")) is not None:
            raise other from None
        raise ArtifactError(f"{path} is not a complete ONNX model ({exc})",
                            expected="an ONNX file (a serialized onnx.ModelProto)",
                            fix="the file may be truncated or of another kind: "
                                "`segdeploy info FILE` says what it is") from None
    if not has_graph:
        raise ArtifactError(f"{path} holds no ONNX graph",
                            expected="an ONNX model with a graph",
                            fix="`segdeploy info FILE` says what the file is")
    return props


def read_onnx_export_info(path: str | os.PathLike[str], *, card_hint: str = "") -> ExportInfo:
    """The segdeploy card of an ONNX file (ArtifactError naming `segdeploy card` without one)."""
    return ExportInfo.from_metadata_props(read_metadata_props(path), source=str(path),
                                          card_hint=card_hint)


def set_metadata(model: Any, props: dict[str, str]) -> None:
    """Replace these keys in an onnx.ModelProto's metadata_props (other keys are kept)."""
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)


def save_with_metadata(model: Any, props: dict[str, str], path: str | os.PathLike[str]
                       ) -> Path:
    """set_metadata, then the model written atomically (no half-written file on an error)."""
    from segdeploy.atomic import atomic_path

    set_metadata(model, props)
    with atomic_path(path) as tmp:
        tmp.write_bytes(model.SerializeToString())
    return Path(path)


def load_onnx(path: str | os.PathLike[str], *, purpose: str = "to edit an ONNX file") -> Any:
    """onnx.load with the onnx package's absence and a bad file said in one line each."""
    onnx = require("onnx", extra="onnx", purpose=purpose, package="onnx")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError... for bad bytes
        from segdeploy.errors import first_line

        raise ArtifactError(f"cannot load ONNX file {path} ({first_line(exc)})",
                            expected="a complete ONNX model",
                            fix="`segdeploy info FILE` says what the file is") from exc
