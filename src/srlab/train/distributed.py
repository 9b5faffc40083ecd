"""Data-parallel training across processes (``torchrun``): detection, process group, collectives.

``torchrun --nproc_per_node=N -m srlab train ...`` starts N copies of ``srlab train`` with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment. :func:`setup` reads them and joins the process
group (NCCL on CUDA, Gloo on CPU); without them (a plain ``srlab train``) it returns a single-process
:class:`Dist` whose collectives do nothing, so the training loop has one code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist

from srlab.errors import SrlabError

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    # True when this process initialised the process group (and so must destroy it).
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        tdist.all_gather_object(gathered, obj)
        return gathered


def environment() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from a torchrun environment, or None outside one."""
    present = [name for name in _ENV if name in os.environ]
    if not present:
        return None
    if len(present) != len(_ENV):
        missing = ", ".join(name for name in _ENV if name not in os.environ)
        raise SrlabError(f"incomplete distributed environment (no {missing}): launch with torchrun")
    try:
        rank, world, local = (int(os.environ[name]) for name in _ENV)
    except ValueError:
        raise SrlabError("RANK, WORLD_SIZE and LOCAL_RANK must be integers: launch with torchrun") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise SrlabError(f"bad distributed environment RANK={rank} WORLD_SIZE={world}: launch with torchrun")
    return rank, world, local


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the torchrun process group if there is one; returns it and this process's device.

    On CUDA each process takes the GPU ``cuda:LOCAL_RANK``."""
    env = environment()
    if env is None or env[1] == 1:
        return Dist(), device
    rank, world, local = env
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise SrlabError(
                f"LOCAL_RANK {local} but this node has {torch.cuda.device_count()} GPUs: "
                "lower torchrun's --nproc_per_node"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if tdist.is_initialized():  # the caller made the group (srlab used as a library)
        if tdist.get_world_size() != world or tdist.get_rank() != rank:
            raise SrlabError("the existing process group does not match RANK / WORLD_SIZE")
        return Dist(rank, world, local, owns_group=False), device
    backend = "nccl" if device.type == "cuda" else "gloo"
    tdist.init_process_group(backend=backend, rank=rank, world_size=world)
    return Dist(rank, world, local, owns_group=True), device


def wait_for_every_rank(dist: Dist) -> None:
    """A barrier at the end of a run: a rank that tears the group down and exits while another still
    finishes (rank 0 writes the last checkpoint and report) can abort that one under gloo ("terminate
    called without an active exception", seen in CI)."""
    if dist.enabled and tdist.is_initialized():
        tdist.barrier()


def teardown(dist: Dist) -> None:
    if dist.owns_group and tdist.is_initialized():
        tdist.destroy_process_group()
