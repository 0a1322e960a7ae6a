"""The environment block printed with every benchmark: numbers mean little without the machine.

Collects CPU model, core counts, GPU model, thread settings and library versions without
importing heavy libraries that are not already loaded (torch is reported only if imported).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from typing import Any

from segdeploy import __version__
from segdeploy.bench.cpu_features import cpu_extensions
from segdeploy.machine import cpu_model as cpu_model  # re-exported for benchmarks/

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask; containers often limit it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def gpu_models() -> list[str]:
    """Names of visible NVIDIA GPUs with driver version, from nvidia-smi (else, e.g. on a
    Jetson, from CUDA when this process already loaded it); empty when none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return _cuda_device_names()
    try:
        out = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [" / ".join(p.strip() for p in line.split(",")) for line in out.splitlines()
            if line.strip()]


def _cuda_device_names() -> list[str]:
    if "cuda.bindings.runtime" not in sys.modules and "cuda.cudart" not in sys.modules:
        return []  # never initialise CUDA just to describe the machine
    try:
        from segdeploy.runtime import cuda_memory as cm

        rt = cm.cudart()
        names = []
        for i in range(cm.device_count()):
            props = cm.check(rt.cudaGetDeviceProperties(i), "cudaGetDeviceProperties")
            name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
            names.append(f"{name.strip(chr(0))} (compute {cm.compute_capability(i)})")
        return names
    except Exception:  # noqa: BLE001 - describing the machine must never fail a benchmark
        return []


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide the speed; torch only if this process loaded it."""
    out: dict[str, str] = {"python": platform.python_version(), "segdeploy": __version__}
    import numpy

    out["numpy"] = numpy.__version__
    for name, dists in (("onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
                        ("tensorrt", ("tensorrt", "tensorrt-cu13", "tensorrt-cu12")),
                        ("cuda-python", ("cuda-bindings", "cuda-python")),
                        ("openvino", ("openvino",))):
        for dist in dists:
            v = _version(dist)
            if v:
                out[name] = v
                break
    if "torch" in sys.modules:
        out["torch"] = str(sys.modules["torch"].__version__)
    if "onnxruntime" in sys.modules:
        out["onnxruntime"] = str(sys.modules["onnxruntime"].__version__)
    if "tensorrt" in sys.modules:
        out["tensorrt"] = str(sys.modules["tensorrt"].__version__)
    return out


def thread_settings(threads: int | None = None) -> dict[str, Any]:
    """Requested threads, the usual BLAS/OpenMP variables, and torch's count if loaded."""
    out: dict[str, Any] = {"requested": threads if threads else "default"}
    for var in _THREAD_VARS:
        if os.environ.get(var):
            out[var] = os.environ[var]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        out["torch_intra_op"] = torch.get_num_threads()
    return out


def collect_environment(threads: int | None = None) -> dict[str, Any]:
    """Everything the tables and the JSON print about the machine."""
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu_model(),
        "cpu_extensions": cpu_extensions(),
        "cores": {"logical": os.cpu_count() or 1, "usable": usable_cores()},
        "gpus": gpu_models(),
        "threads": thread_settings(threads),
        "versions": library_versions(),
    }


def describe_environment(env: dict[str, Any]) -> str:
    """One compact line per topic, for the table caption and markdown."""
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    threads = ", ".join(f"{k}={v}" for k, v in env.get("threads", {}).items())
    cores = env.get("cores", {})
    gpus = "; ".join(env.get("gpus") or []) or "none"
    return "\n".join([
        f"date: {env.get('date', '?')}   host: {env.get('host', '?')}   os: {env.get('os', '?')}",
        f"cpu: {env.get('cpu', '?')} ({cores.get('usable', '?')} usable of "
        f"{cores.get('logical', '?')} logical cores)   gpu: {gpus}",
        f"cpu extensions: {', '.join(env.get('cpu_extensions') or []) or 'none detected'}",
        f"threads: {threads}",
        f"versions: {versions}",
    ])
