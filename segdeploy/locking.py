"""An exclusive lock per output path, so two processes never write the same artifact.

The lock is `fcntl.flock` on a hidden `.NAME.lock` file beside the output; a second writer
is refused at once with one line instead of silently replacing the first one's files. The
lock file is removed on release (and a lock on a file removed meanwhile is taken again).
Locks are re-entrant within one process: a command may hold its output's lock while the
atomic writer below takes it again for each file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from segdeploy.errors import UsageError

_HELD: dict[str, int] = {}


def lock_path(path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    return out.with_name(f".{out.name}.lock")


def _try_lock(lock: Path) -> int | None:
    """The fd of `lock` locked exclusively, or None when another process holds it."""
    import fcntl

    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:  # the previous holder may have removed the file between our open and flock
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _holder(lock: Path) -> str:
    try:
        pid = lock.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


@contextlib.contextmanager
def output_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the write lock of `path`; UsageError at once if another process holds it."""
    key = os.path.abspath(path)
    if key in _HELD:  # re-entrant in this process
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    lock = lock_path(path)
    if not os.access(lock.parent if str(lock.parent) else ".", os.W_OK):
        yield  # the folder check of the caller says what is wrong with an unwritable folder
        return
    fd = _try_lock(lock)
    if fd is None:
        raise UsageError(f"another process is writing {path}{_holder(lock)}",
                         expected="one writer per output path",
                         fix="wait for it to finish, or choose another output path")
    _HELD[key] = 1
    try:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)
