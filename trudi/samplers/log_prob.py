"""Log-densities of a chain's Gaussian transitions: the one place trudi writes the normal density.

Samplers, best-of-K scores and the policies' :class:`~trudi.policies.ChainNormal` all score chains
with these functions (``docs/design.md``, "The method"). Shapes: ``chain`` ``[*B, K+1, A]``
(x_K … x_0), ``loc`` and ``scale`` ``[*B, K, A]``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["HALF_LOG_2PI", "chain_log_likelihood", "normal_log_prob", "transition_log_prob"]

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def normal_log_prob(value: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(value; loc, scale²), broadcast over the three arguments.

    A zero scale (a deterministic ODE step) is a point mass; it contributes 0 rather than NaN, so
    chains that mix deterministic and stochastic steps can still be scored.
    """
    stochastic = scale > 0
    safe_scale = torch.where(stochastic, scale, torch.ones_like(scale))
    z = (value - loc) / safe_scale
    density = -0.5 * z.square() - safe_scale.log() - HALF_LOG_2PI
    return torch.where(stochastic, density, torch.zeros_like(density))


def transition_log_prob(
    chain: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """log N(chain[..., j+1, :]; loc[..., j, :], scale[..., j, :]²) summed over A, ``[*B, K]``."""
    return normal_log_prob(chain[..., 1:, :], loc, scale).sum(-1)


def chain_log_likelihood(
    chain: torch.Tensor,
    loc: torch.Tensor,
    scale: torch.Tensor,
    observation: torch.Tensor | None = None,
) -> torch.Tensor:
    """The chain's joint log-likelihood log N(x_K; 0, I) + Σ_j log N(x_{j+1}; loc_j, scale_j²).

    Returns ``[*B]``. Zero-scale (deterministic) transitions contribute 0, so for the ODE the
    score is the prior sample's likelihood. The default score of
    :class:`~trudi.samplers.BestOfKSampler`; ``observation`` is unused.
    """
    prior = chain[..., 0, :]
    prior_log_prob = normal_log_prob(prior, torch.zeros_like(prior), torch.ones_like(prior))
    return prior_log_prob.sum(-1) + transition_log_prob(chain, loc, scale).sum(-1)
