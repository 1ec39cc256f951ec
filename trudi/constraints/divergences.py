"""The three trust-region divergences: per-element mean and covariance terms and their projections.

Each divergence splits into a mean term ``m`` (which uses only the behaviour scale) and a covariance
term ``c``, both sums of per-element terms over a *row*: the whole chain ``[K, A]`` in trajectory
mode, one transition ``[A]`` in per-step mode. The closed-form projections interpolate the statistic
that the term measures, with the factor ``s = sqrt(bound / term)`` that lands exactly on the bound
(TRPL, Otto et al. 2021; ``docs/design.md``, "Projection").

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

import torch
from torch import Tensor

from trudi.constraints.base import DIVERGENCES, Divergence

__all__ = [
    "DIVERGENCES",
    "SERIES_THRESHOLD",
    "Divergence",
    "cov_terms",
    "interpolate_scale",
    "log_ratio_penalty",
    "log_ratio_series",
    "mean_terms",
    "variance_ratio_minus_one",
]

# Below this |u| the series of u - log1p(u) is used: its truncation error is < 1e-10 relative there,
# while the direct form loses ~|log2(u)| bits to cancellation.
SERIES_THRESHOLD = 1e-2


def log_ratio_penalty(u: Tensor) -> Tensor:
    """``u - log(1 + u)`` for ``u > -1``, accurate also for small ``|u|``.

    With ``u = r - 1`` this is ``r - 1 - log r``, the building block of every Gaussian covariance KL.
    Computing it directly cancels catastrophically near ``r = 1`` (in float32 a KL of 1e-4 per
    dimension would keep only ~3 correct digits), so small ``|u|`` uses the Taylor series.
    """
    small = u.abs() < SERIES_THRESHOLD
    # u * small zeroes the large entries (whose powers could overflow) as a select would, at a
    # fraction of torch.where's cost on CPU; the direct form needs no mask: where it is not
    # selected |u| < 1e-2, and it and its gradient are finite there.
    return torch.where(small, log_ratio_series(u * small), u - torch.log1p(u))


def log_ratio_series(u: Tensor) -> Tensor:
    """The Taylor series of ``u - log(1 + u)`` to ``u⁶``, for ``|u| <`` :data:`SERIES_THRESHOLD`."""
    return u.square() * (0.5 - u * (1.0 / 3.0 - u * (0.25 - u * (0.2 - u / 6.0))))


def variance_ratio_minus_one(scale: Tensor, ref_scale: Tensor) -> Tensor:
    """``scale² / ref_scale² - 1`` without cancellation when the scales are close."""
    return (scale - ref_scale) * (scale + ref_scale) / ref_scale.square()


def mean_terms(divergence: Divergence, loc: Tensor, old_loc: Tensor, old_scale: Tensor) -> Tensor:
    """Per-element mean terms, ``[*B, K, A]``: the Mahalanobis gap under the behaviour scale."""
    mahalanobis = ((loc - old_loc) / old_scale).square()
    return 0.5 * mahalanobis if divergence == "kl" else mahalanobis


def cov_terms(divergence: Divergence, scale: Tensor, old_scale: Tensor) -> Tensor:
    """Per-element covariance terms, ``[*B, K, A]``."""
    if divergence == "kl":
        return 0.5 * log_ratio_penalty(variance_ratio_minus_one(scale, old_scale))
    if divergence == "w2":
        return ((old_scale - scale) / old_scale).square()
    return (scale - old_scale).square() * (scale + old_scale).square()


def interpolate_scale(
    divergence: Divergence, scale: Tensor, old_scale: Tensor, factor: Tensor
) -> Tensor:
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
