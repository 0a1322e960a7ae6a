"""Self-describing checkpoints: weights plus the ModelCard, loadable with weights_only=True.

A checkpoint is ``torch.save`` of a dict holding only plain Python types and tensors:
``format="segdeploy-checkpoint"``, ``schema_version``, ``card`` (ModelCard.to_dict()),
``state_dict`` and ``extra`` (epoch, optimizer state for resume...). Because it holds no
classes, ``torch.load(weights_only=True)`` reads it and segdeploy never unpickles code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segdeploy.atomic import atomic_path
from segdeploy.errors import ArtifactError, CheckpointError, ModelError
from segdeploy.manifest import ModelCard
from segdeploy.reference_models.safe_load import torch_load_safely

FORMAT = "segdeploy-checkpoint"
SCHEMA_VERSION = 1
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns: the card, the weights and the training extras."""

    card: ModelCard
    state_dict: dict[str, torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)


def card_from_model(model: nn.Module, *, classes: list[str] | None = None,
                    mean: list[float] | None = None, std: list[float] | None = None,
                    channel_mode: str | None = None, train_size: list[int] | None = None,
                    trained_on: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None,
                    intensity: dict[str, Any] | None = None) -> ModelCard:
    """A ModelCard from `model.meta` plus data facts (defaults: class_i names, ImageNet stats
    for 3 channels or 0.5/0.25 otherwise, rgb/grey channel mode, 256x256, 8-bit pixels)."""
    meta = _meta(model)
    k, c = meta["num_classes"], meta["in_channels"]
    binary = k == 1  # one output channel: background / foreground above 0 (a logit)
    if binary:
        k = 2
        classes = list(classes) if classes is not None else ["background", "foreground"]
    if mean is None:
        mean = IMAGENET_MEAN if c == 3 else [0.5] * c
    if std is None:
        std = IMAGENET_STD if c == 3 else [0.25] * c
    return ModelCard(
        arch=meta["arch"], num_classes=k, in_channels=c,
        classes=list(classes) if classes is not None else [f"class_{i}" for i in range(k)],
        config=_plain(meta["config"], "config"), mean=[float(v) for v in mean],
        std=[float(v) for v in std], output_stride=int(meta["output_stride"]),
        size_multiple=int(meta["size_multiple"]), min_size=int(meta["min_size"]),
        output_mode=meta["output_mode"],
        train_size=[int(v) for v in (train_size or [256, 256])],
        channel_mode=channel_mode or ("rgb" if c == 3 else "grey"),
        trained_on=_plain(dict(trained_on or {}), "trained_on"),
        metrics=_plain(dict(metrics or {}), "metrics"),
        intensity=_plain(dict(intensity or {"kind": "uint8"}), "intensity"),
        threshold=0.0 if binary else None)


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, card: ModelCard, *,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write the model's weights and card atomically to `path`; return the path."""
    meta = getattr(model, "meta", None)
    if meta is not None and (meta["arch"] != card.arch or
                             meta["num_classes"] != card.output_channels):
        raise ModelError(
            f"model card describes {card.arch} with {card.num_classes} classes but the model is "
            f"{meta['arch']} with {meta['num_classes']}",
            fix="build the card with card_from_model(model, ...)")
    payload = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "card": _plain(card.to_dict(), "card"),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "extra": _plain(dict(extra or {}), "extra"),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint with torch.load(weights_only=True); any bad file is a CheckpointError."""
    p = Path(path)
    data = torch_load_safely(p, "checkpoint")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        if isinstance(data, dict) and data and all(isinstance(v, torch.Tensor)
                                                   for v in data.values()):
            raise CheckpointError(
                f"{p} is a plain state dict, not a segdeploy checkpoint (no model card)",
                expected=f"a dict with format={FORMAT!r}, card and state_dict",
                fix="wrap it: model = get_model(arch, **config); model.load_state_dict(sd); "
                    "save_checkpoint(path, model, card_from_model(model, classes=[...]))")
        raise CheckpointError(f"{p} is not a segdeploy checkpoint (no format={FORMAT!r} key)",
                              expected="a .pt file written by `segdeploy train`")
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise CheckpointError(
            f"{p} has checkpoint schema version {version!r}, newer than this segdeploy reads",
            expected=f"schema version <= {SCHEMA_VERSION}", fix="upgrade segdeploy")
    try:
        card = ModelCard.from_dict(data.get("card"))
    except ArtifactError as exc:
        raise CheckpointError(f"{p} has an invalid model card: {exc}") from exc
    state = data.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{p} has no state_dict", fix="re-save the checkpoint")
    return Checkpoint(card=card, state_dict=state, extra=dict(data.get("extra") or {}))


def build_model(card: ModelCard, *, source: str = "checkpoint") -> nn.Module:
    """Rebuild the network a card describes (random weights); unknown arch -> CheckpointError."""
    from segdeploy.reference_models import get_model, list_models

    if card.arch not in list_models():
        raise CheckpointError(f"{source} is for architecture {card.arch!r}, unknown here",
                              expected=f"one of {', '.join(list_models())}",
                              fix="upgrade segdeploy or register the model before loading")
    try:
        return get_model(card.arch, **card.config)
    except ModelError as exc:
        raise CheckpointError(f"{source} has a config that cannot build {card.arch}: {exc}",
                              fix="re-create the checkpoint with this segdeploy") from exc


def load_model(path: str | os.PathLike[str],
               map_location: str | torch.device = "cpu") -> tuple[nn.Module, ModelCard]:
    """Rebuild the model from its card, load the weights strictly, return (model.eval(), card)."""
    ckpt = load_checkpoint(path)
    model = build_model(ckpt.card, source=str(path))
    missing, unexpected = _diff_keys(model.state_dict(), ckpt.state_dict)
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match {ckpt.card.arch}{ckpt.card.config}: missing keys "
            f"{_few(missing)}, unexpected keys {_few(unexpected)}",
            fix="re-create the checkpoint with this segdeploy version")
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(f"{path} has weights of the wrong shape for {ckpt.card.arch}: "
                              f"{str(exc).splitlines()[-1].strip()}") from exc
    return model.to(map_location).eval(), ckpt.card


def _meta(model: nn.Module) -> dict[str, Any]:
    meta = getattr(model, "meta", None)
    if not isinstance(meta, dict):
        raise ModelError("the model has no .meta dict",
                         expected="a model built by segdeploy.reference_models.get_model")
    return meta


def _diff_keys(expected: dict[str, Any], got: dict[str, Any]) -> tuple[list[str], list[str]]:
    return sorted(set(expected) - set(got)), sorted(set(got) - set(expected))


def _few(keys: list[str], n: int = 5) -> str:
    if not keys:
        return "none"
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _plain(obj: Any, where: str) -> Any:
    """Convert numpy scalars/arrays and paths to plain values; reject what weights_only refuses."""
    if obj is None or isinstance(obj, bool | int | float | str | torch.Tensor):
        return obj
    if isinstance(obj, dict):
        return {(_plain(k, where)): _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy scalar
        return obj.item()
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy array
        return torch.from_numpy(obj.copy()) if obj.dtype.kind in "biuf" else obj.tolist()
    raise CheckpointError(f"cannot store {where} of type {type(obj).__name__} in a checkpoint",
                          expected="plain values (numbers, strings, lists, dicts, tensors)",
                          fix="convert it to a plain value before saving")
