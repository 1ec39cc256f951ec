"""A denoiser whose last denoising steps are fine-tuned and whose earlier ones stay frozen (DPPO)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from trudi.samplers import Sampler
from trudi.validation import check_int

__all__ = ["FineTunedDenoiser"]


class FineTunedDenoiser(nn.Module):
    """DPPO's ``ft_denoising_steps``: the last n chain steps run a trainable denoiser, the earlier
    K − n a frozen copy of it taken at construction (DPPO's ``actor`` and ``actor_ft``).

    Steps are told apart by their timestep, so every sampler on the same schedule (the training
    sampler, a DDIM evaluation path with fewer steps) agrees on which network denoises where: a
    query at timestep t uses the trainable copy iff t ≤ the timestep of chain step K − n of
    ``sampler``. Both networks run on every query and :func:`torch.where` picks per timestep, as
    DPPO's code does (its frozen network denoises the whole batch, the fine-tuned one overwrites its
    rows): no host sync, one batched call per network, twice one network's cost. Gradients reach
    only the trainable copy and only through fine-tuned steps. Wrap a *pre-trained* denoiser:
    frozen steps of an untrained network stay untrained (DPPO's from-scratch runs fine-tune all K).

    :class:`~trudi.learners.DPPOLoss` reads n from here. A policy's learned scale
    (``DiffusionPolicy(learn_scale=True)``) is not part of the denoiser; DPPOLoss gives its frozen
    steps no gradient, other losses would.

    Args:
        denoiser: ``denoiser(observation, sample, timestep)``, e.g. :class:`DenoiserMLP`.
        sampler: the training sampler; its ``timesteps`` ``[K]`` place the boundary.
        ft_denoising_steps: n in [1, K].

    Example:
        >>> import torch
        >>> from trudi.policies import DenoiserMLP, FineTunedDenoiser
        >>> from trudi.samplers import AncestralSampler, CosineSchedule
        >>> sampler = AncestralSampler(CosineSchedule(5))
        >>> net = FineTunedDenoiser(DenoiserMLP(3, 2, 5, hidden_dim=16), sampler, 2)
        >>> net(torch.randn(7, 3), torch.randn(7, 2), torch.tensor(2)).shape
        torch.Size([7, 2])
        >>> sum(p.numel() for p in net.parameters() if p.requires_grad) == sum(
        ...     p.numel() for p in net.denoiser.parameters())
        True
    """

    def __init__(self, denoiser: nn.Module, sampler: Sampler, ft_denoising_steps: int) -> None:
        super().__init__()
        if not isinstance(sampler, Sampler):
            raise ValueError(f"sampler must be a trudi Sampler, got {type(sampler).__name__}")
        check_int("ft_denoising_steps", ft_denoising_steps)
        if ft_denoising_steps > sampler.num_steps:
            raise ValueError(
                f"ft_denoising_steps must be in [1, K] with K = {sampler.num_steps} (the "
                f"sampler's steps), got {ft_denoising_steps}"
            )
        self.denoiser = denoiser
        self.frozen = copy.deepcopy(denoiser).requires_grad_(False)
        self.ft_denoising_steps = ft_denoising_steps
        boundary = sampler.timesteps[sampler.num_steps - ft_denoising_steps].detach().clone()
        self.register_buffer("max_timestep", boundary, persistent=False)
        for name in ("observation_dim", "action_dim", "num_steps", "n_agents"):
            if hasattr(denoiser, name):
                setattr(self, name, getattr(denoiser, name))

    def forward(
        self, observation: torch.Tensor, sample: torch.Tensor, timestep: torch.Tensor
    ) -> torch.Tensor:
        """Denoise ``sample`` ``[*N, A]`` at ``timestep`` (broadcastable to ``*N``)."""
        tuned = self.denoiser(observation, sample, timestep)
        with torch.no_grad():
            frozen = self.frozen(observation, sample, timestep)
        fine_tuned = (torch.as_tensor(timestep, device=sample.device) <= self.max_timestep)[
            ..., None
        ]
        return torch.where(fine_tuned, tuned, frozen)

    def extra_repr(self) -> str:
        return f"ft_denoising_steps={self.ft_denoising_steps}"
