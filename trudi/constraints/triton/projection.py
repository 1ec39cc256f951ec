"""Fused trust-region projection: :func:`trudi.constraints.project_transitions` in one Triton pass.

The kernels as ``torch.library`` custom ops (``trudi::fused_projection`` and its backward, with
fake implementations and a registered backward, so that ``torch.compile`` keeps the projection in
its graph), and the entry point. The forward and backward kernels (one pass each over a tile of
rows: row terms, multipliers, projected ``loc``/``scale``; then all four input gradients) are in
:mod:`.projection_kernels`.
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


# The kernels as torch.library custom ops with fake (meta) implementations and a registered
# backward: torch.compile keeps the projection inside its graph (one opaque node, no graph break)
# and AOTAutograd differentiates it through the backward kernel.


@torch.library.custom_op("trudi::fused_projection", mutates_args=())
def fused_projection(
    loc: Tensor,
    scale: Tensor | None,
    old_loc: Tensor,
    old_scale: Tensor,
    mean_bound: float,
    cov_bound: float | None,
    divergence: str,
    iterations: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The forward kernel on contiguous rows ``[R, N]``: ``(loc~, scale~, ω, η, stats)``.

    ``scale`` is ``None`` (and ``scale~`` empty) when the covariance is not projected
    (``cov_bound=None``); ``ω``, ``η`` are ``[R]`` and ``stats`` ``[R, 4]`` (what the backward
    kernel reads), in the compute dtype.
    """
    n_rows, n_cols = loc.shape
    has_cov = scale is not None
    loc_out, scale_out, mean_mult, cov_mult, stats = _projection_outputs(
        loc, scale, old_loc, old_scale, mean_bound, cov_bound, divergence, iterations
    )
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
        COMPUTE=triton_dtype(compute_dtype(loc.dtype)),
        TINY=torch.finfo(compute_dtype(loc.dtype)).tiny,
        EXP_Z_MAX=math.exp(Z_MAX),
        BLOCK_R=block_r,
        BLOCK_N=block_n,
        num_warps=num_warps,
    )
    return loc_out, scale_out, mean_mult, cov_mult, stats


@fused_projection.register_fake
def _projection_outputs(loc, scale, old_loc, old_scale, mean_bound, cov_bound, divergence, it):
    # The fake implementation, and the real one's allocation of its outputs.
    n_rows = loc.shape[0]
    compute = compute_dtype(loc.dtype)
    scale_out = torch.empty_like(loc) if scale is not None else loc.new_empty(0)
    return (
        torch.empty_like(loc),
        scale_out,
        loc.new_empty(n_rows, dtype=compute),
        loc.new_empty(n_rows, dtype=compute),
        loc.new_empty(n_rows, 4, dtype=compute),
    )


@torch.library.custom_op("trudi::fused_projection_backward", mutates_args=())
def fused_projection_backward(
    loc: Tensor,
    scale: Tensor | None,
    old_loc: Tensor,
    old_scale: Tensor,
    stats: Tensor,
    g_loc_out: Tensor,
    g_scale_out: Tensor | None,
    g_mean_mult: Tensor,
    g_cov_mult: Tensor,
    mean_bound: float,
    cov_bound: float,
    divergence: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The backward kernel: the gradients of ``(loc, scale, old_loc, old_scale)``, ``scale``'s
    empty when the covariance is not projected."""
    n_rows, n_cols = loc.shape
    has_cov = scale is not None
    g_loc, g_scale, g_old_loc, g_old_scale = _backward_outputs(
        loc, scale, old_loc, old_scale, stats, g_loc_out, g_scale_out, g_mean_mult, g_cov_mult,
        mean_bound, cov_bound, divergence,
    )  # fmt: skip
    compute = compute_dtype(loc.dtype)
    block_r, block_n, num_warps = tile(n_rows, n_cols)
    projection_bwd_kernel[(triton.cdiv(n_rows, block_r),)](
        loc,
        scale if has_cov else loc,
        old_loc,
        old_scale,
        stats,
        g_loc_out,
        g_scale_out if has_cov else g_loc_out,
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
    return g_loc, g_scale, g_old_loc, g_old_scale


@fused_projection_backward.register_fake
def _backward_outputs(loc, scale, old_loc, old_scale, *rest):
    g_scale = torch.empty_like(loc) if scale is not None else loc.new_empty(0)
    return torch.empty_like(loc), g_scale, torch.empty_like(loc), torch.empty_like(loc)


def _setup_context(ctx, inputs, output) -> None:
    loc, scale, old_loc, old_scale, mean_bound, cov_bound, divergence, _ = inputs
    ctx.save_for_backward(loc, scale, old_loc, old_scale, output[4])
    ctx.config = (mean_bound, cov_bound if scale is not None else 1.0, divergence)


def _backward(ctx, g_loc_out, g_scale_out, g_mean_mult, g_cov_mult, _g_stats):
    loc, scale, old_loc, old_scale, stats = ctx.saved_tensors
    mean_bound, cov_bound, divergence = ctx.config
    has_cov = scale is not None

    def dense(grad, like):
        return torch.zeros_like(like) if grad is None else grad.contiguous()

    g_loc, g_scale, g_old_loc, g_old_scale = fused_projection_backward(
        loc,
        scale,
        old_loc,
        old_scale,
        stats,
        dense(g_loc_out, loc),
        dense(g_scale_out, loc) if has_cov else None,
        dense(g_mean_mult, stats[:, 0]),
        dense(g_cov_mult, stats[:, 0]),
        mean_bound,
        cov_bound,
        divergence,
    )
    return g_loc, g_scale if has_cov else None, g_old_loc, g_old_scale, None, None, None, None


fused_projection.register_autograd(_backward, setup_context=_setup_context)


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
    loc_out, scale_out, mean_mult, cov_mult, _ = fused_projection(
        rows(loc),
        rows(scale) if has_cov else None,
        rows(old_loc),
        rows(old_scale),
        float(mean_bound),
        float(cov_bound) if has_cov else None,
        divergence,
        int(solver_iterations),
    )
    if divergence == "kl":
        # As the reference: η of the KL root find carries no gradient.
        cov_mult = cov_mult.detach()
    return Projection(
        loc_out.reshape(loc.shape),
        scale_out.reshape(loc.shape) if has_cov else scale,
        mean_mult.reshape(batch),
        cov_mult.reshape(batch),
    )
