"""Does the INT8 file pay off on this CPU? Timed against its FP32 source before it is written.

INT8 is not always faster: a graph with many layers kept in float pays for the Q/DQ
conversions around them (0.76-0.87x FP32 measured on an AVX2-only EPYC). `segdeploy quantize`
times both files with ONNX Runtime, interleaved, and refuses to write an INT8 file that is not
faster unless asked to. The timer is a parameter so tests can stand in a double for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.errors import SegdeployError
from segdeploy.interleave import measure_round_robin
from segdeploy.machine import cpu_model

#: rounds of the interleaved timing (each round runs FP32 and INT8 once, alternating the order)
SPEED_ROUNDS = 7


class NoSpeedupError(SegdeployError):
    """The INT8 graph that passes the gate runs no faster than FP32 here."""


@dataclass
class SpeedCheck:
    """Median milliseconds of the FP32 source and the INT8 candidate on one input."""

    fp32_ms: float
    int8_ms: float
    cpu: str
    shape: tuple[int, ...] = ()

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.int8_ms if self.int8_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"fp32_ms": round(self.fp32_ms, 3), "int8_ms": round(self.int8_ms, 3),
                "speedup": round(self.speedup, 3), "cpu": self.cpu, "shape": list(self.shape)}


#: (fp32 path, int8 path, one input feed, threads) -> SpeedCheck
SpeedTimer = Callable[[Path, Path, dict[str, np.ndarray], "int | None"], SpeedCheck]


def _session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    # two sessions used alternately: spinning threads of one slow the other (BENCHMARKS.md)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_speed(fp32: Path, int8: Path, feeds: dict[str, np.ndarray], threads: int | None,
              rounds: int = SPEED_ROUNDS) -> SpeedCheck:
    """Median ONNX Runtime CPU latency of both files, interleaved (alternating which goes first)."""
    fp32_run, int8_run = (_session(path, threads) for path in (fp32, int8))
    fp32_s, int8_s = measure_round_robin(
        [lambda: fp32_run.run(None, feeds), lambda: int8_run.run(None, feeds)],
        warmup=1, iterations=rounds, duration=None, rotate=True)
    shape = next(iter(feeds.values())).shape
    return SpeedCheck(1e3 * float(np.median(fp32_s)), 1e3 * float(np.median(int8_s)),
                      cpu_model(), tuple(int(d) for d in shape))


def refuse_slower(check: SpeedCheck, source: Path) -> NoSpeedupError:
    """The one-line refusal: how fast, on which CPU, and what to use instead."""
    return NoSpeedupError(
        f"INT8 does not pay off here: {check.speedup:.2f}x FP32 "
        f"({check.int8_ms:.1f} vs {check.fp32_ms:.1f} ms) on {check.cpu}; nothing written",
        expected="an INT8 graph faster than its FP32 source on this CPU",
        fix=f"deploy {source.name} (FP32), or OpenVINO where the CPU has AMX / AVX-512 BF16 "
            f"(segdeploy bench -e {source.name} -b onnxruntime -b openvino); --allow-slower "
            "writes the INT8 file anyway")
