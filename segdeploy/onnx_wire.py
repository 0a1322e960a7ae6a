"""The top level of a serialized ONNX ModelProto in protobuf's wire format: enough to read
its metadata_props and to tell an ONNX file from other bytes, with no onnx package and no
ONNX Runtime session (the graph's bytes are skipped, not parsed)."""

from __future__ import annotations

import os
from typing import IO, Any

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
