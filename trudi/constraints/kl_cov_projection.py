"""KL covariance projection: a batched fixed-iteration root find with an implicit-function backward.

For each row (a chain in trajectory mode, a transition in per-step mode) find the scales closest to
the network's in the sense of TRPL that keep the covariance part of the KL to the behaviour within
``bound``. Stationarity gives a precision interpolation with one multiplier η ≥ 0 per row,

.. math::  Λ̃(η) = (Λ + η Λ_o) / (1 + η),\\qquad c(η) = ½ Σ [Λ_o/Λ̃ - 1 - \\log(Λ_o/Λ̃)] = ε,

where ``Λ = 1/σ²`` are the network's precisions and ``Λ_o`` the behaviour ones; ``c`` decreases
monotonically from its unprojected value (η = 0) to 0 (η → ∞), so the root is unique.

The solver runs a fixed number of safeguarded Newton steps on ``log c`` as a function of
``t = log η`` inside a bisection bracket, entirely in batched torch ops: no host round trip, no
Python loop over rows, no data-dependent branching (inactive rows are solved too and discarded).
It works with ``w = 1/(1 + η) = sigmoid(-t)``, which never overflows, and returns the feasible end of
the bracket, so the bound holds whenever the solver converged. The backward applies the implicit
function theorem to ``c(η*(Λ, Λ_o), Λ, Λ_o) = ε``; everything it needs is saved in the autograd
context (TRPL's reference kept it in a singleton, which gave wrong gradients for two forwards before
one backward).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from trudi.constraints.base import T_HIGH as _T_HIGH
from trudi.constraints.base import T_LOW as _T_LOW
from trudi.constraints.divergences import cov_terms, log_ratio_penalty

__all__ = ["kl_cov_projection"]


def _precision_gap(scale: Tensor, old_scale: Tensor) -> Tensor:
    """``Λ - Λ_o = 1/σ² - 1/σ_o²`` without cancellation when the scales are close."""
    return (old_scale - scale) * (old_scale + scale) / (scale * old_scale).square()


def _cov_kl_and_slope(
    t: Tensor, old_precision: Tensor, gap: Tensor, dims: tuple[int, ...]
) -> tuple[Tensor, Tensor]:
    """Covariance KL ``c`` at ``t = log η`` and ``d log c / dt`` (both per row, keepdim)."""
    w = torch.sigmoid(-t)
    precision = old_precision + w * gap
    u = -w * gap / precision  # Λ_o/Λ̃ - 1
    kl = 0.5 * log_ratio_penalty(u).sum(dims, keepdim=True)
    # dc/dt = -½ (1 - w) Σ u²  (from dΛ̃/dt = -w (1 - w) (Λ - Λ_o)).
    slope = -0.5 * torch.sigmoid(t) * u.square().sum(dims, keepdim=True)
    return kl, slope / kl


def _solve_log_multiplier(
    scale: Tensor, old_scale: Tensor, bound: float, dims: tuple[int, ...], iterations: int
) -> Tensor:
    """``t* = log η*`` per row (keepdim); meaningful only where the row violates the bound."""
    old_precision = old_scale.square().reciprocal()
    gap = _precision_gap(scale, old_scale)
    # Start from the large-η asymptote c ≈ ¼ w² Σ (gap/Λ_o)².
    rel_gap = (old_scale - scale) * (old_scale + scale) / scale.square()
    w0 = 2.0 * math.sqrt(bound) * rel_gap.square().sum(dims, keepdim=True).rsqrt()
    w0 = w0.clamp(1e-30, 1.0 - 1e-7)
    t = torch.log1p(-w0) - torch.log(w0)
    t = t.clamp(_T_LOW, _T_HIGH)
    low = torch.full_like(t, _T_LOW)
    high = torch.full_like(t, _T_HIGH)
    log_bound = math.log(bound)
    for _ in range(iterations):
        kl, dlog = _cov_kl_and_slope(t, old_precision, gap, dims)
        excess = torch.log(kl) - log_bound
        infeasible = excess > 0
        low = torch.where(infeasible, t, low)
        high = torch.where(infeasible, high, t)
        newton = t - excess / dlog
        inside = torch.isfinite(newton) & (newton >= low) & (newton <= high)
        t = torch.where(inside, newton, 0.5 * (low + high))
    return high


class _KLCovProjection(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scale, old_scale, bound, dims, iterations):
        c0 = cov_terms("kl", scale, old_scale).sum(dims, keepdim=True)
        active = c0 > bound
        t = _solve_log_multiplier(scale, old_scale, bound, dims, iterations)
        w = torch.where(active, torch.sigmoid(-t), torch.ones_like(t))
        old_precision = old_scale.square().reciprocal()
        precision = old_precision + w * _precision_gap(scale, old_scale)
        scale_proj = precision.rsqrt()
        eta = torch.where(active, torch.exp(t), torch.zeros_like(t))
        ctx.save_for_backward(scale, old_scale, scale_proj, w, active)
        ctx.dims = dims
        ctx.mark_non_differentiable(eta)
        return scale_proj, eta

    @staticmethod
    def backward(ctx, grad_scale_proj, _grad_eta):
        scale, old_scale, scale_proj, w, active = ctx.saved_tensors
        dims = ctx.dims
        precision = scale_proj.square().reciprocal()
        old_precision = old_scale.square().reciprocal()
        # dL/dΛ̃ from dL/dσ̃ with σ̃ = Λ̃^(-1/2).
        grad_precision = -0.5 * grad_scale_proj * scale_proj.pow(3)
        # Direction of dc/dΛ̃ ∝ (Λ - Λ_o)/Λ̃, normalised per row so no sum of squares overflows.
        z = _precision_gap(scale, old_scale) / precision
        v = z / z.abs().amax(dims, keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)
        coupling = (grad_precision * v * precision).sum(dims, keepdim=True)
        norm = v.square().sum(dims, keepdim=True)
        norm = torch.where(active, norm, torch.ones_like(norm))
        tangential = grad_precision - coupling * v / (precision * norm)
        grad_net_precision = w * tangential
        grad_old_precision = (1.0 - w) * tangential + coupling * v / (old_precision * norm)
        # dΛ/dσ = -2 Λ / σ.
        grad_scale = torch.where(active, -2.0 * grad_net_precision / scale.pow(3), grad_scale_proj)
        grad_old_scale = torch.where(
            active,
            -2.0 * grad_old_precision / old_scale.pow(3),
            torch.zeros_like(grad_scale_proj),
        )
        return grad_scale, grad_old_scale, None, None, None


def kl_cov_projection(
    scale: Tensor, old_scale: Tensor, bound: float, dims: tuple[int, ...], iterations: int = 12
) -> tuple[Tensor, Tensor]:
    """Project ``scale`` onto ``{σ̃ : c(σ̃ ‖ σ_o) ≤ bound}`` per row.

    Args:
        scale, old_scale: ``[*B, K, A]`` (same shape).
        bound: the covariance bound ε_Σ > 0.
        dims: the dims summed into one row, ``(-2, -1)`` (trajectory) or ``(-1,)`` (per step).
        iterations: the fixed number of safeguarded Newton steps.

    Returns:
        ``(scale_proj, eta)``: the projected scales ``[*B, K, A]`` and the multiplier η per row
        (keepdim, 0 where the row already satisfies the bound). Differentiable w.r.t. both scales.
    """
    return _KLCovProjection.apply(scale, old_scale, bound, dims, iterations)
