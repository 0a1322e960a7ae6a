"""Binary heads: a graph with ONE output channel is background / foreground by a threshold.

Matting, lesion, text and road models usually end in one channel (a logit, or a sigmoid
probability). The card records two classes and the threshold; runtimes threshold where
multi-class models take the argmax. This module settles the names and the threshold from
what the user said and what the graph shows (a Sigmoid at the output means 0.5).
"""

from __future__ import annotations

from typing import Any

from segdeploy.errors import UsageError

#: ops that keep a sigmoid's [0, 1] range between it and the graph output
_RANGE_KEEPING = {"Identity", "Resize", "Upsample", "Cast", "Slice", "Reshape", "Transpose",
                  "Squeeze", "Unsqueeze", "Pad", "Crop", "MaxPool", "Concat"}


def head_classes(channels: int | None, names: list[str] | None, threshold: float | None, *,
                 sigmoid: bool, source: str) -> tuple[list[str] | None, float | None, str]:
    """(class names, threshold or None, a note for the user) for a graph whose logits have
    `channels` channels; only a 1-channel output takes a threshold."""
    if channels != 1:
        if threshold is not None:
            raise UsageError(f"--threshold {threshold} but {source} outputs {channels} channels",
                             expected="a threshold only for a 1-channel (binary) output",
                             fix="drop --threshold: a multi-class output takes the argmax")
        return names, None, ""
    if names is None:
        names = ["background", "foreground"]
    elif len(names) == 1:
        names = ["background", names[0]]
    elif len(names) != 2:
        raise UsageError(f"--classes names {len(names)} classes but {source} outputs 1 channel "
                         "(a binary head)",
                         expected="one name (the foreground, e.g. --classes text) or two "
                                  "(--classes background,text)")
    said = threshold is not None
    value = float(threshold) if threshold is not None else (0.5 if sigmoid else 0.0)
    why = ("--threshold" if said else "a sigmoid output" if sigmoid
           else "a logit output: no sigmoid at the end of the graph")
    note = (f"1-channel output: a binary head; {names[1]!r} where the output > {value:g} "
            f"({why}" + ("" if said else "; --threshold T to change") + ")")
    return names, value, note


def ends_in_sigmoid(model: Any, output: str) -> bool:
    """Whether an onnx.ModelProto's `output` comes from a Sigmoid through range-keeping ops."""
    producers = {o: n for n in model.graph.node for o in n.output}
    name, seen = output, 0
    while name in producers and seen < 32:
        node = producers[name]
        if node.op_type in ("Sigmoid", "HardSigmoid"):
            return True
        if node.op_type not in _RANGE_KEEPING or not node.input:
            return False
        name, seen = node.input[0], seen + 1
    return False
