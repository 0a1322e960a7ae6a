"""Write artifacts under a temporary name in the target folder and rename when complete.

A crash or an error never leaves a half-written .pt/.onnx/.plan/.json behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segdeploy.errors import UsageError


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Fail early, with a clear message, when the output folder is missing or not writable."""
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"output folder {parent} does not exist",
                         expected="an existing folder for the output file",
                         fix=f"create it first (mkdir -p {parent}) or choose another -o path")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"output folder {parent} is not writable",
                         fix="choose an output path in a folder you can write to")
    if out.is_dir():
        raise UsageError(f"output path {out} is a folder", expected="a file path")
    return out


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    out = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files: give the artifact the usual mode
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, out)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return Path(path)
