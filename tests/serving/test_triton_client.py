"""The client's failures, one line each: refused, not ready, timeout, bad address, no extra."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from segdeploy.errors import MissingDependencyError, UsageError
from segdeploy.runtime import Segmenter
from segdeploy.serving.errors import ServingError
from segdeploy.serving.local_server import free_port
from segdeploy.serving.triton_client import parse_url

HAVE_CLIENT = importlib.util.find_spec("tritonclient") is not None
needs_client = pytest.mark.skipif(not HAVE_CLIENT, reason="tritonclient is not installed here "
                                  "(pip install 'segdeploy[serving]'; make test-serving)")


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_addresses() -> None:
    assert parse_url("triton://example.org:8000/brain") == ("http", "example.org:8000", "brain")
    assert parse_url("grpc://10.0.0.2/brain") == ("grpc", "10.0.0.2:8001", "brain")
    assert parse_url("triton://h/brain/") == ("http", "h:8000", "brain")
    for bad in ("triton://host:8000/", "grpc://:8001/m", "http://h:8000/m", "triton://h/a/b"):
        with pytest.raises(UsageError, match="cannot read the Triton address"):
            parse_url(bad)


@pytest.mark.skipif(HAVE_CLIENT, reason="tritonclient is installed here")
def test_without_tritonclient_the_extra_is_named() -> None:
    with pytest.raises(MissingDependencyError, match=r"segdeploy\[serving\]"):
        Segmenter.load("triton://127.0.0.1:8000/brain")


def test_runtime_options_do_not_apply_to_a_server() -> None:
    with pytest.raises(UsageError, match="threads do not apply to a Triton server"):
        Segmenter.load("grpc://127.0.0.1:1/brain", threads=2)


@needs_client
@pytest.mark.parametrize("scheme", ["triton", "grpc"])
def test_connection_refused(scheme: str) -> None:
    port = free_port()  # nothing listens there
    t0 = time.perf_counter()
    with pytest.raises(ServingError) as info:
        Segmenter.load(f"{scheme}://127.0.0.1:{port}/brain", timeout=10)
    assert f"cannot connect to Triton at 127.0.0.1:{port}" in one_line(info.value)
    assert "connection refused" in str(info.value)
    assert time.perf_counter() - t0 < 10


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@needs_client
@pytest.mark.parametrize("scheme", ["triton", "grpc"])
def test_timeout(scheme: str, silent_server: int) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ServingError) as info:
        Segmenter.load(f"{scheme}://127.0.0.1:{silent_server}/brain", timeout=1.5)
    assert "did not answer a liveness check within 1.5 s" in one_line(info.value)
    assert time.perf_counter() - t0 < 15


@pytest.mark.parametrize("scheme", ["triton", "grpc"])
def test_model_not_ready(triton_server, scheme: str) -> None:
    address = triton_server.http_address if scheme == "triton" else triton_server.grpc_address
    with pytest.raises(ServingError) as info:
        Segmenter.load(f"{scheme}://{address}/no_such_model")
    assert "model 'no_such_model' is not ready on Triton at" in one_line(info.value)


def test_the_client_and_model_py_import_no_torch() -> None:
    script = textwrap.dedent("""
        import importlib.abc, json, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "tensorrt"):
                    raise ImportError(f"{name} is blocked in this test")

        sys.meta_path.insert(0, Block())
        import segdeploy.serving.triton_client, segdeploy.serving.triton_model
        import segdeploy.serving.triton_repo, segdeploy.serving.local_server
        from segdeploy.runtime import Segmenter
        try:
            Segmenter.load("triton://127.0.0.1:1/m", timeout=1)
        except Exception as exc:
            kind = type(exc).__name__
        print(json.dumps({"error": kind, "torch": [m for m in sys.modules
                                                     if m.split(".")[0] == "torch"]}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["torch"] == []
    assert result["error"] in ("ServingError", "MissingDependencyError")
