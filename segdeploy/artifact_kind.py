"""What a file IS, from its bytes: the one place every command asks when a file is not what
it expected, so that errors say what the file is and which command takes it, and "corrupt"
only for files that really are. No torch, no onnx (zipfile, json and the ONNX wire reader).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from segdeploy.errors import ArtifactError

#: TensorRT plan suffixes that segdeploy reads (it writes .plan)
PLAN_SUFFIXES = (".plan", ".engine", ".trt")
ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".pt", ".pth")
MANIFEST_SUFFIX = ".json"


def plan_manifest_path(plan: str | os.PathLike[str]) -> Path:
    """`model.plan` -> `model.plan.json` (the sidecar `segdeploy build` writes)."""
    plan = Path(plan)
    return plan.with_name(plan.name + MANIFEST_SUFFIX)


@dataclass(frozen=True)
class Kind:
    """name: a key ("checkpoint", "onnx"...); what: the words for it; use: what takes it."""

    name: str
    what: str
    use: str


def _kinds(p: str) -> dict[str, Kind]:
    return {k.name: k for k in (
        Kind("checkpoint", "a PyTorch checkpoint",
             f"export it to ONNX with `segdeploy export {p}`; eval and verify take it as their "
             f"first argument, bench as --checkpoint {p}"),
        Kind("torchscript", "a TorchScript archive",
             f"export it to ONNX with `segdeploy export {p} --trust-code` (with --classes, "
             "--mean, --std)"),
        Kind("exported-program", "a torch.export program (.pt2)",
             f"export it to ONNX with `segdeploy export {p} --trust-code`"),
        Kind("onnx", "an ONNX model",
             f"predict, verify and bench take it as --engine {p}; `segdeploy build {p}` makes a "
             f"TensorRT plan of it, `segdeploy quantize {p}` an INT8 copy"),
        Kind("plan", "a TensorRT plan",
             f"predict, verify and bench take it as --engine {p} on a machine with TensorRT"),
        Kind("report", "a segdeploy JSON report", f"`segdeploy info {p}` summarises it"),
        Kind("manifest", "a TensorRT plan's .plan.json sidecar",
             "it belongs beside its plan; give the plan itself"),
        Kind("image", "an image", f"segment it with `segdeploy predict --engine MODEL {p}`"),
        Kind("empty", "an empty file (0 bytes)", "the copy was cut short: copy it again"),
        Kind("text", "a text file", "give the model file itself"),
        Kind("unknown", "a file segdeploy does not recognise",
             "check the path; `segdeploy info FILE` says what segdeploy files are"),
    )}


def sniff(path: str | os.PathLike[str]) -> Kind:
    """The kind of the file at `path`, judged by its bytes (the suffix only for plans, which
    have no fixed signature and are recognised by their sidecar too)."""
    p = Path(path)
    kinds = _kinds(str(p))
    size = p.stat().st_size
    if size == 0:
        return kinds["empty"]
    with p.open("rb") as fh:
        head = fh.read(64)
    if head.startswith(b"PK\x03\x04"):
        return kinds[_zip_kind(p)]
    if head[:1] == b"\x80":  # a pickle's PROTO opcode: torch.save's legacy format
        return kinds["checkpoint"]
    if head.lstrip()[:1] in (b"{", b"["):
        return kinds[_json_kind(p)]
    if _is_image(head):
        return kinds["image"]
    if _is_onnx(p, size):
        return kinds["onnx"]
    if p.suffix.lower() in PLAN_SUFFIXES or plan_manifest_path(p).is_file():
        return kinds["plan"]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return kinds["text"]
    return kinds["unknown"]


def _zip_kind(p: Path) -> str:
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "unknown"
    parts = [n.split("/", 1)[1] if "/" in n else n for n in names]
    if any(x.startswith("code/") for x in parts) and "constants.pkl" in parts:
        return "torchscript"
    if any(x in ("archive_format", "serialized_exported_program.json")
           or x.startswith("models/") for x in parts):
        return "exported-program"
    return "checkpoint" if "data.pkl" in parts else "unknown"


def _json_kind(p: Path) -> str:
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "text"
    if isinstance(data, dict) and "tensorrt_version" in data and "export" in data:
        return "manifest"
    return "report"


def _is_image(head: bytes) -> bool:
    return head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*",
                            b"GIF8", b"P5", b"P6")) or head[8:12] == b"WEBP"


def _is_onnx(p: Path, size: int) -> bool:
    from segdeploy.onnx_wire import NotOnnxError, scan_model_proto

    try:
        with p.open("rb") as fh:
            _, has_graph = scan_model_proto(fh, size)
    except (NotOnnxError, OSError, UnicodeDecodeError):
        return False
    return has_graph


def wrong_kind(path: str | os.PathLike[str], wanted: str,
               command: str | None = None) -> ArtifactError | None:
    """The error for a file that is not `wanted` ("onnx", "checkpoint", ...), naming what it
    is and what takes it; None when it IS that kind (then it is damaged: the caller says so)."""
    p = Path(path)
    if not p.is_file():
        return None
    kind = sniff(p)
    if kind.name == wanted or (kind.name in ("unknown", "text", "empty")
                               and p.suffix.lower() in _SUFFIXES.get(wanted, ())):
        return None  # the right name with bytes of no other kind: damaged, the caller says
    expected = _kinds(str(p))[wanted].what
    return ArtifactError(f"{p} is {kind.what}, not {expected}",
                         expected=expected + (f" for `segdeploy {command}`" if command else ""),
                         fix=kind.use)


_SUFFIXES = {"onnx": ONNX_SUFFIXES, "plan": PLAN_SUFFIXES, "checkpoint": CHECKPOINT_SUFFIXES}
