"""The ELBO-style pseudo log-density log π̂(a|s) of a chain policy's action, for entropy bonuses.

A diffusion policy's marginal density π(x_0|s) = ∫ p_θ(x_{0:K}|s) dx_{1:K} is intractable. For any
reference process q(x_{1:K}|x_0) (the noising process the chain reverses),

    log π̂(τ) = log p(x_K) + Σ_j log p_θ(x_{j+1} | x_j, s) − Σ_j log q(x_j | x_{j+1}) − log|J_squash(x_0)|

satisfies E_τ~p_θ[log π̂(τ)] = E[log π(a|s)] + E[KL(p_θ(x_{1:K}|x_0) ‖ q(x_{1:K}|x_0))] ≥ E[log π(a|s)]:
on the policy's own chains it over-estimates the log-density on average, so −E[log π̂] is a lower
bound on the policy's entropy (the bound DIME maximises). With K = 1 (a Gaussian policy) there is no
latent and log π̂ is the exact log-density of the squashed action.

Reference processes: :class:`~trudi.samplers.EulerMaruyamaSampler`'s OU kernels; for samplers on a
noise schedule (:class:`~trudi.samplers.ScheduledSampler`), the forward diffusion
q(x_t | x_s) = N(sqrt(ᾱ_t/ᾱ_s) x_s, (1 − ᾱ_t/ᾱ_s) I) between the visited timesteps, prior N(0, I).
"""

from __future__ import annotations

import math

import torch

from trudi.policies.chain_policy import ChainPolicy
from trudi.policies.diffusion_policy import DiffusionPolicy
from trudi.policies.squash import ActionSquash
from trudi.samplers import BestOfKSampler, Sampler, ScheduledSampler, transition_log_prob

__all__ = ["has_pseudo_log_prob", "pseudo_log_prob", "squash_log_det"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _normal_log_prob(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (-0.5 * ((x - loc) / scale).square() - scale.log() - _HALF_LOG_2PI).sum(-1)


def squash_log_det(squash: ActionSquash, x0: torch.Tensor) -> torch.Tensor:
    """log|det ∂ action/∂ x_0| of the squash, ``[*B]`` (``"clip"``: its value inside the bounds)."""
    if squash.mode == "none":
        return x0.new_zeros(x0.shape[:-1])
    half_range = (0.5 * (squash.high - squash.low)).to(x0.dtype).log().expand_as(x0)
    if squash.mode == "clip":
        return half_range.sum(-1)
    # log(1 − tanh²(x)) = 2 (log 2 − x − softplus(−2x)), stable for large |x|.
    log_dtanh = 2 * (math.log(2.0) - x0 - torch.nn.functional.softplus(-2 * x0))
    return (half_range + log_dtanh).sum(-1)


def _reference_log_prob(sampler: Sampler, chain: torch.Tensor) -> torch.Tensor:
    """log p(x_K) − Σ_j log q(x_j | x_{j+1}) of the sampler's reference process, ``[*B]``."""
    if hasattr(sampler, "reference_log_prob"):
        prior = sampler.prior_log_prob(chain[..., 0, :])
        return prior - sampler.reference_log_prob(chain).sum(-1)
    alphas_cumprod = sampler.schedule.alphas_cumprod().to(chain)
    path = torch.cat([sampler.timesteps, sampler.timesteps.new_zeros(1)])
    ratio = (alphas_cumprod[path[:-1]] / alphas_cumprod[path[1:]]).unsqueeze(-1)
    noisy, clean = chain[..., :-1, :], chain[..., 1:, :]
    forward = _normal_log_prob(noisy, ratio.sqrt() * clean, (1 - ratio).sqrt()).sum(-1)
    prior = _normal_log_prob(chain[..., 0, :], torch.zeros(()), torch.ones(()))
    return prior - forward


def has_pseudo_log_prob(policy: ChainPolicy) -> bool:
    """Whether :func:`pseudo_log_prob` knows the reference process of ``policy``'s sampler."""
    if not isinstance(policy, DiffusionPolicy):
        return isinstance(policy, ChainPolicy) and policy.num_steps == 1
    sampler = policy.sampler
    if isinstance(sampler, BestOfKSampler):
        return False
    return hasattr(sampler, "reference_log_prob") or isinstance(sampler, ScheduledSampler)


def pseudo_log_prob(
    policy: ChainPolicy, chain: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """log π̂ of the squashed action ``squash(chain[..., -1, :])`` (see the module doc), ``[*B]``.

    Args:
        policy: the chain policy that drew the chain (its sampler gives the reference process).
        chain: ``[*B, K+1, A]``; ``loc``, ``scale``: its transitions ``[*B, K, A]`` (> 0), e.g.
            from :meth:`~trudi.policies.ChainPolicy.rsample`, differentiable.

    Examples:
        >>> import torch
        >>> from trudi.policies import GaussianPolicy, pseudo_log_prob
        >>> policy = GaussianPolicy(torch.nn.Linear(3, 2), action_dim=2, squash="tanh")
        >>> chain, loc, scale = policy.rsample(torch.randn(5, 3))
        >>> pseudo_log_prob(policy, chain, loc, scale).shape
        torch.Size([5])
    """
    if not has_pseudo_log_prob(policy):
        raise ValueError(
            f"pseudo_log_prob needs a Gaussian policy or a DiffusionPolicy whose sampler has a "
            f"reference process (EulerMaruyamaSampler or a ScheduledSampler), got "
            f"{type(policy).__name__} with {type(getattr(policy, 'sampler', None)).__name__}."
        )
    log_prob = transition_log_prob(chain, loc, scale).sum(-1)
    if isinstance(policy, DiffusionPolicy):
        log_prob = log_prob + _reference_log_prob(policy.sampler, chain)
    return log_prob - squash_log_det(policy.squash, chain[..., -1, :])
