"""The float fallback of `segdeploy quantize`: which layers go back to float, in what order.

Every layer's sensitivity is the agreement (points, on a few validation images) gained by
putting that layer alone back in float in the every-layer INT8 graph; the order is agreement
per percent of the graph's FLOPs, cheap layers (a 1-channel first convolution, a 1x1 head)
first. Cheap layers are measured and tried before the others are measured at all: on the
brain U-Net the first convolution (0.3 % of the FLOPs) is enough, and 21 measurements are
saved. Within a tier the shortest passing prefix of that order is found by bisection (the
first layer alone, then the longest prefix: when even it fails, two trials tell so), not
one trial per layer.
Trials are graph edits of one quantized graph (`q.trial(names) -> Path`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segdeploy.errors import ParityError
from segdeploy.export.noise_gate import SizeCheck, SizedGate
from segdeploy.export.qdq_edit import quantized_nodes
from segdeploy.export.quantize_defaults import CALIBRATIONS

#: validation images the per-layer sensitivity is measured on (the gate uses them all)
SENSITIVITY_IMAGES = 6


#: a layer under this share of the graph's FLOPs is cheap to keep float (a 1-channel first
#: convolution, a 1x1 head): these are measured and tried first
CHEAP_SHARE = 2.0


def fallback_order(sensitivity: dict[str, float], cost_share: dict[str, float]) -> list[str]:
    """Layers to put back in float, first to last: cheap layers (< CHEAP_SHARE % of the FLOPs)
    whose float copy gained agreement, then the other gainers, each group by gain per percent
    of the FLOPs; then the rest by gain."""
    def ratio(n: str) -> float:
        return sensitivity[n] / max(cost_share.get(n, 0.0), 1e-3)

    gained = [n for n, g in sensitivity.items() if g > 0]
    cheap = sorted((n for n in gained if cost_share.get(n, 0.0) < CHEAP_SHARE), key=ratio,
                   reverse=True)
    dear = sorted((n for n in gained if n not in cheap), key=ratio, reverse=True)
    rest = sorted((n for n in sensitivity if n not in gained), key=sensitivity.__getitem__,
                  reverse=True)
    return cheap + dear + rest


class FallbackSearch:
    """The gate on every-layer INT8, then the float fallback in `fallback_order`."""

    def __init__(self, q: Any, gate: SizedGate, costs: dict[str, int],
                 log: Callable[[str], None], step: Callable[[str, int, int], None]) -> None:
        self.q, self.gate, self.log, self.step = q, gate, log, step
        self.total = max(sum(costs.values()), 1)
        self.costs = costs
        self.sensitivity: dict[str, float] = {}
        self.first: list[SizeCheck] = []
        self._base: float | None = None  #: every-layer INT8 on the sensitivity images
        #: the checks of every float set judged (bisection revisits none)
        self._judged: dict[tuple[str, ...], list[SizeCheck]] = {}

    def share(self, node: str) -> float:
        return round(100.0 * self.costs.get(node, 0) / self.total, 3)

    def judge(self, excluded: list[str], label: str) -> list[SizeCheck]:
        checks = self.gate.judge_all(self.q.trial(excluded))
        for c in checks:
            self.log(f"{label}: {c.line()}")
        return checks

    def run(self) -> tuple[list[str], list[SizeCheck]]:
        self.first = checks = self.judge([], "all layers int8")
        if all(c.passes for c in checks) and len(checks) == len(self.gate.scales):
            return [], checks
        candidates = quantized_nodes(self.q.qdq_model)
        shares = {n: self.share(n) for n in candidates}
        cheap = [n for n in candidates if shares[n] < CHEAP_SHARE]
        excluded: list[str] = []
        # cheap layers are measured first: when they are enough, the rest is never measured
        for tier in (cheap, [n for n in candidates if n not in cheap]):
            if not tier:
                continue
            self.sensitivity.update(self.measure(tier))
            last = tier is not cheap
            order = [n for n in fallback_order(self.sensitivity, shares)
                     if n not in excluded and (last or self.sensitivity[n] > 0)]
            # every layer float is the FP32 graph, not an INT8 one: never a trial
            order = order[:max(len(candidates) - len(excluded) - 1, 0)]
            found = self.shortest_prefix(excluded, order, shares)
            if found is not None:
                return found
            excluded += order
            checks = self._judged[tuple(excluded)] if order else checks
        others = [c for c in CALIBRATIONS if c != self.q.options.calibration]
        failed = next(c for c in checks if not c.passes)
        raise ParityError(
            f"INT8 fails the gate unless every quantized layer is float ({failed.line()})",
            expected="an INT8 graph within the gate (the lower of the threshold and FP32's "
                     "noise floor, and the mIoU limit)",
            fix=f"deploy the FP32 file; or try --calibration {' or '.join(others)}, more "
                "--calibration-images, or a looser --min-agreement")

    def shortest_prefix(self, excluded: list[str], order: list[str], shares: dict[str, float]
                        ) -> tuple[list[str], list[SizeCheck]] | None:
        """The shortest `excluded + order[:k]` that passes, by bisection on k: k = 1 first
        (often enough: one trial), then the longest prefix (when it fails, this tier cannot
        help: two trials, not len(order)), then halves. It assumes a layer more in float
        never costs agreement; where that is not so it still returns a passing set whose
        prefix one shorter fails.
        """
        def passes(k: int) -> bool:
            names = [*excluded, *order[:k]]
            key = tuple(names)
            if key not in self._judged:
                node = order[k - 1]
                self._judged[key] = self.judge(names, f"{len(names)} layer(s) float (+{node}, "
                                                      f"{shares[node]:.1f}% of FLOPs)")
            checks = self._judged[key]
            return all(c.passes for c in checks) and len(checks) == len(self.gate.scales)

        if not order:
            return None
        lo, hi = 0, 1  # prefix lo fails (or is empty), hi passes
        if not passes(1):  # the common case, one cheap layer enough, needs no more trials
            if not passes(len(order)):
                return None
            lo, hi = 1, len(order)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if passes(mid):
                hi = mid
            else:
                lo = mid
        names = [*excluded, *order[:hi]]
        return names, self._judged[tuple(names)]

    def measure(self, candidates: list[str]) -> dict[str, float]:
        """Agreement gained (points, images' own size) by each quantized layer alone in float."""
        scale = self.gate.scales[0]
        n = SENSITIVITY_IMAGES
        self.log(f"measuring the sensitivity of {len(candidates)} quantized layers")
        if self._base is None:
            self._base = self.gate.check(self.q.trial([]), scale, n).result.agreement
        base = self._base
        out = {}
        for i, node in enumerate(candidates):
            self.step("sensitivity", i, len(candidates))
            out[node] = self.gate.check(self.q.trial([node]), scale, n).result.agreement - base
        self.step("sensitivity", len(candidates), len(candidates))
        return out
