"""Round-robin timing: one iteration of every backend in turn, so a busy machine slows all alike.

On a shared machine, timing backend A for ten seconds and then B for ten lets a neighbour's
job land on one of them only; interleaving per iteration makes the ratios hold even when
absolute times drift. `segdeploy bench` does this by default (`--sequential` to turn it off),
and `quantize` times its INT8 file against FP32 with it (core: export may not import bench).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

RoundHook = Callable[[int, float], None]


def measure_round_robin(fns: Sequence[Callable[[], object]], *, warmup: int,
                        iterations: int | None, duration: float | None,
                        min_iterations: int = 1, on_round: RoundHook | None = None,
                        clock: Callable[[], float] | None = None,
                        max_iterations: int = 1_000_000,
                        rotate: bool = False) -> list[np.ndarray]:
    """Samples in seconds per fn: `warmup` untimed rounds, then timed rounds until
    `iterations` rounds, or until every fn has `duration` seconds and `min_iterations`.
    `rotate`: each round starts one fn later, so none always runs right after another."""
    import time

    clock = time.perf_counter if clock is None else clock
    if iterations is None and duration is None:
        iterations = 50
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    spent = [0.0] * len(fns)
    rounds = 0
    order = list(range(len(fns)))
    while True:
        start = rounds % len(fns) if rotate else 0
        for i in order[start:] + order[:start]:
            fn = fns[i]
            t0 = clock()
            fn()
            dt = clock() - t0
            samples[i].append(dt)
            spent[i] += dt
        rounds += 1
        if on_round is not None:
            on_round(rounds, min(spent))
        if iterations is not None and rounds >= iterations:
            break
        if duration is not None and ((min(spent) >= duration and rounds >= min_iterations)
                                     or rounds >= max_iterations):
            break
    return [np.asarray(s, dtype=np.float64) for s in samples]
