"""Fused per-step Gaussian KL parts: :func:`trudi.constraints.gaussian_kl` as one Triton kernel.

A row is one transition (``A`` values); the forward reads the four ``[*B, K, A]`` inputs once and
writes the two ``[*B, K]`` parts, the backward reads them once more with the two upstream gradients
and writes the four input gradients. Gradients, from ``m = ½ Σ r²`` with ``r = (μ - μ_o)/σ_o`` and
``c = ½ Σ [u - log(1 + u)]`` with ``u = σ²/σ_o² - 1``:

.. math::  ∂m/∂μ = r/σ_o,\\quad ∂m/∂σ_o = -r²/σ_o,\\quad ∂c/∂σ = u/σ,\\quad ∂c/∂σ_o = -u/σ_o.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from trudi.constraints.triton.common import (
    check_launchable,
    compute_dtype,
    log_ratio_penalty,
    row_tile,
    tile,
    triton_dtype,
)

__all__ = ["gaussian_kl"]


@triton.jit
def _gaussian_kl_fwd_kernel(
    loc_ptr,
    scale_ptr,
    old_loc_ptr,
    old_scale_ptr,
    mean_ptr,
    cov_ptr,
    n_rows,
    n_cols,
    COMPUTE: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    rows, row_ok, mask, offs = row_tile(n_rows, n_cols, BLOCK_R, BLOCK_N)
    loc = tl.load(loc_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    scale = tl.load(scale_ptr + offs, mask=mask, other=1.0).to(COMPUTE)
    old_loc = tl.load(old_loc_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    old_scale = tl.load(old_scale_ptr + offs, mask=mask, other=1.0).to(COMPUTE)
    r = (loc - old_loc) / old_scale
    mean = 0.5 * tl.sum(tl.where(mask, r * r, 0.0), axis=1)
    u = (scale - old_scale) * (scale + old_scale) / (old_scale * old_scale)
    cov = 0.5 * tl.sum(tl.where(mask, log_ratio_penalty(u), 0.0), axis=1)
    tl.store(mean_ptr + rows, mean.to(mean_ptr.dtype.element_ty), mask=row_ok)
    tl.store(cov_ptr + rows, cov.to(cov_ptr.dtype.element_ty), mask=row_ok)


@triton.jit
def _gaussian_kl_bwd_kernel(
    loc_ptr,
    scale_ptr,
    old_loc_ptr,
    old_scale_ptr,
    grad_mean_ptr,
    grad_cov_ptr,
    grad_loc_ptr,
    grad_scale_ptr,
    grad_old_loc_ptr,
    grad_old_scale_ptr,
    n_rows,
    n_cols,
    COMPUTE: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    rows, row_ok, mask, offs = row_tile(n_rows, n_cols, BLOCK_R, BLOCK_N)
    loc = tl.load(loc_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    scale = tl.load(scale_ptr + offs, mask=mask, other=1.0).to(COMPUTE)
    old_loc = tl.load(old_loc_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    old_scale = tl.load(old_scale_ptr + offs, mask=mask, other=1.0).to(COMPUTE)
    g_mean = tl.load(grad_mean_ptr + rows, mask=row_ok, other=0.0).to(COMPUTE)[:, None]
    g_cov = tl.load(grad_cov_ptr + rows, mask=row_ok, other=0.0).to(COMPUTE)[:, None]
    r = (loc - old_loc) / old_scale
    u = (scale - old_scale) * (scale + old_scale) / (old_scale * old_scale)
    g_loc = g_mean * r / old_scale
    g_scale = g_cov * u / scale
    g_old_scale = -(g_mean * r * r + g_cov * u) / old_scale
    out_ty = grad_loc_ptr.dtype.element_ty
    tl.store(grad_loc_ptr + offs, g_loc.to(out_ty), mask=mask)
    tl.store(grad_scale_ptr + offs, g_scale.to(out_ty), mask=mask)
    tl.store(grad_old_loc_ptr + offs, (-g_loc).to(out_ty), mask=mask)
    tl.store(grad_old_scale_ptr + offs, g_old_scale.to(out_ty), mask=mask)


class _GaussianKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, loc, scale, old_loc, old_scale):
        n_rows, n_cols = loc.shape
        mean = loc.new_empty(n_rows)
        cov = loc.new_empty(n_rows)
        block_r, block_n, num_warps = tile(n_rows, n_cols)
        _gaussian_kl_fwd_kernel[(triton.cdiv(n_rows, block_r),)](
            loc,
            scale,
            old_loc,
            old_scale,
            mean,
            cov,
            n_rows,
            n_cols,
            COMPUTE=triton_dtype(compute_dtype(loc.dtype)),
            BLOCK_R=block_r,
            BLOCK_N=block_n,
            num_warps=num_warps,
        )
        ctx.save_for_backward(loc, scale, old_loc, old_scale)
        return mean, cov

    @staticmethod
    def backward(ctx, grad_mean, grad_cov):
        loc, scale, old_loc, old_scale = ctx.saved_tensors
        n_rows, n_cols = loc.shape
        grad_mean = torch.zeros_like(loc[:, 0]) if grad_mean is None else grad_mean.contiguous()
        grad_cov = torch.zeros_like(loc[:, 0]) if grad_cov is None else grad_cov.contiguous()
        grads = [torch.empty_like(loc) for _ in range(4)]
        block_r, block_n, num_warps = tile(n_rows, n_cols)
        _gaussian_kl_bwd_kernel[(triton.cdiv(n_rows, block_r),)](
            loc,
            scale,
            old_loc,
            old_scale,
            grad_mean,
            grad_cov,
            *grads,
            n_rows,
            n_cols,
            COMPUTE=triton_dtype(compute_dtype(loc.dtype)),
            BLOCK_R=block_r,
            BLOCK_N=block_n,
            num_warps=num_warps,
        )
        return tuple(grads)


def gaussian_kl(
    loc: Tensor, scale: Tensor, old_loc: Tensor, old_scale: Tensor
) -> tuple[Tensor, Tensor]:
    """Triton form of :func:`trudi.constraints.gaussian_kl`: ``(mean_part, cov_part)``, ``[*B, K]``.

    Accumulates in float32 (float64 for float64 inputs) and returns the input dtype. Broadcast
    ``old_*`` and non-contiguous inputs are copied to contiguous ``[*B·K, A]`` rows first. On CPU it
    needs ``TRITON_INTERPRET=1``; there is no input check that would synchronise with the device.

    Args:
        loc, scale: the new transitions, ``[*B, K, A]``.
        old_loc, old_scale: the behaviour transitions, ``[*B, K, A]`` (broadcastable).
    """
    loc, scale, old_loc, old_scale = torch.broadcast_tensors(loc, scale, old_loc, old_scale)
    check_launchable(
        _gaussian_kl_fwd_kernel,
        loc.shape[-1],
        loc=loc,
        scale=scale,
        old_loc=old_loc,
        old_scale=old_scale,
    )
    batch, n_cols = loc.shape[:-1], loc.shape[-1]
    rows = [x.reshape(-1, n_cols).contiguous() for x in (loc, scale, old_loc, old_scale)]
    if rows[0].shape[0] == 0 or n_cols == 0:
        zeros = loc.new_zeros(batch)
        return zeros, zeros.clone()
    mean, cov = _GaussianKL.apply(*rows)
    return mean.reshape(batch), cov.reshape(batch)
