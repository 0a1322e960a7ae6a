"""DistributedDataParallel plumbing: the same `segdeploy train` runs alone or under torchrun.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; when they are
present we join the process group (nccl on CUDA, gloo on CPU), pin each rank to its GPU, and
reduce validation confusion matrices across ranks so every rank sees the global metrics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from segdeploy.errors import DeviceError, UsageError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_dist_info() -> DistInfo:
    """Read torchrun's environment; a plain `python` run is rank 0 of 1."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise UsageError(f"bad torchrun environment ({exc})",
                         expected="integer RANK, WORLD_SIZE, LOCAL_RANK") from exc
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """`cpu`, `cuda` or `auto` (cuda when available); each rank gets cuda:LOCAL_RANK."""
    if name not in ("cpu", "cuda", "auto"):
        raise UsageError(f"unknown device {name!r}", expected="cpu, cuda or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked but torch sees no CUDA device",
                          fix="use --device cpu, or install a CUDA build of torch on a GPU machine")
    count = torch.cuda.device_count()
    if info.local_rank >= count:
        raise DeviceError(f"rank {info.rank} wants cuda:{info.local_rank} but there are "
                          f"{count} GPUs",
                          fix="use --nproc_per_node <= the number of GPUs")
    torch.cuda.set_device(info.local_rank)
    return torch.device("cuda", info.local_rank)


def init_distributed(info: DistInfo, device: torch.device) -> bool:
    """Join the process group; True when this call joined it (so the caller leaves it)."""
    if not info.enabled or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise UsageError("this torch build has no torch.distributed",
                         fix="run without torchrun, or install a torch build with distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend=backend, **kwargs)
    return True


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(array: np.ndarray, info: DistInfo, device: torch.device) -> np.ndarray:
    """Sum a numpy array (a confusion matrix, loss totals) over all ranks."""
    if not info.enabled or not dist.is_initialized():
        return array
    # int64 (pixel counts, exact) and float64 both reduce on gloo and nccl.
    t = torch.from_numpy(np.ascontiguousarray(array)).to(device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().numpy()


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's decision, shared with every rank (e.g. 'this epoch is the best')."""
    if not info.enabled or not dist.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def sync_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Average floating buffers (BatchNorm running stats) over ranks, broadcast the rest.

    Each rank updates its running statistics on its own batches; without this, ranks would
    validate slightly different models and the reduced metrics would not be those of the
    checkpoint rank 0 saves.
    """
    if not info.enabled or not dist.is_initialized():
        return
    with torch.no_grad():
        for buf in model.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                buf.div_(info.world_size)
            else:
                dist.broadcast(buf, src=0)
