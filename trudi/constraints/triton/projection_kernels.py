"""The Triton kernels of the fused trust-region projection (see :mod:`.projection`).

A row is one chain (``K·A`` values, ``mode="trajectory"``) or one transition (``A`` values,
``mode="per_step"``). The forward kernel loads the four inputs of a tile of rows once, forms the row
terms, the multipliers (for ``"kl"`` the same safeguarded Newton root find in ``z = log(1 + η/κ)``
as :mod:`trudi.constraints.kl_cov_projection`, in registers: same variable, start, bracket and
iteration count) and writes the projected ``loc``/``scale``, the multipliers and four float32 statistics per row. The
backward kernel recomputes what it needs from the saved inputs and statistics and writes all four
input gradients in a second pass: the closed-form projections differentiate through their shrink
factor ``s = sqrt(ε/term)``, the KL covariance projection uses the reference's implicit-function
backward with per-row normalisation.

Row statistics (``[R, 4]``): mean term ``m``, mean factor ``s_μ``, covariance term (``c`` at η = 0),
and the covariance factor (the multiplier η for ``"kl"``, from which ``w = 1/(1 + η)`` and
``1 - w`` follow without cancellation; ``s_Σ`` otherwise).
"""

from __future__ import annotations

import triton
import triton.language as tl

from trudi.constraints.triton.common import _log1p, row_tile

__all__ = ["COV_CODES", "projection_bwd_kernel", "projection_fwd_kernel"]

COV_CODES = {"kl": 0, "w2": 1, "frobenius": 2}


@triton.jit
def _shrink(term, bound):
    """Factor ``sqrt(bound/term)`` if ``term > bound`` else 1, and the multiplier ``1/factor - 1``."""
    active = term > bound
    safe = tl.where(active, term, bound)
    factor = tl.sqrt(bound / safe)
    multiplier = tl.where(active, tl.sqrt(safe / bound) - 1.0, 0.0)
    return factor, multiplier


@triton.jit
def _expm1(x):
    # Kahan's expm1 from exp, as common._log1p: exact to a few ulps, also for tiny x.
    u = tl.exp(x)
    um1 = u - 1.0
    return tl.where(um1 == 0.0, x, um1 * (x / tl.log(tl.where(um1 == 0.0, 2.0, u))))


@triton.jit
def _kl_penalty(u, y):
    """``u - log(1 + u)`` given ``y = -u/(1 + u)``, as ``kl_cov_projection._penalty``."""
    small = tl.abs(u) < 1e-2
    us = tl.where(small, u, 0.0)
    # Non-dyadic constants as divisions keep float64 tiles exact (a float literal is float32).
    one = us * 0.0 + 1.0
    series = us * us * (0.5 - us * (one / 3.0 - us * (0.25 - us * (one / 5.0 - us / 6.0))))
    # log(1/(1 + u)) = log1p(y) = -log1p(u): take the log1p of whichever of u, y is positive.
    log_term = _log1p(tl.where(small, 0.0, tl.maximum(u, y)))
    return tl.where(small, series, u + tl.where(y > 0, log_term, -log_term))


@triton.jit
def projection_fwd_kernel(
    loc_ptr,
    scale_ptr,
    old_loc_ptr,
    old_scale_ptr,
    loc_out_ptr,
    scale_out_ptr,
    mean_mult_ptr,
    cov_mult_ptr,
    stats_ptr,
    n_rows,
    n_cols,
    mean_bound_hi,
    mean_bound_lo,
    cov_bound_hi,
    cov_bound_lo,
    log_cov_bound_hi,
    log_cov_bound_lo,
    iterations,
    MEAN_COEF: tl.constexpr,
    COV: tl.constexpr,
    HAS_COV: tl.constexpr,
    COMPUTE: tl.constexpr,
    TINY: tl.constexpr,
    EXP_Z_MAX: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    rows, row_ok, mask, offs = row_tile(n_rows, n_cols, BLOCK_R, BLOCK_N)
    out_ty = loc_out_ptr.dtype.element_ty
    one = tl.full([BLOCK_R], 1.0, COMPUTE)
    zero = tl.zeros([BLOCK_R], COMPUTE)

    loc = tl.load(loc_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    old_loc = tl.load(old_loc_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    old_scale = tl.load(old_scale_ptr + offs, mask=mask, other=1.0).to(COMPUTE)
    mean_bound = tl.cast(mean_bound_hi, COMPUTE) + tl.cast(mean_bound_lo, COMPUTE)
    r = (loc - old_loc) / old_scale
    mean_term = MEAN_COEF * tl.sum(tl.where(mask, r * r, 0.0), axis=1)
    mean_factor, mean_mult = _shrink(mean_term, mean_bound)
    loc_out = old_loc + mean_factor[:, None] * (loc - old_loc)
    tl.store(loc_out_ptr + offs, loc_out.to(out_ty), mask=mask)
    tl.store(mean_mult_ptr + rows, mean_mult, mask=row_ok)
    tl.store(stats_ptr + rows * 4, mean_term, mask=row_ok)
    tl.store(stats_ptr + rows * 4 + 1, mean_factor, mask=row_ok)

    cov_term = zero
    cov_aux = one
    cov_mult = zero
    if HAS_COV:
        scale = tl.load(scale_ptr + offs, mask=mask, other=1.0).to(COMPUTE)
        cov_bound = tl.cast(cov_bound_hi, COMPUTE) + tl.cast(cov_bound_lo, COMPUTE)
        if COV == 0:
            ratio = (old_scale / scale) * (old_scale / scale)
            gap = (old_scale - scale) * (old_scale + scale) / (scale * scale)
            u0 = (scale - old_scale) * (scale + old_scale) / (old_scale * old_scale)
            penalty0 = tl.where(mask, _kl_penalty(u0, gap), 0.0)
            cov_term = 0.5 * tl.sum(penalty0, axis=1)
            active = cov_term > cov_bound
            log_bound = tl.cast(log_cov_bound_hi, COMPUTE) + tl.cast(log_cov_bound_lo, COMPUTE)
            # |u| <= max(1, |u0|) on the whole path: sums of (u/m)² cannot overflow.
            m = tl.maximum(tl.max(tl.where(mask, tl.abs(u0), 0.0), axis=1), 1.0)
            inv_m = 1.0 / m
            um0 = u0 * inv_m[:, None]
            s0 = tl.sum(tl.where(mask, um0 * um0, 0.0), axis=1)
            kappa = 2.0 * (cov_term * inv_m) / tl.maximum(m * s0, TINY)
            z = _log1p(tl.maximum(tl.log(cov_term) - log_bound, 0.0))
            upper = tl.where(gap > 0, 0.25 * gap * gap, 0.5 * penalty0)
            w_up = tl.minimum(tl.sqrt(cov_bound / tl.sum(tl.where(mask, upper, 0.0), axis=1)), 1.0)
            z_up = _log1p(tl.minimum((1.0 - w_up) / (w_up * kappa), EXP_Z_MAX))
            low = z
            high = tl.maximum(z_up, z)
            unvisited = z == z
            for _ in range(iterations):
                eta = kappa * _expm1(z)
                w = 1.0 / (1.0 + eta)
                y = w[:, None] * gap
                u = -y / (w[:, None] * ratio + (eta * w)[:, None])
                c = 0.5 * tl.sum(tl.where(mask, _kl_penalty(u, y), 0.0), axis=1)
                excess = tl.log(c) - log_bound
                um = u * inv_m[:, None]
                s = tl.sum(tl.where(mask, um * um, 0.0), axis=1)
                slope = -0.5 * w * (eta + kappa) * ((s * m) / c) * m
                infeasible = excess > 0
                unvisited = unvisited & infeasible
                low = tl.where(infeasible, z, low)
                high = tl.where(infeasible, high, z)
                newton = z - excess / slope
                # Comparisons are false for NaN, and the ends are finite.
                inside = (newton >= low) & (newton <= high)
                fallback = tl.where(unvisited & (newton > high), high, 0.5 * (low + high))
                z = tl.where(inside, newton, fallback)
            cov_mult = tl.where(active, kappa * _expm1(z), 0.0)
            w = 1.0 / (1.0 + cov_mult)
            q = w[:, None] * ratio + (cov_mult * w)[:, None]
            scale_out = tl.where(active[:, None], old_scale / tl.sqrt(q), scale)
            cov_aux = cov_mult
        elif COV == 1:
            q = (old_scale - scale) / old_scale
            cov_term = tl.sum(tl.where(mask, q * q, 0.0), axis=1)
            cov_aux, cov_mult = _shrink(cov_term, cov_bound)
            scale_out = old_scale + cov_aux[:, None] * (scale - old_scale)
        else:
            ab = (scale - old_scale) * (scale + old_scale)
            cov_term = tl.sum(tl.where(mask, ab * ab, 0.0), axis=1)
            cov_aux, cov_mult = _shrink(cov_term, cov_bound)
            old_var = old_scale * old_scale
            scale_out = tl.sqrt(old_var + cov_aux[:, None] * (scale * scale - old_var))
        tl.store(scale_out_ptr + offs, scale_out.to(out_ty), mask=mask)
    tl.store(cov_mult_ptr + rows, cov_mult, mask=row_ok)
    tl.store(stats_ptr + rows * 4 + 2, cov_term, mask=row_ok)
    tl.store(stats_ptr + rows * 4 + 3, cov_aux, mask=row_ok)


@triton.jit
def projection_bwd_kernel(
    loc_ptr,
    scale_ptr,
    old_loc_ptr,
    old_scale_ptr,
    stats_ptr,
    g_loc_out_ptr,
    g_scale_out_ptr,
    g_mean_mult_ptr,
    g_cov_mult_ptr,
    g_loc_ptr,
    g_scale_ptr,
    g_old_loc_ptr,
    g_old_scale_ptr,
    n_rows,
    n_cols,
    mean_bound_hi,
    mean_bound_lo,
    cov_bound_hi,
    cov_bound_lo,
    MEAN_COEF: tl.constexpr,
    COV: tl.constexpr,
    HAS_COV: tl.constexpr,
    COMPUTE: tl.constexpr,
    TINY: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    rows, row_ok, mask, offs = row_tile(n_rows, n_cols, BLOCK_R, BLOCK_N)
    out_ty = g_loc_ptr.dtype.element_ty

    loc = tl.load(loc_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    old_loc = tl.load(old_loc_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    old_scale = tl.load(old_scale_ptr + offs, mask=mask, other=1.0).to(COMPUTE)
    g_loc_out = tl.load(g_loc_out_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    mean_term = tl.load(stats_ptr + rows * 4, mask=row_ok, other=1.0)
    mean_factor = tl.load(stats_ptr + rows * 4 + 1, mask=row_ok, other=1.0)
    g_mean_mult = tl.load(g_mean_mult_ptr + rows, mask=row_ok, other=0.0).to(COMPUTE)
    mean_bound = tl.cast(mean_bound_hi, COMPUTE) + tl.cast(mean_bound_lo, COMPUTE)

    # loc~ = μ_o + s (μ - μ_o), s = sqrt(ε/m), ω = sqrt(m/ε) - 1: ds/dm = -s/(2m), dω/dm = 1/(2 sqrt(mε)).
    diff = loc - old_loc
    r = diff / old_scale
    mean_active = mean_term > mean_bound
    safe = tl.where(mean_active, mean_term, mean_bound)
    g_factor = tl.sum(tl.where(mask, g_loc_out * diff, 0.0), axis=1)
    g_term = -0.5 * mean_factor / safe * g_factor + 0.5 * g_mean_mult / tl.sqrt(safe * mean_bound)
    g_term = tl.where(mean_active, g_term, 0.0)[:, None]
    # m = c Σ r², r = (μ - μ_o)/σ_o.
    g_r = g_term * (2.0 * MEAN_COEF) * r
    g_loc = mean_factor[:, None] * g_loc_out + g_r / old_scale
    tl.store(g_loc_ptr + offs, g_loc.to(out_ty), mask=mask)
    tl.store(g_old_loc_ptr + offs, (g_loc_out - g_loc).to(out_ty), mask=mask)
    g_old_scale = -g_r * r / old_scale

    if HAS_COV:
        scale = tl.load(scale_ptr + offs, mask=mask, other=1.0).to(COMPUTE)
        g_out = tl.load(g_scale_out_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
        cov_term = tl.load(stats_ptr + rows * 4 + 2, mask=row_ok, other=1.0)
        cov_aux = tl.load(stats_ptr + rows * 4 + 3, mask=row_ok, other=1.0)
        cov_bound = tl.cast(cov_bound_hi, COMPUTE) + tl.cast(cov_bound_lo, COMPUTE)
        cov_active = cov_term > cov_bound
        if COV == 0:
            # Implicit-function backward of kl_cov_projection, with its per-row normalisation.
            w = (1.0 / (1.0 + cov_aux))[:, None]
            v = cov_aux[:, None] * w
            old_precision = 1.0 / (old_scale * old_scale)
            gap = (
                (old_scale - scale)
                * (old_scale + scale)
                / ((scale * old_scale) * (scale * old_scale))
            )
            q = w * (old_scale / scale) * (old_scale / scale) + v
            precision = old_precision * q
            scale_out = old_scale / tl.sqrt(q)
            g_precision = -0.5 * g_out * (scale_out * scale_out * scale_out)
            z = gap / precision
            z_max = tl.max(tl.where(mask, tl.abs(z), 0.0), axis=1)
            v_dir = z / tl.maximum(z_max, TINY)[:, None]
            coupling = tl.sum(tl.where(mask, g_precision * v_dir * precision, 0.0), axis=1)
            norm = tl.sum(tl.where(mask, v_dir * v_dir, 0.0), axis=1)
            norm = tl.where(cov_active, norm, 1.0)
            along = coupling[:, None] * v_dir / norm[:, None]
            tangential = g_precision - along / precision
            g_net_precision = w * tangential
            g_old_precision = v * tangential + along / old_precision
            active = cov_active[:, None]
            g_scale = tl.where(active, -2.0 * g_net_precision / (scale * scale * scale), g_out)
            g_old_scale += tl.where(
                active, -2.0 * g_old_precision / (old_scale * old_scale * old_scale), 0.0
            )
        else:
            g_cov_mult = tl.load(g_cov_mult_ptr + rows, mask=row_ok, other=0.0).to(COMPUTE)
            safe_c = tl.where(cov_active, cov_term, cov_bound)
            if COV == 1:
                # σ~ = σ_o + s (σ - σ_o); c = Σ q², q = (σ_o - σ)/σ_o.
                g_factor = tl.sum(tl.where(mask, g_out * (scale - old_scale), 0.0), axis=1)
                g_c = -0.5 * cov_aux / safe_c * g_factor + 0.5 * g_cov_mult / tl.sqrt(
                    safe_c * cov_bound
                )
                g_c = tl.where(cov_active, g_c, 0.0)[:, None]
                g_q = g_c * 2.0 * (old_scale - scale) / old_scale
                g_scale = cov_aux[:, None] * g_out - g_q / old_scale
                g_old_scale += (1.0 - cov_aux[:, None]) * g_out + g_q * scale / (
                    old_scale * old_scale
                )
            else:
                # σ~² = σ_o² + s (σ² - σ_o²); c = Σ (ab)², a = σ - σ_o, b = σ + σ_o.
                old_var = old_scale * old_scale
                scale_out = tl.sqrt(old_var + cov_aux[:, None] * (scale * scale - old_var))
                g_var_out = g_out / (2.0 * scale_out)
                g_factor = tl.sum(
                    tl.where(mask, g_var_out * (scale * scale - old_var), 0.0), axis=1
                )
                g_c = -0.5 * cov_aux / safe_c * g_factor + 0.5 * g_cov_mult / tl.sqrt(
                    safe_c * cov_bound
                )
                g_c = tl.where(cov_active, g_c, 0.0)[:, None]
                g_ab = g_c * 2.0 * (scale - old_scale) * (scale + old_scale)
                g_scale = 2.0 * scale * (cov_aux[:, None] * g_var_out + g_ab)
                g_old_scale += 2.0 * old_scale * ((1.0 - cov_aux[:, None]) * g_var_out - g_ab)
        tl.store(g_scale_ptr + offs, g_scale.to(out_ty), mask=mask)
    tl.store(g_old_scale_ptr + offs, g_old_scale.to(out_ty), mask=mask)
