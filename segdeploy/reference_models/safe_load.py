"""torch.load(weights_only=True) with errors that say what a file is and what to do.

Kept apart from checkpoint.py so the backbone weight loaders can use it without importing the
model registry (which imports them).
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from segdeploy.errors import CheckpointError, SegdeployError


def torch_load_safely(path: str | os.PathLike[str], what: str = "checkpoint") -> Any:
    """torch.load(weights_only=True) with CheckpointError for missing, corrupt, foreign files."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{what} {p} does not exist" if not p.exists()
                              else f"{what} {p} is not a file",
                              expected="a .pt/.pth file", fix="check the path")
    if is_torchscript_archive(p):
        raise CheckpointError(
            f"{p} is a TorchScript archive (torch.jit.save), not a segdeploy {what}",
            expected="a .pt file of tensors and plain values written by `segdeploy train`",
            fix=f"export it directly: `segdeploy export {p} --trust-code --classes ... "
                "--mean ... --std ...` (TorchScript runs code: only for files you trust)")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of foreign files before refusing them;
            # the CheckpointError below says what matters.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            warnings.filterwarnings("ignore", message=".*TorchScript")
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # a class in the file, or a plain pickle (PROTO opcode) torch cannot read safely;
        # anything else is garbage bytes read as opcodes
        if "unsupported global" not in str(exc).lower() and not _starts_like_pickle(p):
            raise _corrupt(p, exc) from exc
        kind = "segdeploy checkpoint" if what == "checkpoint" else f"plain {what}"
        raise CheckpointError(
            f"{p} is not a {kind}: it contains pickled Python objects (code), "
            "and segdeploy never unpickles code",
            expected="a file of tensors and plain values (torch.load(weights_only=True) loads it)",
            fix="re-save it with segdeploy.reference_models.checkpoint.save_checkpoint, or save "
                "model.state_dict() rather than the whole model") from None
    except Exception as exc:  # truncated zip, garbage bytes, empty file...
        raise _corrupt(p, exc) from exc


def is_torchscript_archive(p: Path) -> bool:
    """A zip whose entries include TorchScript's code/ and constants.pkl (read, not run)."""
    import zipfile

    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return (any(n.endswith("/constants.pkl") for n in names)
            and any("/code/" in n for n in names))


def _starts_like_pickle(p: Path) -> bool:
    with p.open("rb") as fh:
        return fh.read(1) == b"\x80"


def _corrupt(p: Path, exc: BaseException) -> SegdeployError:
    """A file torch cannot read: another kind of file (said so, with what takes it), or a
    damaged checkpoint."""
    from segdeploy.artifact_kind import wrong_kind

    if (other := wrong_kind(p, "checkpoint")) is not None:
        return other
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    why = lines[-1][:120] if lines else type(exc).__name__
    if isinstance(exc, pickle.UnpicklingError) and "Unsupported" in str(exc):
        why = "not a pickle or zip archive torch can read"
    return CheckpointError(f"{p} is truncated or corrupt ({why})",
                           expected="a complete .pt file written by `segdeploy train`",
                           fix="copy the file again or re-create it")
