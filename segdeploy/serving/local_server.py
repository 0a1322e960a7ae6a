"""A real `tritonserver` on 127.0.0.1, from the nvidia-pytriton wheel (tests, benchmarks).

The wheel bundles tritonserver with the Python backend only, Python-backend stubs for several
Pythons and its libraries in `nvidia_pytriton.libs`. This starts it as the wheel's own
launcher would: a backend folder holding the stub of *this* Python, LD_LIBRARY_PATH = the
wheel's libraries, this interpreter's bin first on PATH (the stub then finds numpy and
segdeploy), free ports, and a /dev/shm prefix of its own so that `stop()` can prove the
server left no shared-memory region and no process behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from segdeploy.serving.errors import ServingError

SHM = Path("/dev/shm")


@dataclass(frozen=True)
class TritonInstall:
    server: Path
    backend: Path  #: the wheel's backends/python
    stub: Path  #: the Python-backend stub built for this Python
    libs: Path


def find_install() -> TritonInstall:
    """The pieces of the nvidia-pytriton wheel, or ServingError saying what is missing."""
    try:
        import pytriton
    except ImportError:
        raise ServingError("nvidia-pytriton is not installed: no tritonserver binary here",
                           fix="pip install nvidia-pytriton (Linux x86_64/aarch64, "
                               "Python 3.8-3.13)") from None
    root = Path(pytriton.__file__).parent / "tritonserver"
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(root / "bin" / "tritonserver", root / "backends" / "python",
                            root / "python_backend_stubs" / py / "triton_python_backend_stub",
                            Path(pytriton.__file__).parents[1] / "nvidia_pytriton.libs")
    for path in (install.server, install.backend, install.stub, install.libs):
        if not path.exists():
            raise ServingError(f"the nvidia-pytriton wheel has no {path}",
                               expected=f"tritonserver and a Python {py} backend stub")
    return install


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalTriton:
    """`with LocalTriton(repo, workdir) as server:` ... server.http_url / grpc_url."""

    repo: Path
    workdir: Path
    extra_args: list[str] = field(default_factory=list)
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    shm_prefix: str = field(default_factory=lambda: f"segdeploy_triton_{os.getpid()}_")
    proc: subprocess.Popen | None = None

    @property
    def http_address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "tritonserver.log"

    def command(self, install: TritonInstall, backends: Path) -> list[str]:
        return [str(install.server), f"--model-repository={self.repo}",
                f"--backend-directory={backends}",
                f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
                "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
                "--pinned-memory-pool-byte-size=0", "--exit-timeout-secs=10",
                "--model-control-mode=none", *self.extra_args]

    def _backends(self, install: TritonInstall) -> Path:
        """A backend folder with the wheel's Python backend and this Python's stub."""
        python = self.workdir / "backends" / "python"
        python.mkdir(parents=True, exist_ok=True)
        for item in install.backend.iterdir():
            if item.is_file() and not (python / item.name).exists():
                (python / item.name).symlink_to(item)
        stub = python / "triton_python_backend_stub"
        if not stub.exists():
            shutil.copy2(install.stub, stub)
        return python.parent

    def start(self, timeout: float = 180.0) -> LocalTriton:
        install = find_install()
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(install.libs), env.get("LD_LIBRARY_PATH", "")) if p)
        env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command(install, self._backends(install)),
                                         stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{self.http_address}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServingError(f"tritonserver exited with code {self.proc.returncode} "
                                   f"while starting: {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise ServingError(f"tritonserver was not ready within {timeout:g} s: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def leftover_shm(self) -> list[Path]:
        return sorted(SHM.glob(f"{self.shm_prefix}*")) if SHM.is_dir() else []

    def group_alive(self) -> bool:
        """Whether any process of the server's session (stubs included) still runs."""
        if self.proc is None:
            return False
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM (Triton unloads models, stubs exit), SIGKILL after the exit timeout."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for _ in range(50):  # stubs exit just after the server
            if not self.group_alive():
                break
            time.sleep(0.1)

    def __enter__(self) -> LocalTriton:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
