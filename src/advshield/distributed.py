"""Data parallelism under ``torchrun`` (DDP: gloo on CPU, nccl on CUDA).

Outside torchrun every helper degrades to the single-process case, so the same
code path runs on a laptop and on N processes.
"""

from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` items."""
        per = -(-n // self.world_size)
        return slice(min(self.rank * per, n), min((self.rank + 1) * per, n))

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_sum(self, values: dict[str, float]) -> dict[str, float]:
        """Element-wise sum of a dict of numbers over all ranks (same keys everywhere)."""
        if not self.enabled or not values:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device())
        dist.all_reduce(t)
        return dict(zip(keys, t.tolist()))


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group torchrun set up (env WORLD_SIZE > 1); a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local)
        # Long timeout: rank 0 may spend a while crafting adversarial pairs before the next collective.
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=6))
        atexit.register(_shutdown)
    return DistContext(rank, world, local)


def _shutdown() -> None:
    """Destroy the process group before the interpreter exits: gloo's threads torn down by exit alone
    occasionally abort a rank ("terminate called without an active exception") after its work is done."""
    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def local_device(device: torch.device, ctx: DistContext) -> torch.device:
    """One GPU per process under torchrun; CPU stays CPU."""
    if ctx.enabled and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device
