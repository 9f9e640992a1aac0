"""Data-parallel training under ``torchrun``: who this process is, and the few collectives the Trainer needs.

``torchrun --nproc_per_node N -m medseg.cli train CONFIG.yaml`` starts N copies
of the same command; each reads its rank from the environment torchrun sets
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). ``DistContext.from_env``
turns that into a process group (NCCL when each rank has a GPU, gloo on CPU)
and ``shard`` into each rank's share of the training samples. The split into
training and validation happens before sharding, on groups, so sharding never
puts a validation group into training.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """This process's place in a data-parallel run: ``rank`` of ``world_size``, on ``device``."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: str

    @classmethod
    def from_env(
        cls, device: str = "auto", env: Mapping[str, str] | None = None, init: bool = True
    ) -> DistContext | None:
        """The context torchrun describes in ``env`` (default ``os.environ``), or None outside torchrun.

        ``device``: "auto" takes ``cuda:LOCAL_RANK`` when CUDA is available, else
        the CPU; "cpu" forces gloo on CPU; "cuda"/"cuda:N" insist on a GPU (each rank
        uses ``cuda:LOCAL_RANK``). A world of one process is not distributed: None.
        ``init`` joins the process group (``torch.distributed.init_process_group``)
        unless this process already has one.
        """
        env = os.environ if env is None else env
        if "WORLD_SIZE" not in env:
            return None
        missing = [v for v in TORCHRUN_VARS if not env.get(v)]
        try:
            world_size = int(env["WORLD_SIZE"])
            rank = int(env.get("RANK", "0"))
            local_rank = int(env.get("LOCAL_RANK", "0"))
        except ValueError as e:
            raise ValueError(
                f"torchrun environment is malformed ({e}); expected integers in RANK, WORLD_SIZE, LOCAL_RANK"
            ) from None
        if world_size <= 1:
            return None
        if missing:
            raise ValueError(
                f"WORLD_SIZE={world_size} is set but {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not: start the run with "
                f"`torchrun --nproc_per_node N -m medseg.cli train CONFIG.yaml`"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"RANK={rank} is outside 0..{world_size - 1} (WORLD_SIZE={world_size})")
        dev = _rank_device(device, local_rank)
        ctx = cls(rank, world_size, local_rank, "nccl" if dev.startswith("cuda") else "gloo", dev)
        if init:
            ctx.init()
        return ctx

    def init(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            return
        if self.device.startswith("cuda"):
            torch.cuda.set_device(torch.device(self.device))
        # env:// reads MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE exactly as torchrun set them
        dist.init_process_group(backend=self.backend, init_method="env://", rank=self.rank, world_size=self.world_size)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: Sequence[int], epoch: int, seed: int, shuffle: bool = True) -> list[int]:
        """This rank's share of ``indices`` for ``epoch``, as ``DistributedSampler`` would give it.

        Every rank draws the same permutation (seeded with ``seed + epoch``), pads it
        by repeating its start to a multiple of ``world_size`` (so every rank runs the
        same number of steps and no collective waits forever), and takes every
        ``world_size``-th element from its rank. ``shuffle=False`` keeps the given
        order, for a caller that already shuffled with its own resumable generator.
        """
        return shard_indices(indices, self.rank, self.world_size, epoch, seed, shuffle)

    def barrier(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.local_rank])
            else:
                dist.barrier()

    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """Average ``tensor`` over the ranks, in place; returns it."""
        import torch.distributed as dist

        moved = tensor.to(self._comm_device())
        dist.all_reduce(moved, op=dist.ReduceOp.SUM)
        moved /= self.world_size
        if moved is not tensor:
            tensor.copy_(moved)
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any: a cancel seen by one rank stops all at the same step."""
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast_object(self, obj: Any = None, src: int = 0) -> Any:
        """``obj`` from rank ``src`` on every rank (e.g. rank 0's early-stopping decision)."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=src, device=self._comm_device() if self.backend == "nccl" else None)
        return box[0]

    def cleanup(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return torch.device(self.device) if self.backend == "nccl" else torch.device("cpu")


def shard_indices(
    indices: Sequence[int], rank: int, world_size: int, epoch: int, seed: int, shuffle: bool = True
) -> list[int]:
    """See ``DistContext.shard``; a function so it can be checked without a process group."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    items = list(indices)
    if not items:
        return []
    if shuffle:
        # DistributedSampler's recipe, so runs can be compared with a stock torch loop
        g = torch.Generator()
        g.manual_seed(int(seed) + int(epoch))
        items = [items[i] for i in torch.randperm(len(items), generator=g).tolist()]
    total = math.ceil(len(items) / world_size) * world_size
    padded = (items * math.ceil(total / len(items)))[:total]
    return padded[rank:total:world_size]


def _rank_device(device: str, local_rank: int) -> str:
    device = (device or "auto").lower()
    if device == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} was asked for but CUDA is not available; use device 'cpu' (gloo) or 'auto'"
            )
        # torchrun gives each local rank its own GPU; a fixed index would put every rank on one card
        return f"cuda:{local_rank}"
    raise ValueError(f"device {device!r} cannot be used for distributed training; valid: auto, cpu, cuda")


def parameter_digest(model: torch.nn.Module) -> str:
    """sha256 over the model's parameters (names, dtypes, shapes, bytes), unwrapping DDP.

    Parameters, not buffers: DDP keeps parameters identical on every rank, while
    BatchNorm running statistics legitimately differ after each rank's last batch.
    """
    model = getattr(model, "module", model)
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        t = p.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
