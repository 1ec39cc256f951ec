"""The contract every trust-region projection passes (shared by the torch and Triton backends).

Subclasses set ``divergence`` and ``backend`` and implement ``cov_distance``: the distance in which
the covariance projection is the closest feasible point.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trudi.constraints import Projection, TrajectoryKLProjection
from trudi.constraints.divergences import cov_terms, mean_terms

MODES = ("trajectory", "per_step")


def row_dims(mode: str) -> tuple[int, ...]:
    return (-2, -1) if mode == "trajectory" else (-1,)


def make_transitions(seed, shape, dtype, *, log_scale_range=(-6.9, 4.6), max_gap=1e3):
    """Behaviour and network transitions with scales in [1e-3, 1e2] and mean gaps up to ``max_gap``.

    Behaviour means are of the order of their scales, so the float32 output can resolve the bound.
    """
    g = torch.Generator().manual_seed(seed)
    lo, hi = log_scale_range

    def log_uniform(*s):
        return torch.exp(torch.empty(*s, dtype=torch.float64).uniform_(lo, hi, generator=g))

    old_scale = log_uniform(*shape)
    old_loc = old_scale * torch.randn(*shape, generator=g, dtype=torch.float64)
    gap = torch.exp(
        torch.empty(*shape[:-2], 1, 1, dtype=torch.float64).uniform_(
            -8, math.log(max_gap), generator=g
        )
    )
    loc = old_loc + gap * torch.randn(*shape, generator=g, dtype=torch.float64)
    scale = log_uniform(*shape)
    return tuple(x.to(dtype) for x in (loc, scale, old_loc, old_scale))


def rounding_slack(term_fn, x: torch.Tensor, dims, dtype) -> torch.Tensor:
    """First-order change of a row term when every entry of ``x`` moves by its rounding error."""
    x64 = x.detach().double().requires_grad_()
    (grad,) = torch.autograd.grad(term_fn(x64).sum(), x64)
    return (grad.abs() * x64.detach().abs()).sum(dims) * torch.finfo(dtype).eps


def pull_into_region(term_fn, start, old, bound, dims, iterations=60):
    """Largest step ``λ ∈ [0, 1]`` along ``old + λ (start - old)`` with ``term <= bound`` (bisection)."""
    shape = term_fn(start).shape + (1,) * len(dims)
    low, high = torch.zeros(shape, dtype=start.dtype), torch.ones(shape, dtype=start.dtype)
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        feasible = (term_fn(old + mid * (start - old)) <= bound).reshape(shape)
        low, high = torch.where(feasible, mid, low), torch.where(feasible, high, mid)
    return old + low * (start - old)


class ProjectionContract:
    divergence: str
    backend: str = "torch"
    mean_bound = 0.05
    cov_bound = 0.01

    def cov_distance(self, scale_a, scale_b, old_scale):
        raise NotImplementedError

    def make(self, mode, **kwargs):
        kwargs.setdefault("cov_bound", self.cov_bound)
        return TrajectoryKLProjection(
            self.mean_bound, divergence=self.divergence, mode=mode, backend=self.backend, **kwargs
        )

    def check_bound(self, mode, dtype, rel_tol, seed, shape):
        loc, scale, old_loc, old_scale = make_transitions(seed, shape, dtype)
        out_loc, out_scale = self.make(mode)(loc, scale, old_loc, old_scale)
        assert out_loc.dtype == dtype and out_scale.dtype == dtype
        dims = row_dims(mode)
        old_loc64, old_scale64 = old_loc.double(), old_scale.double()

        def mean_term(x):
            return mean_terms(self.divergence, x, old_loc64, old_scale64).sum(dims)

        def cov_term(x):
            return cov_terms(self.divergence, x, old_scale64).sum(dims)

        slack_m = rounding_slack(mean_term, out_loc, dims, dtype) if dtype != torch.float64 else 0
        slack_c = rounding_slack(cov_term, out_scale, dims, dtype) if dtype != torch.float64 else 0
        m, c = mean_term(out_loc.double()), cov_term(out_scale.double())
        assert (m <= self.mean_bound * (1 + rel_tol) + slack_m).all(), (m.max(), slack_m)
        assert (c <= self.cov_bound * (1 + rel_tol) + slack_c).all(), (c.max(), slack_c)

    @pytest.mark.parametrize("mode", MODES)
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 6), a=st.integers(1, 7))
    def test_bound_holds_float64(self, mode, seed, k, a):
        self.check_bound(mode, torch.float64, 1e-6, seed, (5, k, a))

    @pytest.mark.parametrize("mode", MODES)
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 6), a=st.integers(1, 7))
    def test_bound_holds_float32(self, mode, seed, k, a):
        self.check_bound(mode, torch.float32, 1e-3, seed, (5, k, a))

    @pytest.mark.parametrize("mode", MODES)
    def test_inside_region_unchanged(self, mode):
        loc, scale, old_loc, old_scale = make_transitions(0, (64, 4, 3), torch.float64)
        # Points well inside the region: the projection onto bounds a quarter as large.
        tight = TrajectoryKLProjection(
            self.mean_bound / 4, self.cov_bound / 4, divergence=self.divergence, mode=mode
        )
        loc_in, scale_in = tight(loc, scale, old_loc, old_scale)
        projection = self.make(mode).project(loc_in, scale_in, old_loc, old_scale)
        torch.testing.assert_close(projection.loc, loc_in, rtol=1e-12, atol=0)
        torch.testing.assert_close(projection.scale, scale_in, rtol=1e-12, atol=0)
        assert (projection.mean_multiplier == 0).all() and (projection.cov_multiplier == 0).all()

    @pytest.mark.parametrize("mode", MODES)
    def test_closest_feasible_point(self, mode):
        shape = (16, 3, 4)
        loc, scale, old_loc, old_scale = make_transitions(3, shape, torch.float64, max_gap=1.0)
        scale = old_scale * torch.exp(0.5 * torch.tanh(scale))
        out_loc, out_scale = self.make(mode)(loc, scale, old_loc, old_scale)
        dims = row_dims(mode)

        def mean_dist(x):
            return (((x - loc) / old_scale).square()).sum(dims)

        g = torch.Generator().manual_seed(0)
        d_mean, d_cov = mean_dist(out_loc), self.cov_distance(out_scale, scale, old_scale).sum(dims)
        checked_m = checked_c = 0
        for _ in range(100):
            # Random points near the projection, pulled along the segment to the behaviour until
            # they are feasible (an oracle independent of the code under test).
            fraction = 1.0 - 0.05 * float(torch.rand((), generator=g))
            noise = 1e-3 * torch.randn((2, *shape), generator=g, dtype=loc.dtype)

            def mean_term(x):
                return mean_terms(self.divergence, x, old_loc, old_scale).sum(dims)

            def cov_term(x):
                return cov_terms(self.divergence, x, old_scale).sum(dims)

            cand_loc = pull_into_region(
                mean_term, out_loc + old_scale * noise[0], old_loc, self.mean_bound * fraction, dims
            )
            cand_scale = pull_into_region(
                cov_term,
                out_scale * torch.exp(noise[1]),
                old_scale,
                self.cov_bound * fraction,
                dims,
            )
            ok_m = mean_terms(self.divergence, cand_loc, old_loc, old_scale).sum(dims)
            ok_m = ok_m <= self.mean_bound
            ok_c = cov_terms(self.divergence, cand_scale, old_scale).sum(dims) <= self.cov_bound
            assert (d_mean[ok_m] <= mean_dist(cand_loc)[ok_m] * (1 + 1e-9)).all()
            cand_cov = self.cov_distance(cand_scale, scale, old_scale).sum(dims)
            assert (d_cov[ok_c] <= cand_cov[ok_c] * (1 + 1e-9)).all()
            checked_m, checked_c = checked_m + int(ok_m.sum()), checked_c + int(ok_c.sum())
        assert checked_m > 100 and checked_c > 100

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("active", [True, False])
    def test_gradcheck(self, mode, active):
        g = torch.Generator().manual_seed(1)
        shape = (3, 4, 5)
        old_loc = torch.randn(shape, generator=g, dtype=torch.float64)
        old_scale = torch.rand(shape, generator=g, dtype=torch.float64) + 0.3
        spread = 0.5 if active else 1e-3
        loc = old_loc + spread * old_scale * torch.randn(shape, generator=g, dtype=torch.float64)
        scale = old_scale * torch.exp(spread * torch.randn(shape, generator=g, dtype=torch.float64))
        projection = self.make(mode)
        result = projection.project(loc, scale, old_loc, old_scale)
        assert bool((result.mean_multiplier > 0).any()) == active
        assert bool((result.cov_multiplier > 0).any()) == active
        inputs = tuple(x.requires_grad_() for x in (loc, scale, old_loc, old_scale))
        assert torch.autograd.gradcheck(projection, inputs)

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
    def test_extreme_inputs_finite(self, mode, dtype):
        shape = (4, 3, 5)
        old_scale = torch.tensor([1e-6, 1e-3, 1.0, 1e2, 1e4]).expand(shape).to(dtype)
        scale = torch.tensor([1e4, 1e2, 1.0, 1e-3, 1e-6]).expand(shape).to(dtype)
        old_loc = torch.tensor([-1e4, 0.0, 1.0, 1e3, 1e4]).expand(shape).to(dtype)
        loc = torch.tensor([1e4, 1e3, 0.0, -1e3, -1e4]).expand(shape).to(dtype)
        loc, scale = loc.clone().requires_grad_(), scale.clone().requires_grad_()
        out_loc, out_scale = self.make(mode)(loc, scale, old_loc, old_scale)
        assert torch.isfinite(out_loc).all() and torch.isfinite(out_scale).all()
        assert (out_scale > 0).all()
        (out_loc.float().sum() + out_scale.float().sum()).backward()
        assert torch.isfinite(loc.grad).all() and torch.isfinite(scale.grad).all()

    @pytest.mark.parametrize("mode", MODES)
    def test_any_batch_shape_matches_flattened(self, mode):
        loc, scale, old_loc, old_scale = make_transitions(5, (2, 3, 4, 5), torch.float64)
        projection = self.make(mode)
        out_loc, out_scale = projection(loc, scale, old_loc, old_scale)
        flat = projection(*(x.flatten(0, 1) for x in (loc, scale, old_loc, old_scale)))
        torch.testing.assert_close(out_loc.flatten(0, 1), flat[0])
        torch.testing.assert_close(out_scale.flatten(0, 1), flat[1])

    def test_two_forwards_before_backward(self):
        """Gradients must come from each call's own context, never from the last forward."""
        projection = self.make("trajectory")
        first = make_transitions(7, (6, 3, 4), torch.float64)
        second = make_transitions(8, (9, 3, 4), torch.float64)
        a = [x.clone().requires_grad_() for x in first]
        b = [x.clone().requires_grad_() for x in second]
        out_a, out_b = projection(*a), projection(*b)
        (out_a[0].sum() + out_a[1].sum()).backward()
        (out_b[0].sum() + out_b[1].sum()).backward()
        a_ref = [x.clone().requires_grad_() for x in first]
        out = projection(*a_ref)
        (out[0].sum() + out[1].sum()).backward()
        for x, y in zip(a, a_ref, strict=True):
            torch.testing.assert_close(x.grad, y.grad)

    def test_cov_bound_none_leaves_scale(self):
        loc, scale, old_loc, old_scale = make_transitions(2, (8, 3, 4), torch.float64)
        projection = self.make("trajectory", cov_bound=None).project(loc, scale, old_loc, old_scale)
        assert torch.equal(projection.scale, scale)
        assert (projection.cov_multiplier == 0).all()

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("shared", ["both", "network"])
    def test_broadcast_scales_match_their_expansion(self, mode, shared):
        """Scales ``[1, K, A]`` (state-independent) project as their expansion to ``[B, K, A]``:
        the same outputs and multipliers, and the gradient of the expansion."""
        loc, scale, old_loc, old_scale = make_transitions(5, (6, 3, 4), torch.float64)
        old = old_scale[:1] if shared == "both" else old_scale
        projection = self.make(mode)
        g = torch.Generator().manual_seed(0)
        weights = torch.randn(2, *loc.shape, generator=g, dtype=torch.float64)

        def run(scale):
            loc_in, scale_in = loc.clone().requires_grad_(), scale.clone().requires_grad_()
            out = projection.project(loc_in, scale_in, old_loc, old)
            ((out.loc * weights[0]).sum() + (out.scale * weights[1]).sum()).backward()
            return out, loc_in.grad, scale_in.grad

        row, loc_grad, scale_grad = run(scale[:1])
        full, full_loc_grad, full_scale_grad = run(scale[:1].expand_as(loc))
        assert (full.cov_multiplier > 0).any(), "the covariance part must be active"
        assert row.scale.shape == loc.shape
        for name in Projection._fields:
            torch.testing.assert_close(getattr(row, name), getattr(full, name), msg=name)
        torch.testing.assert_close(loc_grad, full_loc_grad)
        torch.testing.assert_close(scale_grad, full_scale_grad.sum(0, keepdim=True))
