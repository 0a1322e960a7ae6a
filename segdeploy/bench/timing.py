"""Latency statistics and the measuring loop. Pure numpy: the numbers, not the backends.

Latency samples are kept in seconds as measured and reported in milliseconds; throughput is
images per second = batch / mean latency (the mean, not the median, so a slow tail costs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from segdeploy.errors import UsageError

#: Below these a run is too short to trust; above MAX_CV its spread is too high.
MIN_ITERATIONS = 10
MIN_TOTAL_S = 1.0
MAX_CV = 0.10


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one backend at one shape (milliseconds, images/s)."""

    iterations: int
    batch: int
    total_s: float
    min_ms: float
    mean_ms: float
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float
    #: coefficient of variation: std / mean (0.05 = 5 % spread)
    cv: float
    throughput: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(samples_s: np.ndarray | list[float], batch: int = 1) -> LatencyStats:
    """Summarise latency samples given in seconds (percentiles by linear interpolation)."""
    x = np.asarray(samples_s, dtype=np.float64).ravel()
    if x.size == 0:
        raise UsageError("no latency samples to summarise", expected="at least one iteration",
                         fix="raise --iterations or --duration")
    if batch < 1:
        raise UsageError(f"batch size {batch}", expected="a batch of at least 1")
    ms = x * 1e3
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    p90, p95, p99 = (float(v) for v in np.percentile(ms, [90, 95, 99]))
    return LatencyStats(
        iterations=int(ms.size), batch=int(batch), total_s=float(x.sum()),
        min_ms=float(ms.min()), mean_ms=mean, median_ms=float(np.median(ms)),
        p90_ms=p90, p95_ms=p95, p99_ms=p99, max_ms=float(ms.max()), std_ms=std,
        cv=std / mean if mean > 0 else 0.0,
        throughput=batch / (mean / 1e3) if mean > 0 else float("inf"))


_FEW_SAMPLES, _SPREAD = "only ", "high spread"


def trust_warnings(stats: LatencyStats, *, min_iterations: int = MIN_ITERATIONS,
                   min_total_s: float = MIN_TOTAL_S, max_cv: float = MAX_CV) -> list[str]:
    """Say why a measurement should not be trusted (too short, too noisy); empty when fine."""
    out = []
    if stats.iterations < min_iterations:
        out.append(f"{_FEW_SAMPLES}{stats.iterations} iterations (< {min_iterations}): "
                   "raise --iterations or --duration")
    if stats.total_s < min_total_s:
        out.append(f"{_FEW_SAMPLES}{stats.total_s:.2f} s measured (< {min_total_s:g} s): "
                   "raise --iterations or --duration")
    if stats.cv > max_cv:
        out.append(f"{_SPREAD}: coefficient of variation {stats.cv:.0%} (> {max_cv:.0%}); "
                   "close other programs, pin --threads, or raise --warmup")
    return out


def warning_kind(text: str) -> str:
    """Which kind of trust_warnings message TEXT is ("samples", "spread", else "other"), so
    that reports count rows per reason without parsing the message's figures."""
    if text.startswith(_FEW_SAMPLES):
        return "samples"
    return "spread" if text.startswith(_SPREAD) else "other"


def speedups(means_ms: dict[str, float], baseline: str | None = None) -> dict[str, float]:
    """Each entry's speed-up over `baseline` (its mean / this mean; the baseline is 1.0),
    or over the slowest entry when no baseline is named."""
    if not means_ms:
        return {}
    ref = means_ms[baseline] if baseline in means_ms else max(means_ms.values())
    return {k: (ref / v if v > 0 else float("inf")) for k, v in means_ms.items()}


def check_loop_settings(warmup: int, iterations: int | None, duration: float | None) -> None:
    """Reject impossible loop settings with a message that says which option to change."""
    if warmup < 0:
        raise UsageError(f"--warmup {warmup}", expected="0 or more warm-up iterations")
    if iterations is not None and iterations < 1:
        raise UsageError(f"--iterations {iterations}", expected="at least 1 iteration")
    if duration is not None and duration <= 0:
        raise UsageError(f"--duration {duration}", expected="a positive number of seconds")
    if iterations is not None and duration is not None:
        raise UsageError("both --iterations and --duration were given",
                         expected="one of them", fix="drop one of the two options")


def measure(fn: Callable[[], object], *, warmup: int = 5, iterations: int | None = None,
            duration: float | None = None, clock: Callable[[], float] = time.perf_counter,
            on_step: Callable[[int, float], None] | None = None,
            min_iterations: int = 1, max_iterations: int = 1_000_000) -> np.ndarray:
    """Call `fn` `warmup` times untimed, then time each call; return the samples in seconds.

    Runs `iterations` calls, or, with `duration`, until that many seconds were measured and
    at least `min_iterations` calls were made.
    `fn` must return only when its work is done (synchronise GPUs inside it).
    `on_step(i, elapsed_s)` drives a progress bar.
    """
    check_loop_settings(warmup, iterations, duration)
    if iterations is None and duration is None:
        iterations = 50
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    spent = 0.0
    while True:
        t0 = clock()
        fn()
        dt = clock() - t0
        samples.append(dt)
        spent += dt
        if on_step is not None:
            on_step(len(samples), spent)
        if iterations is not None and len(samples) >= iterations:
            break
        if duration is not None and ((spent >= duration and len(samples) >= min_iterations)
                                     or len(samples) >= max_iterations):
            break
    return np.asarray(samples, dtype=np.float64)
