"""An independent float64 oracle for the KL covariance projection: bisection on the multiplier.

It shares no code with :mod:`trudi.constraints.kl_cov_projection`: the covariance part is evaluated
from the scales (``½ Σ [ρ - 1 - log ρ]``, ``ρ = σ²/σ_o²``, with the log of the scale ratio itself so
that no digit cancels however far the scales are apart), and the root of ``c(σ̃(η)) = ε`` along TRPL's
precision interpolation is bracketed by plain bisection in ``log η``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def cov_part(scale: Tensor, old_scale: Tensor, dims: tuple[int, ...]) -> Tensor:
    """``½ Σ [σ²/σ_o² - 1 - log(σ²/σ_o²)]`` over ``dims`` (keepdim), accurate in float64."""
    u = (scale - old_scale) * (scale + old_scale) / old_scale.square()
    small = u.abs() < 1e-3
    us = torch.where(small, u, torch.zeros_like(u))
    series = us.square() * (0.5 - us / 3.0 + us.square() / 4.0 - us.pow(3) / 5.0 + us.pow(4) / 6.0)
    direct = u - 2.0 * torch.log(scale / old_scale)
    return 0.5 * torch.where(small, series, direct).sum(dims, keepdim=True)


def interpolated_scale(t: Tensor, scale: Tensor, old_scale: Tensor) -> Tensor:
    """σ̃ with Λ̃ = (Λ + η Λ_o)/(1 + η), η = e^t, written as σ_o² / σ̃² = w σ_o²/σ² + (1 - w)."""
    w, one_minus_w = torch.sigmoid(-t), torch.sigmoid(t)
    return old_scale * (w * (old_scale / scale).square() + one_minus_w).rsqrt()


def bisection_projection(
    scale: Tensor, old_scale: Tensor, bound: float, dims: tuple[int, ...], iterations: int = 120
) -> Tensor:
    """Projected scales of every row (rows must violate ``bound``), float64."""
    scale, old_scale = scale.double(), old_scale.double()
    shape = cov_part(scale, old_scale, dims).shape
    low = torch.full(shape, -200.0, dtype=torch.float64, device=scale.device)
    high = torch.full(shape, 200.0, dtype=torch.float64, device=scale.device)
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        infeasible = cov_part(interpolated_scale(mid, scale, old_scale), old_scale, dims) > bound
        low, high = torch.where(infeasible, mid, low), torch.where(infeasible, high, mid)
    return interpolated_scale(high, scale, old_scale)


def near_boundary_rows(
    seed: int,
    batch: tuple[int, ...],
    row_shape: tuple[int, ...],
    log10_ratio_range: tuple[float, float],
    delta: float,
) -> tuple[Tensor, Tensor, float]:
    """``(scale, old_scale, bound)``, ``[*batch, *row_shape]``, whose rows exceed ``bound`` by 1 + δ.

    Every row holds the same multiset of scale ratios σ/σ_o (log-uniform over
    ``log10_ratio_range``), in its own order and at its own behaviour scales (log-uniform in
    [1e-2, 1e2]), so all rows share one covariance part c₀ and ``bound = c₀/(1 + δ)``.
    """
    g = torch.Generator().manual_seed(seed)
    n = 1
    for size in row_shape:
        n *= size
    rows = 1
    for size in batch:
        rows *= size
    lo, hi = log10_ratio_range
    pattern = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
    order = torch.rand(rows, n, generator=g).argsort(-1)
    log_ratio = pattern[order].reshape(*batch, *row_shape)
    old_scale = 10.0 ** (4.0 * torch.rand(log_ratio.shape, generator=g, dtype=torch.float64) - 2.0)
    scale = old_scale * 10.0**log_ratio
    dims = tuple(range(-len(row_shape), 0))
    c0 = cov_part(scale, old_scale, dims).min().item()
    return scale, old_scale, c0 / (1.0 + delta)
