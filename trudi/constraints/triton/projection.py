"""Fused trust-region projection: :func:`trudi.constraints.project_transitions` in one Triton pass.

The autograd function and the entry point; the forward and backward kernels (one pass each over a
tile of rows: row terms, multipliers, projected ``loc``/``scale``; then all four input gradients)
are in :mod:`.projection_kernels`.
"""

from __future__ import annotations

import math

import torch
import triton
from torch import Tensor

from trudi.constraints.base import Z_MAX, Divergence, Mode, Projection, row_dims
from trudi.constraints.triton.common import (
    check_launchable,
    compute_dtype,
    split_float,
    tile,
    triton_dtype,
)
from trudi.constraints.triton.projection_kernels import (
    COV_CODES,
    projection_bwd_kernel,
    projection_fwd_kernel,
)

__all__ = ["project_transitions"]


class _FusedProjection(torch.autograd.Function):
    """``(loc, scale | None, old_loc, old_scale)`` as contiguous ``[R, N]`` rows ->
    ``(loc~, scale~ | None, ω, η)``."""

    @staticmethod
    def forward(ctx, loc, scale, old_loc, old_scale, mean_bound, cov_bound, divergence, iterations):
        n_rows, n_cols = loc.shape
        has_cov = scale is not None
        compute = compute_dtype(loc.dtype)
        loc_out = torch.empty_like(loc)
        scale_out = torch.empty_like(loc) if has_cov else None
        mean_mult = loc.new_empty(n_rows, dtype=compute)
        cov_mult = loc.new_empty(n_rows, dtype=compute)
        stats = loc.new_empty(n_rows, 4, dtype=compute)
        cov_bound_ = cov_bound if has_cov else 1.0
        block_r, block_n, num_warps = tile(n_rows, n_cols)
        projection_fwd_kernel[(triton.cdiv(n_rows, block_r),)](
            loc,
            scale if has_cov else loc,
            old_loc,
            old_scale,
            loc_out,
            scale_out if has_cov else loc_out,
            mean_mult,
            cov_mult,
            stats,
            n_rows,
            n_cols,
            *split_float(mean_bound),
            *split_float(cov_bound_),
            *split_float(math.log(cov_bound_)),
            iterations,
            MEAN_COEF=0.5 if divergence == "kl" else 1.0,
            COV=COV_CODES[divergence],
            HAS_COV=has_cov,
            COMPUTE=triton_dtype(compute),
            TINY=torch.finfo(compute).tiny,
            EXP_Z_MAX=math.exp(Z_MAX),
            BLOCK_R=block_r,
            BLOCK_N=block_n,
            num_warps=num_warps,
        )
        ctx.save_for_backward(loc, scale, old_loc, old_scale, stats)
        ctx.config = (mean_bound, cov_bound_, divergence, has_cov)
        if divergence == "kl":
            ctx.mark_non_differentiable(cov_mult)
        return loc_out, scale_out, mean_mult, cov_mult

    @staticmethod
    def backward(ctx, g_loc_out, g_scale_out, g_mean_mult, g_cov_mult):
        loc, scale, old_loc, old_scale, stats = ctx.saved_tensors
        mean_bound, cov_bound, divergence, has_cov = ctx.config
        n_rows, n_cols = loc.shape

        def dense(grad, like):
            return torch.zeros_like(like) if grad is None else grad.contiguous()

        g_loc_out = dense(g_loc_out, loc)
        g_scale_out = dense(g_scale_out, loc) if has_cov else g_loc_out
        g_mean_mult = dense(g_mean_mult, stats[:, 0])
        g_cov_mult = dense(g_cov_mult, stats[:, 0])
        g_loc, g_old_loc, g_old_scale = (torch.empty_like(loc) for _ in range(3))
        g_scale = torch.empty_like(loc) if has_cov else None
        compute = compute_dtype(loc.dtype)
        block_r, block_n, num_warps = tile(n_rows, n_cols)
        projection_bwd_kernel[(triton.cdiv(n_rows, block_r),)](
            loc,
            scale if has_cov else loc,
            old_loc,
            old_scale,
            stats,
            g_loc_out,
            g_scale_out,
            g_mean_mult,
            g_cov_mult,
            g_loc,
            g_scale if has_cov else g_loc,
            g_old_loc,
            g_old_scale,
            n_rows,
            n_cols,
            *split_float(mean_bound),
            *split_float(cov_bound),
            MEAN_COEF=0.5 if divergence == "kl" else 1.0,
            COV=COV_CODES[divergence],
            HAS_COV=has_cov,
            COMPUTE=triton_dtype(compute),
            TINY=torch.finfo(compute).tiny,
            BLOCK_R=block_r,
            BLOCK_N=block_n,
            num_warps=num_warps,
        )
        return g_loc, g_scale, g_old_loc, g_old_scale, None, None, None, None


def project_transitions(
    loc: Tensor,
    scale: Tensor,
    old_loc: Tensor,
    old_scale: Tensor,
    *,
    mean_bound: float,
    cov_bound: float | None = None,
    divergence: Divergence = "kl",
    mode: Mode = "trajectory",
    solver_iterations: int = 8,
) -> Projection:
    """Triton form of :func:`trudi.constraints.project_transitions`, same arguments and result.

    One forward and one backward kernel launch; no host sync. Inputs are ``[*B, K, A]`` of one
    floating dtype on one device (float16/bfloat16 are computed in float32, float64 in float64);
    non-contiguous inputs are copied to contiguous rows first. A row must fit in registers
    (:data:`~trudi.constraints.triton.common.MAX_ROW_LENGTH` values). The multipliers are
    float32 (float64 for float64 inputs), as the reference's. On CPU it needs
    ``TRITON_INTERPRET=1`` (see :mod:`trudi.constraints.triton`).
    """
    dims = row_dims(mode)
    batch = loc.shape[: loc.dim() - len(dims)]
    n_cols = math.prod(loc.shape[loc.dim() - len(dims) :])
    check_launchable(
        projection_fwd_kernel,
        n_cols,
        loc=loc,
        scale=scale,
        old_loc=old_loc,
        old_scale=old_scale,
    )
    has_cov = cov_bound is not None

    def rows(x: Tensor) -> Tensor:
        return x.reshape(-1, n_cols).contiguous()

    if math.prod(batch) == 0 or n_cols == 0:
        zeros = loc.new_zeros(batch, dtype=compute_dtype(loc.dtype))
        return Projection(loc, scale, zeros, zeros.clone())
    loc_out, scale_out, mean_mult, cov_mult = _FusedProjection.apply(
        rows(loc),
        rows(scale) if has_cov else None,
        rows(old_loc),
        rows(old_scale),
        float(mean_bound),
        float(cov_bound) if has_cov else None,
        divergence,
        int(solver_iterations),
    )
    return Projection(
        loc_out.reshape(loc.shape),
        scale_out.reshape(loc.shape) if has_cov else scale,
        mean_mult.reshape(batch),
        cov_mult.reshape(batch),
    )
