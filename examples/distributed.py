"""Data-parallel training with ``torch.distributed``: one process per device, launched by torchrun.

Each rank collects its own batch with its own envs and seed, computes the loss and its gradients on
it, and :func:`average_gradients` averages the gradients over the ranks before the optimizer step,
so the ranks, which start from rank 0's parameters (:func:`broadcast_parameters`), take identical
steps and stay identical. With minibatch losses that are means over equal-sized minibatches, the
averaged gradient is the gradient of the mean over the union of the ranks' minibatches: two ranks
with batches ``a`` and ``b`` take the step one process takes on ``cat(a, b)``.

Gradients go in one flat all-reduce, not through ``DistributedDataParallel``. ``DDP(loss)`` does
run the four arms of ``examples/train.py`` (their forwards use every parameter), but it asks every
forward to use every parameter (or ``find_unused_parameters=True``, a graph traversal per step),
one backward per forward, and calls through the wrapper (``ddp(td)``, ``ddp.module.set_keys``,
``module.``-prefixed state dicts). A learner whose actor, critic and dual steps touch different
parameters, or run separate backwards, breaks those rules; one all-reduce of a flat buffer of the
gradients that exist works with any loss module and parameter set, for one collective per
optimizer step. What DDP adds, overlapping the reduction with the backward, is worth little for
networks of ~10^5 parameters.

The three calls a training loop adds (``docs/distributed.md``)::

    rank = distributed.setup()                    # process group; seed with seed + rank.rank
    distributed.broadcast_parameters(loss)        # once, after building the loss
    distributed.average_gradients(loss.parameters())  # after backward, before clip and step

and, with an observation normaliser, :func:`average_normalizer` after each collection. Outside
torchrun (no ``RANK`` in the environment) every function is a no-op of a single rank.

Example (one process; under ``torchrun --nproc_per_node=2`` the same lines run on two ranks):
    >>> import torch
    >>> from examples import distributed
    >>> rank = distributed.setup()
    >>> rank.rank, rank.world_size, rank.is_main
    (0, 1, True)
    >>> net = torch.nn.Linear(3, 1)
    >>> distributed.broadcast_parameters(net)
    >>> net(torch.ones(2, 3)).sum().backward()
    >>> distributed.average_gradients(net.parameters())
    >>> distributed.all_mean(torch.tensor([1.0, 3.0])).tolist()
    [1.0, 3.0]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torchrl.envs.transforms import VecNormV2

__all__ = [
    "Rank",
    "all_mean",
    "any_rank",
    "average_gradients",
    "average_normalizer",
    "broadcast_parameters",
    "from_main",
    "gather",
    "setup",
    "shutdown",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Rank:
    """This process's place in the job."""

    rank: int  # 0 .. world_size - 1; rank 0 logs, evaluates and writes files
    world_size: int  # number of processes
    device: torch.device  # this rank's device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def setup(device: str | torch.device = "cpu") -> Rank:
    """Join the job torchrun started (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` in the environment)
    or the process group already initialised; a single rank otherwise.

    Args:
        device: ``"cpu"`` (gloo) or ``"cuda"`` (NCCL, rank on ``cuda:<LOCAL_RANK>``): where the
            tensors that are reduced live.
    """
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {str(device)!r}")
    if not dist.is_initialized() and "RANK" in os.environ:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if not dist.is_initialized():
        return Rank(0, 1, device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return Rank(dist.get_rank(), dist.get_world_size(), device)


def shutdown() -> None:
    """Leave the process group, if any (at the end of a torchrun job)."""
    if dist.is_initialized():
        dist.destroy_process_group()


@torch.no_grad()
def broadcast_parameters(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers into every rank's ``module``, in place."""
    if not _active():
        return
    for tensor in (*module.parameters(), *module.buffers()):
        dist.broadcast(tensor.data, src)


@torch.no_grad()
def average_gradients(parameters: Iterable[torch.Tensor]) -> None:
    """Replace each gradient by its mean over the ranks, in one all-reduce of a flat buffer.

    Every rank must hold gradients for the same parameters (the same loss graph on every rank);
    parameters without a gradient are skipped, as the optimizer skips them.
    """
    if not _active():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)  # SUM: gloo has no AVG
    flat /= dist.get_world_size()
    for grad, mean in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        grad.copy_(mean.view_as(grad))


@torch.no_grad()
def average_normalizer(normalizer: VecNormV2 | None) -> None:
    """Average a ``VecNorm`` observation normaliser's running statistics over the ranks.

    ``VecNorm`` keeps exponential moving averages of ``x`` (``loc``) and ``x**2`` (``var``) and a
    step ``count`` for their bias correction. Ranks that start a collection with the same
    statistics and step the same number of envs keep the same count, and the mean of their moving
    averages is the moving average of the mean over the ranks' observations: after this call each
    rank holds the statistics of all ranks' observations. Call it after every collection.
    """
    if not _active() or normalizer is None:
        return
    state = normalizer.get_extra_state()
    if not state:  # not initialised: nothing seen yet
        return
    keys = sorted(k for k, v in state.items() if v.is_floating_point())
    flat = torch.cat([state[k].reshape(-1) for k in keys])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for key, mean in zip(keys, flat.split([state[k].numel() for k in keys]), strict=True):
        state[key] = mean.view_as(state[key]).clone()
    normalizer.set_extra_state(state)


def all_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over the ranks (a new tensor; ``tensor`` itself on a single rank)."""
    if not _active():
        return tensor
    total = tensor.clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (a stop request that reached only some ranks)."""
    if not _active():
        return flag
    # NCCL reduces CUDA tensors only.
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    total = torch.tensor(float(flag), device=device)
    dist.all_reduce(total)
    return total.item() > 0


def gather(obj: T) -> list[T] | None:
    """Every rank's ``obj`` (any picklable object), in rank order, on rank 0; ``None`` elsewhere."""
    if not _active():
        return [obj]
    objects = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, objects, dst=0)
    return objects


def from_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only (e.g. open a run directory) and give every rank its result; an
    exception it raises is raised on every rank."""
    if not _active():
        return fn()
    box: list[Any] = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = (True, fn())
        except Exception as error:
            box[0] = (False, error)
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value
