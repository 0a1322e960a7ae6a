"""The training loop behind `segdeploy train`: one process, or DistributedDataParallel.

Under `torchrun --nproc_per_node N` every rank trains on its shard (DistributedSampler),
validates on its share of the val images, and the confusion matrices are summed across ranks
so each rank sees the same metrics; only rank 0 prints and writes checkpoints. The BEST
epoch (by val mean IU) is saved at `-o`, the last epoch with optimizer state at
`<stem>.last.pt` for `--resume`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from segdeploy.atomic import check_output_path
from segdeploy.errors import CheckpointError, DataError, UsageError
from segdeploy.metrics import ConfusionMatrix
from segdeploy.training import distributed
from segdeploy.training.batches import TrainCrops, check_same_size
from segdeploy.training.config import TrainConfig
from segdeploy.training.evaluate import Geometry, evaluate
from segdeploy.training.losses import build_loss
from segdeploy.training.setup import build_model, crop_note, make_card, resolve_classes


@dataclass
class TrainResult:
    """What a run achieved; `best_metrics` is ConfusionMatrix.compute() at the best epoch."""

    best_miou: float
    best_epoch: int
    best_metrics: dict[str, Any]
    output: Path
    last: Path
    epochs_run: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def train(cfg: TrainConfig, *, console=None) -> TrainResult:
    """Train `cfg.arch` on `cfg.data`; works alone and under torchrun."""
    info = distributed.env_dist_info()
    device = distributed.resolve_device(cfg.device, info)
    joined = distributed.init_distributed(info, device)
    try:
        return _Trainer(cfg, info, device, console).run()
    finally:
        if joined:
            distributed.cleanup_distributed()


class _Trainer:
    def __init__(self, cfg: TrainConfig, info: distributed.DistInfo, device: torch.device, console):
        from rich.console import Console

        self.cfg, self.info, self.device = cfg, info, device
        self.console = console or Console()
        self.main = info.is_main
        self.show_bar = self.main and (cfg.progress if cfg.progress is not None
                                       else self.console.is_terminal)

    # -- set-up ------------------------------------------------------------------------------
    def _setup(self) -> None:
        from segdeploy.data import get_dataset

        cfg = self.cfg
        self.output = check_output_path(cfg.output_path)
        self.last = check_output_path(cfg.last_path)
        window = None
        if cfg.intensity_window is not None:
            from segdeploy.imaging import IntensityMapping

            window = IntensityMapping.window(*cfg.intensity_window, source="--intensity-window")
        self.train_ds = get_dataset(cfg.data, split="train", channel_mode=cfg.channels,
                                    intensity=window)
        self.val_ds = get_dataset(cfg.data, split="val", channel_mode=self.train_ds.channel_mode,
                                  intensity=self.train_ds.intensity)
        self.train_idx = list(range(len(self.train_ds)))[:cfg.limit_train]
        self.val_idx = list(range(len(self.val_ds)))[:cfg.limit_val]
        for split, idx in (("train", self.train_idx), ("val", self.val_idx)):
            if not idx:
                raise DataError(f"the {split} split of {cfg.data!r} has no images",
                                fix="check the dataset folder (images + masks for both splits)")
        self.num_classes, self.classes = resolve_classes(self.train_ds, cfg.num_classes)

        self.resume_state: dict[str, Any] = {}
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        if cfg.resume:
            self.model, self.resume_state = self._load_resume()
        else:
            self.model = build_model(cfg, self.num_classes, self.train_ds.in_channels)
        self.meta = dict(self.model.meta)
        self.geometry = Geometry.of(self.meta)  # validation: stride-aligned, as eval
        size = cfg.image_size
        if size is not None:
            self.geometry.check_train_size(*size)
        elif cfg.batch_size > 1:
            check_same_size(self.train_ds, self.train_idx)
        self.model.to(self.device)
        self.net = self.model
        if self.info.enabled:
            if self.device.type == "cuda":
                self.net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.net)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.net, device_ids=ids)

        self.crops = crops = TrainCrops(self.train_ds, self.train_idx, size, self.train_ds.mean,
                                        self.train_ds.std, geometry=self.geometry,
                                        seed=cfg.seed, hflip=cfg.hflip, vflip=cfg.vflip,
                                        scale=cfg.scale)
        if self.info.enabled:
            self.sampler = DistributedSampler(crops, num_replicas=self.info.world_size,
                                              rank=self.info.rank, shuffle=True, seed=cfg.seed)
            self.loader_gen = None
        else:
            self.sampler = None
            self.loader_gen = torch.Generator()
        self.loader = DataLoader(crops, batch_size=cfg.batch_size, sampler=self.sampler,
                                 shuffle=self.sampler is None, generator=self.loader_gen,
                                 num_workers=cfg.workers, drop_last=False,
                                 pin_memory=self.device.type == "cuda")
        self.loss_fn = build_loss(cfg.loss, binary=self.num_classes == 1)
        self.steps_per_epoch = len(self.loader)
        self.optimizer = self._optimizer()
        self.total_steps = total = cfg.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: _cosine(step, total))
        self.start_epoch, self.best_miou, self.best_epoch = 0, -1.0, 0
        self.best_metrics: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        if self.resume_state:
            self._restore(self.resume_state)

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        params = [p for p in self.net.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=0.9,
                                   weight_decay=cfg.weight_decay)
        return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    def _load_resume(self):
        from segdeploy.reference_models import get_model
        from segdeploy.reference_models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(self.cfg.resume)
        card, extra = ckpt.card, dict(ckpt.extra or {})
        if card.arch != self.cfg.arch:
            raise UsageError(f"--resume checkpoint holds a {card.arch!r} model, not "
                             f"{self.cfg.arch!r}", fix=f"run `segdeploy train {card.arch} "
                             f"--resume {self.cfg.resume}`")
        if "optimizer" not in extra:
            raise CheckpointError(f"{self.cfg.resume} has no optimizer state to resume from",
                                  expected="the `<output stem>.last.pt` written by "
                                           "`segdeploy train`",
                                  fix="pass the .last.pt file to --resume")
        if card.output_channels != self.num_classes:
            raise UsageError(f"--resume checkpoint has {card.num_classes} classes but the data "
                             f"has {self.num_classes}", fix="resume on the same dataset")
        model = get_model(card.arch, **card.config)
        model.load_state_dict(ckpt.state_dict)
        return model, extra

    def _restore(self, extra: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(extra["optimizer"])
        # the lambda is not in the state: rebuild the position and the lr for THIS run's length
        last = int(extra.get("scheduler", {}).get("last_epoch", 0))
        self.scheduler.last_epoch = last
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * _cosine(last, self.total_steps)
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        self.start_epoch = int(extra.get("epoch", 0))
        self.best_miou = float(extra.get("best_miou", -1.0))
        self.best_epoch = int(extra.get("best_epoch", 0))
        self.best_metrics = dict(extra.get("best_metrics", {}))
        self.history = list(extra.get("history", []))
        if self.start_epoch >= self.cfg.epochs:
            raise UsageError(f"{self.cfg.resume} has already trained {self.start_epoch} epochs",
                             expected=f"--epochs above {self.start_epoch}",
                             fix=f"pass --epochs {self.start_epoch + 10} (the total, not extra)")

    def _say(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    # -- epochs ----------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        t0 = time.perf_counter()
        self._setup()
        self._announce()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
        with Progress(*columns, console=self.console, disable=not self.show_bar,
                      transient=True) as bar:
            for epoch in range(self.start_epoch, self.cfg.epochs):
                te = time.perf_counter()
                train_loss = self._train_epoch(epoch, bar)
                metrics, val_loss = self._validate(epoch, bar)
                self._finish_epoch(epoch, train_loss, val_loss, metrics, time.perf_counter() - te)
        distributed.barrier(self.info)
        seconds = time.perf_counter() - t0
        if self.main and not self.output.exists():
            self._say(f"note: no epoch of this run beat the best val mIoU {self.best_miou:.4f} "
                      f"(epoch {self.best_epoch}) of the resumed run, so {self.output} was not "
                      "written; the best checkpoint is the one that run wrote")
        if self.main and self.cfg.verbose:
            m = self.best_metrics
            self._say(
                f"best val mIoU {self.best_miou:.4f} (pixel acc {_fmt(m.get('pixel_accuracy'))}, "
                f"fw IoU {_fmt(m.get('fw_iou'))}) at epoch {self.best_epoch} -> {self.output}; "
                f"last epoch -> {self.last} ({seconds:.1f} s)")
        return TrainResult(best_miou=self.best_miou, best_epoch=self.best_epoch,
                           best_metrics=self.best_metrics, output=self.output, last=self.last,
                           epochs_run=self.cfg.epochs - self.start_epoch, seconds=seconds,
                           history=self.history)

    def _announce(self) -> None:
        if not self.main:
            return
        from rich.markup import escape

        for note in self.train_ds.warnings:  # sparse ids, unused labelmap colours, nodata
            self.console.print("[yellow]warning[/] " + escape(note), highlight=False,
                               soft_wrap=True)
        notes = [getattr(self.train_ds, "split_note", None),
                 crop_note(self.cfg.image_size, self.train_ds.describe().get("image_sizes"))]
        for note in filter(None, notes):  # a split segdeploy made; a crop no image fills
            self.console.print("[cyan]note[/] " + escape(note), highlight=False, soft_wrap=True)
        if not self.cfg.verbose:
            return
        n_params = sum(p.numel() for p in self.model.parameters())
        ranks = f" x {self.info.world_size} ranks" if self.info.enabled else ""
        start = f", resuming after epoch {self.start_epoch}" if self.start_epoch else ""
        self._say(
            f"training {self.cfg.arch} ({n_params / 1e6:.2f} M params) on {self.cfg.data}: "
            f"{len(self.train_idx)} train / {len(self.val_idx)} val images, "
            f"{len(self.classes)} classes"
            + (" (a binary head: one logit)" if self.num_classes == 1 else "")
            + f", {self.device}{ranks}{start}")

    def _train_epoch(self, epoch: int, bar) -> float:
        cfg = self.cfg
        self.net.train()
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        else:
            self.loader_gen.manual_seed(cfg.seed * 1_000_003 + epoch)
        self.crops.epoch = epoch  # augmentation draws from sample_rng(seed, epoch, index)
        task = bar.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=self.steps_per_epoch,
                            info="")
        total, count = 0.0, 0
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            logits = self.net(x)
            h, w = y.shape[-2:]
            if logits.shape[-2] < h or logits.shape[-1] < w:
                raise UsageError(f"model output {tuple(logits.shape[-2:])} is smaller than "
                                 f"the target {(h, w)}",
                                 fix="check the model's output_mode/min_size in model.meta")
            logits = logits[..., :h, :w]  # "valid" models: padded input, output from (0, 0)
            loss = self.loss_fn(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            value = float(loss.detach())
            if math.isfinite(value):
                total, count = total + value * x.shape[0], count + x.shape[0]
            bar.update(task, advance=1, info=f"loss {value:.4f}")
        bar.remove_task(task)
        sums = distributed.all_reduce_sum(np.array([total, count], dtype=np.float64), self.info,
                                self.device)
        return float(sums[0] / sums[1]) if sums[1] else float("nan")

    def _validate(self, epoch: int, bar) -> tuple[dict[str, Any], float]:
        # every rank scores the weights rank 0 saves
        distributed.sync_buffers(self.model, self.info)
        mine = self.val_idx[self.info.rank::self.info.world_size]
        task = bar.add_task(f"val {epoch + 1}/{self.cfg.epochs}", total=len(mine), info="")
        cm, loss_sum, count = evaluate(
            self.model, self.val_ds, mine, num_classes=len(self.classes),
            mean=self.train_ds.mean, std=self.train_ds.std, geometry=self.geometry,
            device=self.device, loss_fn=self.loss_fn,
            on_step=lambda: bar.update(task, advance=1))
        bar.remove_task(task)
        matrix = distributed.all_reduce_sum(cm.matrix, self.info, self.device)
        sums = distributed.all_reduce_sum(np.array([loss_sum, count], dtype=np.float64), self.info,
                                self.device)
        metrics = ConfusionMatrix.from_matrix(matrix).compute()
        return metrics, float(sums[0] / sums[1]) if sums[1] else float("nan")

    def _finish_epoch(self, epoch: int, train_loss: float, val_loss: float,
                      metrics: dict[str, Any], seconds: float) -> None:
        miou = metrics["mean_iou"] if metrics["mean_iou"] is not None else 0.0
        best = miou > self.best_miou
        record = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                  "lr": self.optimizer.param_groups[0]["lr"], "seconds": round(seconds, 2),
                  **{k: metrics[k] for k in ("pixel_accuracy", "mean_accuracy", "mean_iou",
                                             "fw_iou")}}
        self.history.append(record)
        card_metrics = {"epoch": epoch + 1, "split": "val", "images": len(self.val_idx),
                        "val_loss": val_loss, **metrics}
        if best:
            self.best_miou, self.best_epoch, self.best_metrics = miou, epoch + 1, card_metrics
        if self.main:
            self._save(epoch, card_metrics, best)
            if self.cfg.verbose:
                self._say(_epoch_line(record, self.cfg.epochs, best))

    def _save(self, epoch: int, metrics: dict[str, Any], best: bool) -> None:
        from segdeploy.reference_models.checkpoint import save_checkpoint

        extra: dict[str, Any] = {
            "epoch": epoch + 1, "best_miou": self.best_miou, "best_epoch": self.best_epoch,
            "train_config": self.cfg.to_dict(), "world_size": self.info.world_size,
        }
        card = make_card(self.meta, self.train_ds, self.classes, self.cfg,
                         len(self.train_idx), metrics, self.crops.transform.describe())
        if best:
            save_checkpoint(self.output, self.model, card, extra=extra)
        extra.update(optimizer=self.optimizer.state_dict(),
                     scheduler={"last_epoch": self.scheduler.last_epoch},
                     best_metrics=self.best_metrics, history=self.history)
        save_checkpoint(self.last, self.model, card, extra=extra)


def _cosine(step: int, total: int, floor: float = 0.01) -> float:
    """Cosine decay of the learning rate from 1x to `floor`x over the whole run."""
    t = min(step, total) / max(total, 1)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def _epoch_line(r: dict[str, Any], epochs: int, best: bool) -> str:
    f = _fmt
    return (f"epoch {r['epoch']:>3}/{epochs}  loss {f(r['train_loss'])}  "
            f"val loss {f(r['val_loss'])}  pixel acc {f(r['pixel_accuracy'])}  "
            f"mean acc {f(r['mean_accuracy'])}  mIoU {f(r['mean_iou'])}  "
            f"fwIoU {f(r['fw_iou'])}  {r['seconds']:.1f}s" + ("  *best" if best else ""))
