"""DPPO (Ren et al. 2024): a clipped PPO ratio per denoising step, the baseline TruDi is compared to."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import dispatch

from trudi.learners.chain_loss import ChainLoss

__all__ = ["DPPOLoss", "exponential_clip_schedule"]


def exponential_clip_schedule(
    first: float, last: float, num_steps: int, rate: float = 3.0
) -> list[float]:
    """Per-step clip ε rising exponentially from ``first`` (step x_K → x_{K-1}) to ``last``.

    DPPO clips the early, noisy denoising steps more tightly than the last ones.

    Example:
        >>> [round(e, 3) for e in exponential_clip_schedule(0.01, 0.1, 3)]
        [0.01, 0.026, 0.1]
    """
    if num_steps == 1:
        return [last]
    fractions = [
        (math.exp(rate * k / (num_steps - 1)) - 1) / (math.exp(rate) - 1) for k in range(num_steps)
    ]
    return [first + (last - first) * f for f in fractions]


class DPPOLoss(ChainLoss):
    """DPPO's loss as a TorchRL ``LossModule``: every denoising step is a PPO "action".

    For step j (``chain[..., j, :] → chain[..., j+1, :]``, j = 0 … K−1) with ratio
    r_j = p_θ,j / p_old,j of the current to the behaviour transition,

    .. math::  L = -\\frac{1}{K} Σ_j \\min(r_j A_j, \\mathrm{clip}(r_j, 1 - ε_j, 1 + ε_j) A_j),
               \\quad A_j = γ_d^{K-1-j} A,

    with a per-step clip schedule ε_j and an optional denoising discount γ_d (the step that produces
    x_0 gets the full advantage). Output: ``loss_objective``, ``loss_entropy``, ``loss_critic`` and
    detached ``clip_fraction``, ``kl_approx``, ``ratio_mean``, ``explained_variance``, ``entropy``.

    Args:
        actor_network: a chain policy (``DiffusionPolicy`` or ``GaussianPolicy``).
        critic_network: ``V(s)``, writing ``state_value``.
        clip_epsilon: ε for every step (float) or one per step (sequence of length K, e.g. from
            :func:`exponential_clip_schedule`).
        denoising_discount: γ_d in (0, 1].
        **ppo_kwargs: any keyword of :class:`torchrl.objectives.PPOLoss`.

    With a Gaussian policy (K = 1) and γ_d = 1 this is TorchRL's ``ClipPPOLoss`` objective.
    """

    def __init__(
        self,
        actor_network,
        critic_network=None,
        *,
        clip_epsilon: float | Sequence[float] = 0.2,
        denoising_discount: float = 1.0,
        **ppo_kwargs,
    ) -> None:
        super().__init__(actor_network, critic_network, **ppo_kwargs)
        num_steps = getattr(actor_network, "num_steps", None)
        if not isinstance(num_steps, int):
            raise ValueError("actor_network must expose num_steps (K), the chain length")
        epsilon = torch.as_tensor(clip_epsilon, dtype=torch.float32).flatten()
        if epsilon.numel() == 1:
            epsilon = epsilon.expand(num_steps).clone()
        if epsilon.numel() != num_steps or not bool((epsilon > 0).all()):
            raise ValueError(
                f"clip_epsilon must be a float > 0 or {num_steps} floats > 0 (one per step), "
                f"got {clip_epsilon!r}"
            )
        if not 0 < denoising_discount <= 1:
            raise ValueError(f"denoising_discount must be in (0, 1], got {denoising_discount!r}")
        self.register_buffer("clip_epsilon", epsilon)
        exponents = torch.arange(num_steps - 1, -1, -1, dtype=torch.float32)
        self.register_buffer("step_discount", denoising_discount**exponents)

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict = tensordict.clone(False)
        advantage = self._advantage(tensordict)
        chain = self._read(tensordict, "chain")
        old_log_prob = self._read(tensordict, "chain_log_prob")

        current = self._current_transitions(tensordict)
        log_ratio = current.log_prob(chain) - old_log_prob
        advantage = self._broadcast(advantage, log_ratio[..., :1]) * self.step_discount
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1 - self.clip_epsilon, 1 + self.clip_epsilon)
        surrogate = torch.minimum(ratio * advantage, clipped * advantage)
        losses = {"loss_objective": -surrogate.mean(-1, keepdim=True)}
        diagnostics = {
            "clip_fraction": ((ratio - 1).abs() > self.clip_epsilon).float().mean(),
            "kl_approx": (-log_ratio).sum(-1).mean(),
            "ratio_mean": ratio.mean(),
        }
        entropy = current.entropy().sum(-1, keepdim=True)
        return self._finish(tensordict, losses, entropy, diagnostics)
