"""Training options as one plain dataclass, shared by the CLI, the Python API and test fixtures."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segdeploy.dims import parse_dims
from segdeploy.errors import UsageError

OPTIMIZERS = ("adam", "sgd")
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-2}


@dataclass
class TrainConfig:
    """Everything `segdeploy train` accepts; defaults suit small models on `brain`."""

    arch: str
    data: str
    epochs: int = 20
    batch_size: int = 8
    #: None: 1e-3 for Adam, 1e-2 for SGD
    lr: float | None = None
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    #: channel multiplier of the model (None: the builder's default)
    width: float | None = None
    #: training crop (H, W); None: full images (they must then share one size)
    image_size: tuple[int, int] | None = (160, 160)
    #: only for folder datasets whose class count cannot be read from the data
    num_classes: int | None = None
    #: "grey", "grey3" or "rgb" (None: the dataset's default)
    channels: str | None = None
    loss: str = "ce"
    #: None: the builder's default
    batch_norm: bool | None = None
    backbone_weights: str | None = None
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    #: None: ARCH.pt in the current folder (X.pt when resuming from X.last.pt)
    output: str | None = None
    resume: str | None = None
    #: smoke runs: use only the first N training / validation images
    limit_train: int | None = None
    limit_val: int | None = None
    #: None: show the progress bar when stdout is a terminal
    progress: bool | None = None
    #: print one line per epoch (rank 0 only)
    verbose: bool = True
    #: random horizontal flip (it swaps left and right: off for left/right labels)
    hflip: bool = True
    #: random vertical flip (microscopy, satellite images)
    vflip: bool = False
    #: random scale range (MIN, MAX); None: 0.75-1.25 for crops, none for full images
    scale: tuple[float, float] | None = None
    #: fixed intensity window (LO, HI) for 16-bit / float images (CT, MRI); None: the
    #: training split's 0.5-99.5 percentiles
    intensity_window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}",
                             expected="one of " + ", ".join(OPTIMIZERS))
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"--{name.replace('_', '-')} is {getattr(self, name)}",
                                 expected="1 or more")
        if self.workers < 0:
            raise UsageError(f"--workers is {self.workers}", expected="0 or more")
        if self.lr is not None and not self.lr > 0:
            raise UsageError(f"--lr is {self.lr}", expected="a positive learning rate")
        for name in ("limit_train", "limit_val"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise UsageError(f"--{name.replace('_', '-')} is {v}", expected="1 or more")
        if isinstance(self.image_size, (int, str)):
            self.image_size = parse_size(self.image_size)
        if isinstance(self.scale, str):
            self.scale = parse_pair(self.scale, "--scale")
        if self.scale is not None:
            lo, hi = (float(v) for v in self.scale)
            if not 0 < lo <= hi:
                raise UsageError(f"--scale {lo:g},{hi:g}",
                                 expected="MIN,MAX with 0 < MIN <= MAX, e.g. 0.8,1.2 "
                                          "(1,1 turns scaling off)")
            self.scale = (lo, hi)
        if isinstance(self.intensity_window, str):
            self.intensity_window = parse_pair(self.intensity_window, "--intensity-window")
        if self.intensity_window is not None:
            lo, hi = (float(v) for v in self.intensity_window)
            if not hi > lo:
                raise UsageError(f"--intensity-window {lo:g},{hi:g}",
                                 expected="LO,HI with HI > LO, e.g. -100,300")
            self.intensity_window = (lo, hi)

    @property
    def learning_rate(self) -> float:
        return float(self.lr if self.lr is not None else DEFAULT_LR[self.optimizer])

    @property
    def output_path(self) -> Path:
        """-o; else, when resuming from `X.last.pt`, `X.pt` (where that run kept its best);
        else ARCH.pt."""
        if self.output:
            return Path(self.output)
        if self.resume and Path(self.resume).name.endswith(".last.pt"):
            r = Path(self.resume)
            return r.with_name(r.name[: -len(".last.pt")] + ".pt")
        return Path(f"{self.arch}.pt")

    @property
    def last_path(self) -> Path:
        """Where the resumable last-epoch checkpoint goes: `<output stem>.last.pt`."""
        out = self.output_path
        return out.with_name(f"{out.stem}.last{out.suffix or '.pt'}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("image_size", "scale", "intensity_window"):
            value = getattr(self, key)
            d[key] = list(value) if value else None
        return d


def parse_pair(text: str, option: str) -> tuple[float, float]:
    """'0.8,1.2' -> (0.8, 1.2); anything else is a UsageError naming the option."""
    try:
        lo, hi = (float(v) for v in str(text).replace(" ", "").split(","))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not two numbers",
                         expected=f"{option} MIN,MAX, e.g. 0.8,1.2 or -100,300") from None
    return lo, hi


def parse_size(text: str | int | None) -> tuple[int, int] | None:
    """`192` -> (192, 192); `160x224` -> (160, 224) as H x W; `full`/None -> None."""
    if text is None:
        return None
    if isinstance(text, int):
        parts = [text, text]
    else:
        s = str(text).strip().lower()
        if s in ("", "full", "none"):
            return None
        parts = list(parse_dims(s, ranks=(1, 2), what="--image-size"))
        if len(parts) == 1:
            parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise UsageError(f"image size {text!r} is not understood",
                         expected="one side (192) or H x W (160x224), positive integers, or 'full'")
    return parts[0], parts[1]
