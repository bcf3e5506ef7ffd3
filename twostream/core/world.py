"""The processes of a run: one, or several under torchrun (DistributedDataParallel).

    torchrun --standalone --nproc_per_node=K $(which twostream) train ...
    torchrun --nnodes=2 --node_rank=R --rdzv_endpoint=HOST:29500 --nproc_per_node=K $(which twostream) train ...

torchrun starts K processes per machine and sets RANK, WORLD_SIZE and LOCAL_RANK in each; this
module joins them into a process group (gloo on the CPU, nccl on CUDA, one GPU per process: the
LOCAL_RANK-th) and offers the little the run needs from it: which process is the main one (it
alone logs, writes metrics, checkpoints, scores and reports), sums across processes, and gathering
per-process results in the main one. Without torchrun's variables the run is one process, and
every function here is what it would be with one process.
"""
from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger("twostream")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True in the process that logs and writes (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over the processes (every process gets the sums)."""
        if not self.distributed:
            return list(values)
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """Every process's `obj`, in rank order, in every process."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def _device(self) -> torch.device:
        import torch.distributed as dist

        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


ONE = World()
_current = ONE


def current() -> World:
    return _current


def setup_world(device: str) -> World:
    """The world of this process: torchrun's (joined into a process group on first call; `device`
    auto/cuda/cuda:N means nccl and this process's GPU, cpu means gloo), or one process."""
    global _current
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1 or _current.distributed:
        return _current
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    atexit.register(dist.destroy_process_group)
    _current = World(rank, size, local_rank)
    if not _current.main:  # the main process speaks for all
        logging.getLogger().setLevel(logging.ERROR)
    return _current


def rank_share(count: int, world: World) -> list[int]:
    """This process's items of `count`, as DistributedSampler deals them: every `size`-th from
    `rank`, the list padded by repeating its first items so that every process gets as many."""
    padded = -(-count // world.size) * world.size if count else 0
    return [i % count for i in range(world.rank, padded, world.size)]
