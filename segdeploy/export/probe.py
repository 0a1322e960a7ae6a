"""What a foreign model (TorchScript, `.pt2`) accepts, found by running it at chosen sizes.

Third-party zoos mostly need H and W divisible by 8, 16 or 32 (segmentation_models_pytorch
encoders), and some return a larger output than their input at other sizes (Segformer
rounds up). So the probe never trusts one size: it runs the model at sizes that are odd
multiples of m = 1, 2, 4, ..., 32 (a multiple of m but not of 2m) and takes the smallest m
at which the output is exactly the input's size at two different sizes. An output larger
than the input is never "valid mode"; only a model whose output is smaller at every probed
size is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from segdeploy.errors import UsageError

MULTIPLES = (1, 2, 4, 8, 16, 32)
#: odd factors per multiple, giving sizes of 64-200 pixels: small enough to be quick
_FACTORS = {1: (67, 93), 2: (33, 47), 4: (17, 23), 8: (9, 13), 16: (5, 7), 32: (3, 5)}


@dataclass
class ProbeResult:
    num_classes: int
    output_mode: str  # "same" | "valid"
    size_multiple: int
    #: (input HxW, output HxW or the error) for every size tried, for messages and notes
    trials: list[tuple[tuple[int, int], tuple[int, int] | str]]

    def describe(self, limit: int = 4) -> str:
        """The last `limit` trials (the ones that decided), and how many came before."""
        shown = self.trials[-limit:]
        text = "; ".join(f"{h}x{w} -> " + (f"{o[0]}x{o[1]}" if isinstance(o, tuple) else o)
                         for (h, w), o in shown)
        more = len(self.trials) - len(shown)
        return f"{more} smaller multiple(s) failed; {text}" if more else text


def sizes_for(multiple: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two different odd-multiple sizes of `multiple` (any multiple, not just MULTIPLES)."""
    if multiple in _FACTORS:
        a, b = _FACTORS[multiple]
    else:
        a = max(3, -(-64 // multiple)) | 1
        b = a + 2
    return (multiple * a, multiple * b), (multiple * b, multiple * a)


def probe_model(model: Any, channels: int, p: Path, *, size_multiple: int | None = None,
                static_size: tuple[int, int] | None = None) -> ProbeResult:
    """Classes, output mode and size multiple of `model`, or a UsageError saying what to pass."""
    trials: list[tuple[tuple[int, int], tuple[int, int] | str]] = []
    if static_size is not None:
        k, out = _run(model, channels, static_size, p)
        trials.append((static_size, out))
        if out != static_size:
            raise UsageError(
                f"{p} returns {out[0]}x{out[1]} logits for a {static_size[0]}x{static_size[1]} "
                "input", expected="logits of the input's size at --static-size",
                fix="pass the size the model was built for as --static-size HxW")
        return ProbeResult(k, "same", size_multiple or 1, trials)
    candidates = [size_multiple] if size_multiple else list(MULTIPLES)
    first_k: int | None = None
    all_smaller = True
    for m in candidates:
        outs: list[tuple[int, int] | None] = []
        for hw in sizes_for(m):
            try:
                k, out = _run(model, channels, hw, p)
            except _ProbeFailure as exc:
                trials.append((hw, exc.reason))
                outs.append(None)
                continue
            first_k = k if first_k is None else first_k
            trials.append((hw, out))
            outs.append(out)
            if not (out[0] < hw[0] and out[1] < hw[1]):
                all_smaller = False
        if all(o == hw for o, hw in zip(outs, sizes_for(m), strict=True)):
            return ProbeResult(first_k or 0, "same", m, trials)
    result = ProbeResult(first_k or 0, "valid", size_multiple or 1, trials)
    if first_k is not None and all_smaller and all(isinstance(o, tuple) for _, o in trials):
        return result  # smaller everywhere, never larger: a valid-mode (unpadded) model
    if size_multiple:
        raise UsageError(
            f"{p} does not return logits of its input's size at multiples of "
            f"--size-multiple {size_multiple} ({result.describe()})",
            expected="an output of the input's size (or smaller at every size)",
            fix="pass the multiple the model needs (often 32: the encoder's output stride), "
                "or --static-size HxW for a model that works at one size only")
    raise UsageError(
        f"{p} returns logits of its input's size at none of the sizes tried "
        f"({result.describe()})",
        expected="a model whose output has its input's height and width",
        fix="pass --size-multiple N if it needs H and W divisible by N > 32, or "
            "--static-size HxW for a model that works at one size only")


class _ProbeFailure(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


#: PyTorch's convolution error for an input with the wrong number of channels
_CHANNELS = re.compile(r"expected input\[[^\]]*\] to have (\d+) channels, but got (\d+)")


def _run(model: Any, channels: int, hw: tuple[int, int], p: Path) -> tuple[int, tuple[int, int]]:
    x = torch.randn(2, channels, *hw, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            y = model(x)
    except Exception as exc:
        wrong = _CHANNELS.search(str(exc))
        if wrong:  # not a size problem: no other size can fix it
            want = int(wrong.group(1))
            raise UsageError(
                f"{p} takes {want} input channels but was given {channels}",
                expected=f"--in-channels {want} and 1 or {want} values for --mean and --std",
                fix=f"pass --in-channels {want} (one --mean/--std value means every "
                    "channel)") from None
        text = str(exc).strip().splitlines()
        line = next((ln.strip() for ln in text if "Error" in ln or "Expected" in ln),
                    text[0] if text else type(exc).__name__)
        raise _ProbeFailure(f"fails ({line[:100]})") from exc
    y = first_output(y)
    if not isinstance(y, torch.Tensor) or y.ndim != 4 or y.shape[0] != 2:
        raise UsageError(f"{p} returns {type(y).__name__} of shape "
                         f"{tuple(getattr(y, 'shape', ()))}",
                         expected="logits N x K x H x W")
    return int(y.shape[1]), (int(y.shape[2]), int(y.shape[3]))


def first_output(y: Any) -> Any:
    """The logits of a model's output: torchvision's {"out": ...}, a tuple's first item."""
    if isinstance(y, dict):
        return y.get("out", next(iter(y.values())))
    if isinstance(y, list | tuple):
        return y[0]
    return y


def pt2_size_multiple(program: Any) -> tuple[int | None, int | None]:
    """(size multiple, min side) a `.pt2` declares: the coefficient of its H/W symbols
    (torch.export writes a Dim that must be a multiple of 32 as 32*s0) and their ranges."""
    user = set(program.graph_signature.user_inputs)
    node = next((n for n in program.graph.nodes if n.op == "placeholder" and n.name in user), None)
    shape = list(getattr(node.meta.get("val"), "shape", [])) if node is not None else []
    if len(shape) != 4:
        return None, None
    multiples, mins = [], []
    for d in shape[2:]:
        if isinstance(d, int):
            return None, None
        expr = d.node.expr
        coeff, _ = expr.as_coeff_Mul()
        multiples.append(int(coeff) if coeff.is_Integer and int(coeff) > 1 else 1)
        lo = None
        for sym in expr.free_symbols:
            rng = program.range_constraints.get(sym)
            if rng is not None and rng.lower is not None and rng.lower.is_finite:
                lo = int(rng.lower) * multiples[-1]
        if lo is not None:
            mins.append(lo)
    multiple = max(multiples) if max(multiples) > 1 else None
    return multiple, max(mins) if mins else None
