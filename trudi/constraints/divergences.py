"""The three trust-region divergences: per-element mean and covariance terms and their projections.

Each divergence splits into a mean term ``m`` (which uses only the behaviour scale) and a covariance
term ``c``, both sums of per-element terms over a *row*: the whole chain ``[K, A]`` in trajectory
mode, one transition ``[A]`` in per-step mode. The closed-form projections interpolate the statistic
that the term measures, with the factor ``s = sqrt(bound / term)`` that lands exactly on the bound
(TRPL, Otto et al. 2021; see ``reference/trpl-notes.md``).

======== =========================================== ===================================
name     mean term per element                       covariance term per element
======== =========================================== ===================================
kl       ½ (μ - μ_o)² / σ_o²                          ½ (σ²/σ_o² - 1 - log σ²/σ_o²)
w2       (μ - μ_o)² / σ_o²                            (1 - σ/σ_o)²
frobenius (μ - μ_o)² / σ_o²                           (σ² - σ_o²)²
======== =========================================== ===================================

Note the ½: under ``"w2"`` and ``"frobenius"`` the same ``mean_bound`` is twice as tight as under
``"kl"``.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from trudi.constraints.gaussian_kl import _variance_ratio_minus_one, log_ratio_penalty

Divergence = Literal["kl", "w2", "frobenius"]
DIVERGENCES: tuple[str, ...] = ("kl", "w2", "frobenius")

__all__ = ["DIVERGENCES", "Divergence", "cov_terms", "interpolate_scale", "mean_terms"]


def mean_terms(divergence: str, loc: Tensor, old_loc: Tensor, old_scale: Tensor) -> Tensor:
    """Per-element mean terms, ``[*B, K, A]``: the Mahalanobis gap under the behaviour scale."""
    mahalanobis = ((loc - old_loc) / old_scale).square()
    return 0.5 * mahalanobis if divergence == "kl" else mahalanobis


def cov_terms(divergence: str, scale: Tensor, old_scale: Tensor) -> Tensor:
    """Per-element covariance terms, ``[*B, K, A]``."""
    if divergence == "kl":
        return 0.5 * log_ratio_penalty(_variance_ratio_minus_one(scale, old_scale))
    if divergence == "w2":
        return ((old_scale - scale) / old_scale).square()
    return (scale - old_scale).square() * (scale + old_scale).square()


def interpolate_scale(divergence: str, scale: Tensor, old_scale: Tensor, factor: Tensor) -> Tensor:
    """Closed-form covariance projection for ``"w2"`` and ``"frobenius"``.

    ``factor`` in ``(0, 1]`` (broadcast over a row) shrinks the statistic that ``c`` measures towards
    the behaviour one: the std for W2, the variance for Frobenius, so that ``c`` scales by
    ``factor²``.
    """
    if divergence == "w2":
        return old_scale + factor * (scale - old_scale)
    if divergence == "frobenius":
        old_var = old_scale.square()
        return (old_var + factor * (scale.square() - old_var)).sqrt()
    raise ValueError(f"divergence {divergence!r} has no closed-form covariance projection")
