"""Fixtures of the serving tests: artifacts, a model repository and a REAL tritonserver.

The server tests run in the serving venv (`make test-serving`: Debian's python3.11 with
nvidia-pytriton and tritonclient); the artifacts come from the main venv
(`python -m tests.serving.make_artifacts build/serving`, torch). Elsewhere they skip,
saying which of the two is missing; the pure tests (config text, repository layout,
errors) run everywhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from make_artifacts import COMPLETE, FILES
from triton_served import SERVED, need_triton

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SEGDEPLOY_SERVING_ARTIFACTS", ROOT / "build" / "serving"))


def have_artifacts() -> bool:
    return (ARTIFACTS / COMPLETE).exists() and all((ARTIFACTS / f).is_file()
                                                    for f in FILES.values())


@pytest.fixture(scope="session")
def artifacts() -> dict[str, Path]:
    if not have_artifacts():
        pytest.skip(f"no serving test artifacts in {ARTIFACTS}: run `.venv/bin/python -m "
                    "tests.serving.make_artifacts build/serving` (make test-serving does)")
    return {key: ARTIFACTS / name for key, name in FILES.items()}


@pytest.fixture(scope="session")
def nuclei_images(artifacts: dict[str, Path]) -> list[np.ndarray]:
    """Real 128x128 fluorescence tiles, and a crop of one: for the binary model."""
    with np.load(artifacts["nuclei_images"]) as z:
        full = [z[k] for k in z.files]
    return [np.ascontiguousarray(im) for im in (*full, full[0][:77, 5:110])]


@pytest.fixture(scope="session")
def brain_images(artifacts: dict[str, Path]) -> list[np.ndarray]:
    """Real MRI slices (197x233x1 uint8) and crops / transposes of them: several sizes."""
    with np.load(artifacts["images"]) as z:
        full = [z[k] for k in z.files]
    sizes = [full[3], full[6][:97, :131], full[8][40:161, 30:200],
             np.ascontiguousarray(full[9].transpose(1, 0, 2)), full[10][:33, :45]]
    return [np.ascontiguousarray(im) for im in sizes]


@pytest.fixture
def small_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ONNX with segdeploy metadata: the brain U-Net when made, else a tiny net (torch)."""
    if have_artifacts():
        return ARTIFACTS / FILES["fp32"]
    pytest.importorskip("torch", reason="making a test ONNX file needs torch")
    pytest.importorskip("onnx", reason="making a test ONNX file needs onnx")
    sys.path.insert(0, str(ROOT / "tests" / "runtime"))  # as tests/runtime imports it
    from tiny_models import TinySegNet, torch, write_onnx

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("serving_onnx") / "tiny.onnx"
    return write_onnx(path, TinySegNet(1, 3).eval(), in_channels=1, num_classes=3)


@pytest.fixture(scope="session")
def triton_repo(artifacts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segdeploy.serving.triton_repo import RepoOptions, write_repository

    repo = tmp_path_factory.mktemp("triton") / "repo"
    for name, (key, options) in SERVED.items():
        write_repository(artifacts[key], repo, RepoOptions(name=name, **options))
    return repo


@pytest.fixture(scope="session")
def triton_server(triton_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real tritonserver on 127.0.0.1 (free ports) serving `SERVED`; stopped at the end
    of the session, which must leave no process and no /dev/shm region behind."""
    need_triton()
    from segdeploy.serving.local_server import LocalTriton

    server = LocalTriton(triton_repo, tmp_path_factory.mktemp("triton_work"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        assert server.proc is not None and server.proc.poll() is not None, "server still runs"
        assert not server.group_alive(), "a Triton process (a Python stub?) outlived the server"
        assert server.leftover_shm() == [], "tritonserver left /dev/shm regions behind"


@pytest.fixture(scope="session")
def local_segmenters(artifacts: dict[str, Path]):
    """In-process Segmenters of the served artifacts: the reference masks."""
    from segdeploy.runtime import Segmenter

    segs = {name: Segmenter.load(artifacts[key]) for name, (key, _) in SERVED.items()}
    yield segs
    for seg in segs.values():
        seg.close()
