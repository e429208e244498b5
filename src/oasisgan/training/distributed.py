"""Multi-process training: torchrun / DistributedDataParallel, on GPUs (NCCL) or CPUs (gloo).

One process per device. ``torchrun --nproc_per_node=K -m oasisgan.cli train ...`` (or
``oasis train`` under torchrun) sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT;
:func:`init_distributed` reads them. Without them training runs in the plain single process.

What differs from one process, and why it matches the official DataParallel code:
- ``cfg.batch_size`` is the global batch; each rank takes ``batch_size // world_size``.
- The generator's parameter-free BatchNorm becomes ``SyncBatchNorm`` (``param_free_norm:
  syncbatch``), so statistics are those of the global batch, as the official synchronized BN.
- Losses (class balancing included) are computed per rank on its own batch, as the official
  code computes them per GPU; DDP averages the gradients, as DataParallel's mean does.
- z and the LabelMix bits come from per-rank seeds (the official replicas draw on their own GPUs).
- Only rank 0 logs, writes grids and checkpoints, and evaluates; the others wait.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn

from ..config import ConfigError


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # we created the process group (and destroy it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _pick_device(device: Optional[str], local_rank: int) -> torch.device:
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but no CUDA device is available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(dev)
    return dev


def init_distributed(device: Optional[str] = None, timeout_s: int = 3600) -> DistContext:
    """Join the process group described by torchrun's environment (or an existing one)."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        return DistContext(rank, world, local, _pick_device(device, local), owns_group=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(0, 1, 0, _pick_device(device, 0))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = _pick_device(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s),
                            **({"device_id": dev} if backend == "nccl" else {}))
    return DistContext(rank, world, local, dev, owns_group=True)


def cleanup(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over ranks: the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """Synchronised BatchNorm for CPU processes (gloo): torch's SyncBatchNorm runs on GPUs only.

    In training mode the batch mean and (biased) variance are those of the global batch, from two
    differentiable all-reduces (sum, then sum of squared deviations); running statistics are
    updated with the unbiased variance, as BatchNorm does. Eval mode is plain BatchNorm.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        xf = x.float()
        local = torch.cat([xf.sum(dim=(0, 2, 3)), xf.new_tensor([x.numel() // c])])
        total = _AllReduceSum.apply(local)
        n = total[c]
        mean = total[:c] / n
        centred = xf - mean.view(1, c, 1, 1)
        var = _AllReduceSum.apply((centred * centred).sum(dim=(0, 2, 3))) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)).detach(), alpha=m)
        out = centred * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return out.to(x.dtype)


def _to_cpu_sync(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, CPUSyncBatchNorm):
        new = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new.to(next(iter(module.buffers()), torch.empty(0)).device)
    for name, child in module.named_children():
        setattr(module, name, _to_cpu_sync(child))
    return module


def convert_sync_batchnorm(module: nn.Module, ctx: DistContext, norm: str) -> nn.Module:
    """BatchNorm -> synchronised BatchNorm when several processes train and the config asks for
    it (``param_free_norm: syncbatch``): torch's SyncBatchNorm on GPUs, CPUSyncBatchNorm on CPUs.
    State dict keys do not change, so checkpoints stay interchangeable."""
    if not (ctx.enabled and norm == "syncbatch"):
        return module
    if ctx.device.type == "cpu":
        return _to_cpu_sync(module)
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def wrap_ddp(module: nn.Module, ctx: DistContext) -> nn.Module:
    if not ctx.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DDP(module, device_ids=ids)  # buffers (BN stats, spectral-norm u/v) follow rank 0


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def any_true(ctx: DistContext, *flags: bool) -> List[bool]:
    """For each flag: is it set on any rank? (one all-reduce for all of them)."""
    if not ctx.enabled:
        return [bool(f) for f in flags]
    t = torch.tensor([1.0 if f else 0.0 for f in flags],
                     device=ctx.device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def gather_objects(ctx: DistContext, obj: Any) -> List[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not ctx.enabled:
        return [obj]
    out: List[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
