"""Write artifacts under a temporary name in the target folder and rename when complete.

A crash, an error, a full disk or a second writer never leaves a half-written
.pt/.onnx/.plan/.json behind: the temporary file is removed, a full disk becomes one
OutputError naming the path, and `segdeploy.locking` refuses a concurrent writer.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segdeploy.errors import OutputError, UsageError
from segdeploy.locking import output_lock

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: a library error that does not carry errno (torch.save's "iostream error") counts as a
#: full disk when less than this is left on the output's file system
_NEARLY_FULL = 1 << 20


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Fail early, with a clear message, when the output folder is missing or not writable."""
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    blocker = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UsageError(f"{blocker} is a file, not a folder, so {out} cannot be written "
                         "inside it", expected="an output path whose folders are folders",
                         fix=f"choose another output path, or move {blocker} away")
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


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def is_disk_full(exc: BaseException, folder: str | os.PathLike[str]) -> bool:
    """ENOSPC/EDQUOT anywhere in the exception chain, or a library write error on a file
    system with (almost) nothing left."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FULL:
            return True
        if "no space left" in str(e).lower():
            return True
        e = e.__cause__ or e.__context__
    if isinstance(exc, RuntimeError):  # torch.save: "iostream error", "unexpected pos"
        free = free_bytes(folder)
        return free is not None and free < _NEARLY_FULL
    return False


def disk_full_error(out: Path, needed: int, *, at_least: bool = False) -> OutputError:
    """One line: the path, what it needed, what is free, the fix."""
    folder = out.parent if str(out.parent) else Path(".")
    free = free_bytes(folder)
    need = f"needed {'more than ' if at_least else ''}{_mib(needed)}"
    return OutputError(
        f"no space left on the device writing {out} ({need}; "
        f"{_mib(free) if free is not None else 'unknown'} free in {folder})",
        expected="room on the output's file system for the whole file",
        fix=f"free space in {folder} or write elsewhere (another -o / --json path)")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    out = check_output_path(path)
    with output_lock(out):
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            try:
                yield tmp_path
                if tmp_path.exists():  # mkstemp makes 0600 files: give the usual mode
                    os.chmod(tmp_path, 0o666 & ~_umask())
                os.replace(tmp_path, out)
            except (OSError, RuntimeError) as exc:
                if not is_disk_full(exc, out.parent if str(out.parent) else "."):
                    raise
                written = tmp_path.stat().st_size if tmp_path.exists() else 0
                raise disk_full_error(out, written, at_least=True) from None
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


def probe_writable(path: str | os.PathLike[str], nbytes: int = 1 << 16) -> Path:
    """Check that `path` can be written, `nbytes` included, before a long measurement:
    writes (and removes) a temporary file of that size beside it."""
    out = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=out.parent or ".")
    try:
        try:
            os.write(fd, b"\0" * nbytes)
            os.fsync(fd)
        except OSError as exc:
            if exc.errno in _FULL:
                raise disk_full_error(out, nbytes) from None
            raise
    finally:
        os.close(fd)
        os.unlink(tmp)
    return out


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
