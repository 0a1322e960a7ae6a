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
from typing import IO, Any

from segdeploy.errors import ArtifactError, require
from segdeploy.manifest import ExportInfo

#: ModelProto field numbers (onnx/onnx.proto): the graph, and the metadata_props entries
_GRAPH_FIELD = 7
_METADATA_FIELD = 14
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class NotOnnxError(ValueError):
    """The bytes are not a protobuf ModelProto (or are cut short)."""


def _varint(read: Any) -> int:
    value = shift = 0
    while True:
        byte = read(1)
        if not byte:
            raise NotOnnxError("the file ends inside a field")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise NotOnnxError("a varint is longer than 10 bytes")


def _entry(data: bytes) -> tuple[str, str]:
    """One StringStringEntryProto: key = field 1, value = field 2."""
    import io

    fields = {1: "", 2: ""}
    buf = io.BytesIO(data)
    while buf.tell() < len(data):
        tag = _varint(buf.read)
        if tag & 7 != _LENGTH:
            raise NotOnnxError("a metadata entry holds a non-string field")
        raw = buf.read(_varint(buf.read))
        if (tag >> 3) in fields:
            fields[tag >> 3] = raw.decode("utf-8", errors="replace")
    return fields[1], fields[2]


def scan_model_proto(fh: IO[bytes], size: int) -> tuple[dict[str, str], bool]:
    """(metadata_props, has_graph) of a serialized ModelProto; NotOnnxError otherwise."""
    props: dict[str, str] = {}
    has_graph = False
    while fh.tell() < size:
        tag = _varint(fh.read)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise NotOnnxError("field number 0")
        if wire == _VARINT:
            _varint(fh.read)
        elif wire in (_FIXED64, _FIXED32):
            fh.seek(8 if wire == _FIXED64 else 4, os.SEEK_CUR)
        elif wire == _LENGTH:
            length = _varint(fh.read)
            if fh.tell() + length > size:
                raise NotOnnxError(f"field {field} runs {fh.tell() + length - size} bytes past "
                                   "the end of the file")
            if field == _METADATA_FIELD:
                key, value = _entry(fh.read(length))
                props[key] = value
            else:
                has_graph |= field == _GRAPH_FIELD
                fh.seek(length, os.SEEK_CUR)
        else:
            raise NotOnnxError(f"wire type {wire} of field {field}")
    if fh.tell() != size:
        raise NotOnnxError("the last field runs past the end of the file")
    return props, has_graph


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
