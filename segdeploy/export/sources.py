"""What `segdeploy export` can read: a segdeploy checkpoint, a TorchScript archive, a `.pt2`.

- A segdeploy checkpoint (`segdeploy train` output) loads with torch.load(weights_only=True):
  no code runs, and its ModelCard says everything the ONNX metadata needs.
- A TorchScript archive (torch.jit.save) contains Python-like code that runs when loaded
  and called, so it loads only with `trust_code=True` (`--trust-code`).
- A torch.export ExportedProgram (`.pt2`, torch.export.save) is a serialized graph, but
  torch.export.load unpickles constants and custom objects (torch's own docs: "never load
  from an untrusted source"), so it is treated like code: `trust_code=True` as well.

Neither TorchScript nor `.pt2` files carry classes, mean/std or stride: `SourceFacts` holds
what the user passes (--classes / --num-classes, --mean, --std, --in-channels, --stride,
--size-multiple, --static-size); the number of classes, the size multiple and whether the
output is smaller than the input are found by running the model (`probe.py`). What nobody
said (stride, minimum size, training size) is listed in the card's config["unknown"].
"""

from __future__ import annotations

import dataclasses
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from segdeploy.artifacts import ONNX_SUFFIXES, PLAN_SUFFIXES
from segdeploy.digest import sha256_file
from segdeploy.errors import CheckpointError, UsageError, first_line
from segdeploy.export.binary_head import head_classes
from segdeploy.manifest import ModelCard

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

KINDS = ("checkpoint", "torchscript", "exported-program")


@dataclass
class SourceFacts:
    """What a TorchScript / .pt2 model cannot say about itself (CLI flags)."""

    classes: list[str] | None = None
    num_classes: int | None = None
    #: a 1-channel (binary) output's threshold; None: 0.5 after a sigmoid, else 0
    threshold: float | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    in_channels: int | None = None
    stride: int | None = None
    arch: str | None = None
    #: H and W must be multiples of this (most smp encoders: 32)
    size_multiple: int | None = None
    #: export a fixed H x W graph (models with adaptive pooling to fixed bins)
    static_size: tuple[int, int] | None = None

    def given(self) -> list[str]:
        return [k for k, v in vars(self).items() if v is not None]


@dataclass
class Source:
    """A loaded model ready to wrap and export."""

    model: Any  # nn.Module, ScriptModule, or the nn.Module of an ExportedProgram
    card: ModelCard
    kind: str
    path: Path
    sha256: str
    notes: list[str] = field(default_factory=list)




def detect_kind(path: Path) -> str:
    """Tell the three formats apart by the zip archive's member names (all three are zips)."""
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist" if not path.exists()
                              else f"{path} is not a file",
                              expected="a segdeploy checkpoint (.pt), TorchScript archive or .pt2",
                              fix="check the path")
    from segdeploy.artifact_kind import sniff, wrong_kind

    kind = sniff(path)
    if kind.name in ("onnx", "plan"):
        raise UsageError(f"{path} is {kind.what}: already exported",
                         expected="a PyTorch checkpoint, TorchScript archive or .pt2 to export",
                         fix=kind.use)
    if path.suffix.lower() in ONNX_SUFFIXES + PLAN_SUFFIXES:  # named like a model, it is not
        raise wrong_kind(path, "checkpoint", "export") or UsageError(f"{path} is {kind.what}")
    if not zipfile.is_zipfile(path):
        return "checkpoint"  # torch_load_safely names what is wrong with it
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return "checkpoint"
    parts = [n.split("/", 1)[1] if "/" in n else n for n in names]
    if any(p.startswith("code/") for p in parts) and any(p == "constants.pkl" for p in parts):
        return "torchscript"
    if path.suffix == ".pt2" or any(p in ("archive_format", "serialized_exported_program.json")
                                    or p.startswith("models/") for p in parts):
        return "exported-program"
    return "checkpoint"


def load_source(path: str | os.PathLike[str], *, trust_code: bool = False,
                facts: SourceFacts | None = None) -> Source:
    """Load any supported source file; errors name the file and what to do."""
    p = Path(path)
    facts = facts or SourceFacts()
    kind = detect_kind(p)
    if kind == "checkpoint":
        if facts.given():
            raise UsageError(
                f"--{facts.given()[0].replace('_', '-')} applies to TorchScript / .pt2 inputs "
                f"only; {p} is a segdeploy checkpoint, which carries its own model card",
                fix="drop the option (the checkpoint's card is used)")
        from segdeploy.reference_models.checkpoint import load_model

        model, card = load_model(p)
        return Source(model, card, kind, p, sha256_file(p))
    if not trust_code:
        what = "a TorchScript archive" if kind == "torchscript" else \
            "a torch.export program (.pt2)"
        raise UsageError(
            f"{p} is {what}: loading it runs code stored in the file",
            expected="a segdeploy checkpoint, or explicit trust in this file",
            fix="pass --trust-code if you trust where the file came from")
    notes: list[str] = []
    if kind == "torchscript":
        model = _load_torchscript(p)
    else:
        model, declared = _load_exported_program(p, facts)
        if declared and facts.size_multiple is None:
            facts = dataclasses.replace(facts, size_multiple=declared)
            notes.append(f"size multiple {declared}: read from the .pt2's dynamic dims")
    card, more = _card_for(model, facts, p)
    return Source(model, card, kind, p, sha256_file(p), notes + more)


def _load_torchscript(p: Path) -> Any:
    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript on every load
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*TorchScript.*")
            warnings.filterwarnings("ignore", message=".*torch.jit.*")
            return torch.jit.load(str(p), map_location="cpu").eval()
    except Exception as exc:
        raise CheckpointError(f"{p} is not a loadable TorchScript archive ({_short(exc)})",
                              expected="a file written by torch.jit.save",
                              fix="re-save it with torch.jit.save(torch.jit.trace(model, x))"
                              ) from exc


def _load_exported_program(p: Path, facts: SourceFacts) -> tuple[Any, int | None]:
    """The program's module and the size multiple its dynamic dims declare (or None)."""
    from segdeploy.export.probe import pt2_size_multiple

    try:
        program = torch.export.load(str(p))
    except Exception as exc:
        raise CheckpointError(f"{p} is not a loadable torch.export program ({_short(exc)})",
                              expected="a file written by torch.export.save",
                              fix="re-save it with the PyTorch version you export with") from exc
    _require_dynamic(program, p, facts.static_size)
    multiple = None if facts.static_size else pt2_size_multiple(program)[0]
    return program.module(), multiple


def _require_dynamic(program: Any, p: Path, static_size: tuple[int, int] | None) -> None:
    """A .pt2 exported with static shapes cannot become a dynamic-shape ONNX."""
    user_inputs = [n for n in program.graph.nodes if n.op == "placeholder"
                   and n.name in program.graph_signature.user_inputs]
    if len(user_inputs) != 1:
        raise UsageError(f"{p} takes {len(user_inputs)} inputs",
                         expected="one image tensor N x C x H x W")
    val = user_inputs[0].meta.get("val")
    shape = list(getattr(val, "shape", []))
    if len(shape) != 4:
        raise UsageError(f"{p} takes an input of shape {shape}", expected="N x C x H x W")
    static = [name for name, d in zip(("batch", "height", "width"),
                                      (shape[0], shape[2], shape[3]), strict=True)
              if isinstance(d, int)]
    if static_size is not None and "batch" not in static:
        if (isinstance(shape[2], int) and isinstance(shape[3], int)
                and (shape[2], shape[3]) != tuple(static_size)):
            raise UsageError(f"--static-size {static_size[0]}x{static_size[1]} but {p} was "
                             f"exported for {shape[2]}x{shape[3]}",
                             fix=f"pass --static-size {shape[2]}x{shape[3]}")
        return
    if static:
        raise UsageError(
            f"{p} was exported with a fixed {', '.join(static)} "
            f"({'x'.join(str(d) for d in shape)})",
            expected="an ExportedProgram with dynamic batch, height and width",
            fix="re-export with torch.export.export(model, (x,), dynamic_shapes="
                "({0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO},)) and an example of batch >= 2, "
                "or pass --static-size HxW for a fixed-size graph")


def _input_channels(model: Any, facts: SourceFacts) -> int:
    """--in-channels, else as many --mean values as there are when more than one (one value
    means every channel, as `segdeploy card` documents), else the channels of the model's
    first 4-D weight (its stem convolution), else 3."""
    if facts.in_channels:
        return facts.in_channels
    given = max(len(facts.mean or []), len(facts.std or []))
    if given > 1:
        return given
    try:
        weight = next((w for w in model.parameters() if w.ndim == 4), None)
    except Exception:  # noqa: BLE001 - a module without parameters(): assume RGB
        weight = None
    return int(weight.shape[1]) if weight is not None else 3


def _per_channel(values: list[float], c: int, flag: str) -> list[float]:
    if len(values) == 1:
        return values * c
    if len(values) != c:
        raise UsageError(f"{flag} has {len(values)} values for a model with {c} input channels",
                         expected=f"{c} values (one per channel) or one value for all",
                         fix=f"pass {c} comma-separated values, or --in-channels to say how "
                             "many channels the model takes")
    return values


def _card_for(model: Any, facts: SourceFacts, p: Path) -> tuple[ModelCard, list[str]]:
    notes: list[str] = []
    c = _input_channels(model, facts)
    mean, std = facts.mean, facts.std
    if mean is None or std is None:
        if c != 3:
            raise UsageError(f"{p} takes {c} channels but no --mean/--std were given",
                             expected=f"{c} values each for --mean and --std (on image / 255)",
                             fix="pass the normalisation the model was trained with")
        mean, std = mean or IMAGENET_MEAN, std or IMAGENET_STD
        notes.append("mean/std not given: assumed ImageNet statistics")
    mean, std = _per_channel(mean, c, "--mean"), _per_channel(std, c, "--std")
    from segdeploy.export.probe import probe_model

    probe = probe_model(model, c, p, size_multiple=facts.size_multiple,
                        static_size=facts.static_size)
    k = probe.num_classes
    if facts.size_multiple is None and probe.size_multiple > 1:
        notes.append(f"H and W must be multiples of {probe.size_multiple} (found by running the "
                     f"model: {probe.describe()}); pass --size-multiple to set it")
    if facts.num_classes is not None and facts.num_classes != k:
        raise UsageError(f"--num-classes {facts.num_classes} but {p} outputs {k} channels",
                         fix=f"pass --num-classes {k}")
    names, threshold, binary_note = head_classes(
        k, facts.classes, facts.threshold, source=str(p),
        sigmoid=k == 1 and facts.threshold is None and _outputs_probabilities(model, c, probe))
    if binary_note:
        notes.append(binary_note)
    if names is not None and len(names) != k and threshold is None:
        raise UsageError(f"--classes names {len(names)} classes but {p} outputs {k}",
                         expected=f"{k} comma-separated names")
    classes = names or [f"class_{i}" for i in range(k)]
    m = probe.size_multiple
    stride = facts.stride or max(m, 1)
    unknown = [name for name, given in (("output_stride", facts.stride),
                                        ("min_size", None), ("train_size", None)) if not given]
    config: dict[str, Any] = {"source": p.name, "unknown": unknown}
    size = list(facts.static_size) if facts.static_size else [-(-256 // m) * m] * 2
    card = ModelCard(arch=facts.arch or p.stem.split(".")[0], num_classes=len(classes),
                     classes=classes, threshold=threshold,
                     in_channels=c, config=config, mean=[float(v) for v in mean],
                     std=[float(v) for v in std], output_stride=stride, size_multiple=m,
                     min_size=max(m, 32) if not facts.static_size else min(facts.static_size),
                     output_mode=probe.output_mode, train_size=size,
                     channel_mode="rgb" if c == 3 else "grey",
                     static_size=list(facts.static_size) if facts.static_size else None)
    return card, notes


def _outputs_probabilities(model: Any, channels: int, probe: Any) -> bool:
    """Whether a 1-channel model's output stays in [0, 1] on random inputs (a sigmoid in the
    model): its threshold is then 0.5, not a logit's 0."""
    from segdeploy.export.probe import first_output

    sizes = [hw for hw, out in probe.trials if isinstance(out, tuple)]
    if not sizes:
        return False
    x = torch.randn(2, channels, *sizes[-1], generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        y = first_output(model(x))
    return bool(torch.is_tensor(y) and float(y.min()) >= 0.0 and float(y.max()) <= 1.0)


def _short(exc: BaseException) -> str:
    return first_line(exc, limit=200)
