"""A serialized ONNX ModelProto in protobuf's wire format, with no onnx package and no ONNX
Runtime session: its top level (metadata_props, and whether the bytes are an ONNX file at
all: the graph's bytes are skipped, not parsed), and on request the graph's node records and
initializer types (`scan_graph`: what the QDQ flavour of an INT8 file is), weights unread."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
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
    for field, wire, where in _fields(fh, size):
        if wire != _LENGTH:
            continue
        if field == _METADATA_FIELD:
            fh.seek(where[0])
            key, value = _entry(fh.read(where[1]))
            props[key] = value
        else:
            has_graph |= field == _GRAPH_FIELD
    if fh.tell() != size:
        raise NotOnnxError("the last field runs past the end of the file")
    return props, has_graph


# -- the graph's nodes and initializer types (QDQ flavour, runtime/qdq_types.py) -----------
#: GraphProto: node, initializer; NodeProto: input, output, op_type, attribute, domain;
#: TensorProto: data_type, name; AttributeProto: name, t (a tensor)
_G_NODE, _G_INITIALIZER = 1, 5
_N_INPUT, _N_OUTPUT, _N_OP_TYPE, _N_ATTRIBUTE, _N_DOMAIN = 1, 2, 4, 5, 7
_T_DATA_TYPE, _T_NAME = 2, 8
_A_NAME, _A_TENSOR = 1, 5


@dataclass(frozen=True)
class WireNode:
    """What a node is and which tensors it reads and writes (attributes are skipped, except
    the type of a Constant's `value` tensor)."""

    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    value_type: int | None = None


@dataclass(frozen=True)
class WireGraph:
    """The main graph's nodes and its initializers' element types (TensorProto.DataType)."""

    nodes: tuple[WireNode, ...]
    initializer_types: dict[str, int]


def _fields(fh: IO[bytes], end: int) -> Iterator[tuple[int, int, Any]]:
    """(field, wire type, value) up to `end`: a varint's value, or a length-delimited field's
    (offset, length) left unread (the caller may read it; the walk seeks past it after)."""
    while fh.tell() < end:
        tag = _varint(fh.read)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise NotOnnxError("field number 0")
        if wire == _VARINT:
            yield field, wire, _varint(fh.read)
        elif wire in (_FIXED64, _FIXED32):
            fh.seek(8 if wire == _FIXED64 else 4, os.SEEK_CUR)
            yield field, wire, None
        elif wire == _LENGTH:
            length = _varint(fh.read)
            start = fh.tell()
            if start + length > end:
                raise NotOnnxError(f"field {field} runs past its message")
            yield field, wire, (start, length)
            fh.seek(start + length)
        else:
            raise NotOnnxError(f"wire type {wire} of field {field}")


def _text(fh: IO[bytes], where: tuple[int, int]) -> str:
    fh.seek(where[0])
    return fh.read(where[1]).decode("utf-8", errors="replace")


def _tensor(fh: IO[bytes], where: tuple[int, int]) -> tuple[str, int]:
    """(name, data_type) of a TensorProto; its data (maybe megabytes) is seeked past."""
    name, dtype = "", 0
    fh.seek(where[0])
    for field, wire, value in _fields(fh, where[0] + where[1]):
        if field == _T_DATA_TYPE and wire == _VARINT:
            dtype = value
        elif field == _T_NAME and wire == _LENGTH:
            name = _text(fh, value)
    return name, dtype


def _node(fh: IO[bytes], where: tuple[int, int]) -> WireNode:
    strings: dict[int, list[str]] = {_N_INPUT: [], _N_OUTPUT: [], _N_OP_TYPE: [],
                                     _N_DOMAIN: []}
    value_type = None
    fh.seek(where[0])
    for field, wire, value in _fields(fh, where[0] + where[1]):
        if wire != _LENGTH:
            continue
        if field in strings:
            strings[field].append(_text(fh, value))
        elif field == _N_ATTRIBUTE:
            attr_name, tensor = "", None
            fh.seek(value[0])
            for a_field, a_wire, a_value in _fields(fh, value[0] + value[1]):
                if a_field == _A_NAME and a_wire == _LENGTH:
                    attr_name = _text(fh, a_value)
                elif a_field == _A_TENSOR and a_wire == _LENGTH:
                    tensor = a_value
            if attr_name == "value" and tensor is not None:
                value_type = _tensor(fh, tensor)[1]
    return WireNode("".join(strings[_N_OP_TYPE]), "".join(strings[_N_DOMAIN]),
                    tuple(strings[_N_INPUT]), tuple(strings[_N_OUTPUT]), value_type)


def scan_graph(fh: IO[bytes], size: int) -> WireGraph:
    """The nodes and initializer types of a serialized ModelProto's main graph, reading
    node records and tensor headers only (weights are seeked past): milliseconds for a
    500 MB file. NotOnnxError for bytes that are no ModelProto."""
    nodes: list[WireNode] = []
    types: dict[str, int] = {}
    for field, wire, value in _fields(fh, size):
        if field != _GRAPH_FIELD or wire != _LENGTH:
            continue
        fh.seek(value[0])
        for g_field, g_wire, g_value in _fields(fh, value[0] + value[1]):
            if g_wire != _LENGTH:
                continue
            if g_field == _G_NODE:
                nodes.append(_node(fh, g_value))
            elif g_field == _G_INITIALIZER:
                name, dtype = _tensor(fh, g_value)
                types[name] = dtype
    return WireGraph(tuple(nodes), types)
