"""Latency statistics on known arrays, the measuring loop with a scripted clock, speed-ups."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from segdeploy.bench.timing import measure, speedups, summarize, trust_warnings
from segdeploy.errors import UsageError


def test_summarize_known_samples() -> None:
    s = summarize([0.001, 0.002, 0.003, 0.004], batch=2)  # 1, 2, 3, 4 ms
    assert s.iterations == 4 and s.batch == 2
    assert s.min_ms == pytest.approx(1.0) and s.max_ms == pytest.approx(4.0)
    assert s.mean_ms == pytest.approx(2.5) and s.median_ms == pytest.approx(2.5)
    # linear interpolation between sorted samples at rank q * (n - 1)
    assert s.p90_ms == pytest.approx(3.0 + 0.7)
    assert s.p95_ms == pytest.approx(3.0 + 0.85)
    assert s.p99_ms == pytest.approx(3.0 + 0.97)
    assert s.total_s == pytest.approx(0.010)
    std = np.sqrt(((np.array([1, 2, 3, 4]) - 2.5) ** 2).sum() / 3)
    assert s.std_ms == pytest.approx(std)
    assert s.cv == pytest.approx(std / 2.5)
    assert s.throughput == pytest.approx(2 / 0.0025)  # 2 images per 2.5 ms


def test_summarize_single_sample_has_no_spread() -> None:
    s = summarize([0.01])
    assert s.std_ms == 0.0 and s.cv == 0.0 and s.p99_ms == pytest.approx(10.0)


def test_summarize_rejects_empty() -> None:
    with pytest.raises(UsageError, match="no latency samples"):
        summarize([])


def test_trust_warnings() -> None:
    steady = summarize([0.1] * 20)
    assert trust_warnings(steady) == []
    short = summarize([0.001] * 5)
    text = " ".join(trust_warnings(short))
    assert "only 5 iterations" in text and "s measured" in text
    noisy = summarize([0.1, 0.3] * 10)
    assert any("high spread" in w for w in trust_warnings(noisy))


def test_speedups_relative_to_a_named_baseline() -> None:
    r = speedups({"a": 10.0, "b": 5.0, "c": 40.0}, "a")
    assert r == {"a": 1.0, "b": 2.0, "c": 0.25}  # a slower row shows below 1.0


def test_speedups_relative_to_slowest() -> None:
    r = speedups({"a": 10.0, "b": 5.0, "c": 40.0})
    assert r == {"a": 4.0, "b": 8.0, "c": 1.0}
    assert speedups({}) == {}


def test_measure_counts_warmup_and_iterations() -> None:
    calls = []
    samples = measure(lambda: calls.append(1), warmup=3, iterations=7)
    assert len(calls) == 10 and samples.shape == (7,)
    assert (samples >= 0).all()


def test_measure_duration_stops_on_measured_time() -> None:
    ticks = itertools.count()  # scripted clock: each call reads it twice, 0.125 s apart

    def clock() -> float:
        return next(ticks) * 0.125

    steps: list[int] = []
    samples = measure(lambda: None, warmup=0, duration=1.0, clock=clock,
                      on_step=lambda i, spent: steps.append(i))
    assert samples.tolist() == [0.125] * 8
    assert steps == list(range(1, 9))


def test_measure_duration_honours_min_iterations() -> None:
    ticks = itertools.count()
    samples = measure(lambda: None, warmup=0, duration=0.1, min_iterations=5,
                      clock=lambda: next(ticks) * 1.0)  # each call "takes" 1 s
    assert samples.tolist() == [1.0] * 5


@pytest.mark.parametrize("kw", [{"iterations": 0}, {"duration": -1.0}, {"warmup": -1},
                                {"iterations": 3, "duration": 1.0}])
def test_measure_rejects_bad_plans(kw: dict) -> None:
    with pytest.raises(UsageError):
        measure(lambda: None, **kw)
