"""Per-step and trajectory KL divergences between chains of diagonal Gaussian transitions.

A diffusion policy's denoising chain is a sequence of K Gaussian transitions; each transition is a
diagonal Gaussian over the A action dimensions. Shapes follow ``docs/design.md`` ("Keys and shapes"): ``loc``
and ``scale`` are ``[*B, K, A]``; per-step quantities are summed over ``A`` (``[*B, K]``) and trajectory
quantities are summed over ``K`` as well (``[*B]``).

Two KLs are provided:

- :func:`gaussian_kl` is TRPL's *decoupled* KL(new ‖ old) = mean part + covariance part, where the
  mean part uses the behaviour (old) precision, so the mean and covariance trust regions can be
  enforced separately. With shared scales (``scale == old_scale``) it equals the exact KL in both
  directions.
- :func:`exact_gaussian_kl` is the exact KL(p ‖ q) of two diagonal Gaussians. On chains recorded by
  the behaviour policy, ``exact_gaussian_kl(old_loc, old_scale, loc, scale)`` summed over the steps is
  the exact trajectory KL(p_old ‖ p_new), the quantity that upper-bounds the marginal action KL.
"""

from __future__ import annotations

from torch import Tensor

from trudi.constraints.divergences import cov_terms, mean_terms

__all__ = [
    "exact_gaussian_kl",
    "exact_trajectory_kl",
    "gaussian_kl",
    "trajectory_kl",
]


def gaussian_kl(
    loc: Tensor, scale: Tensor, old_loc: Tensor, old_scale: Tensor
) -> tuple[Tensor, Tensor]:
    """TRPL's decoupled per-step KL(new ‖ old), split into its mean and covariance parts.

    .. math::
        m = ½ Σ_a (μ - μ_o)² / σ_o²,\\qquad
        c = ½ Σ_a [σ²/σ_o² - 1 - \\log(σ²/σ_o²)]

    Args:
        loc, scale: the new transitions, ``[*B, K, A]``.
        old_loc, old_scale: the behaviour transitions, ``[*B, K, A]`` (broadcastable).

    Returns:
        ``(mean_part, cov_part)``, each ``[*B, K]``.

    Example:
        >>> import torch
        >>> loc, scale = torch.zeros(4, 10, 3), torch.ones(4, 10, 3)
        >>> m, c = gaussian_kl(loc + 0.1, scale, loc, scale)
        >>> m.shape, bool(c.abs().max() == 0)
        (torch.Size([4, 10]), True)
    """
    mean_part = mean_terms("kl", loc, old_loc, old_scale).sum(-1)
    cov_part = cov_terms("kl", scale, old_scale).sum(-1)
    return mean_part, cov_part


def exact_gaussian_kl(p_loc: Tensor, p_scale: Tensor, q_loc: Tensor, q_scale: Tensor) -> Tensor:
    """Exact per-step KL(p ‖ q) of diagonal Gaussians, summed over the action dims.

    For the trust region's reference quantity pass the behaviour transitions as ``p``:
    ``exact_gaussian_kl(old_loc, old_scale, loc, scale)`` is KL(old ‖ new). It is the sum of
    :func:`gaussian_kl`'s two parts with ``q`` in the reference role: the decoupled KL differs from
    the exact one only in which precision weighs the mean gap.

    Args:
        p_loc, p_scale, q_loc, q_scale: ``[*B, K, A]`` (broadcastable).

    Returns:
        ``[*B, K]``.
    """
    mean_part, cov_part = gaussian_kl(p_loc, p_scale, q_loc, q_scale)
    return mean_part + cov_part


def trajectory_kl(
    loc: Tensor, scale: Tensor, old_loc: Tensor, old_scale: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`gaussian_kl` summed over the K steps of each chain: ``(mean_part, cov_part)``, ``[*B]``."""
    mean_part, cov_part = gaussian_kl(loc, scale, old_loc, old_scale)
    return mean_part.sum(-1), cov_part.sum(-1)


def exact_trajectory_kl(p_loc: Tensor, p_scale: Tensor, q_loc: Tensor, q_scale: Tensor) -> Tensor:
    """:func:`exact_gaussian_kl` summed over the K steps: the exact chain KL(p ‖ q), ``[*B]``.

    Exact for the trajectory KL when the chains are drawn from ``p`` (the behaviour policy), as
    every per-step KL is then evaluated at states distributed as under ``p``.
    """
    return exact_gaussian_kl(p_loc, p_scale, q_loc, q_scale).sum(-1)
