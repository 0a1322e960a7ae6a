"""The `segdeploy card` options an ONNX without segdeploy metadata needs, read from its graph
(class count from the output, channels from the input), for the error that names the command."""

from __future__ import annotations

from segdeploy.runtime.runner import Runner


def card_hint(runner: Runner) -> str:
    """`--classes` and `--in-channels` for the `segdeploy card` command a bare ONNX needs."""
    try:
        outs = list(runner.output_specs().values())
        k = outs[0].shape[1] if outs and outs[0].rank == 4 else None
        ins = list(runner.input_specs().values())
        c = ins[0].shape[1] if ins and ins[0].rank == 4 else None
    except Exception:  # a hint only
        return ""
    names = ",".join(f"c{i}" for i in range(k)) if isinstance(k, int) and 1 < k <= 8 \
        else "NAME1,NAME2,..."
    extra = f" --in-channels {c}" if isinstance(c, int) and c != 3 else ""
    return f"--classes {names}{extra}"
