"""Rows just outside the KL covariance bound: the solver reaches the root on every row.

Covariance parts exceed the bound by 1 + δ, δ from 1e-10 to 1e-1, with scale ratios σ/σ_o from 1e-3
to 1e3, rows of up to 16 x 64 values: the projected scales agree with an independent float64
bisection (:mod:`tests.constraints.kl_oracle`) to 1e-8 relative and put the covariance part at the
bound to 1e-9 relative, on the torch reference and the Triton kernel (on CPU under the Triton
interpreter), in both modes. The solver's previous start (the large-η asymptote, ~13 units of
log η above the root of such rows) failed both.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.constraints.kl_oracle import bisection_projection, cov_part, near_boundary_rows
from tests.constraints.projection_contract import MODES, row_dims
from trudi.constraints import TrajectoryKLProjection
from trudi.constraints.projection import triton_available

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BACKENDS = [
    "torch",
    pytest.param("triton", marks=pytest.mark.skipif(not triton_available(), reason="needs triton")),
]
# The interpreter evaluates discarded branches in numpy (inf/NaN there), and numpy warns.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
MEAN_BOUND = 1e30  # the mean part is not under test


def rows(seed, mode, k, a, ratio_range, delta):
    batch, row_shape = ((3,), (k, a)) if mode == "trajectory" else ((2, k), (a,))
    return near_boundary_rows(seed, batch, row_shape, ratio_range, delta)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@settings(
    max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(1, 16),
    a=st.integers(1, 64),
    ends=st.tuples(st.floats(-3, 3), st.floats(-3, 3)),
    log10_delta=st.floats(-10, -1),
)
def test_converges_on_rows_just_outside_the_bound(backend, mode, seed, k, a, ends, log10_delta):
    scale, old_scale, bound = rows(seed, mode, k, a, sorted(ends), 10.0**log10_delta)
    # Below this every scale sits within ~1e-5 of its behaviour one, where a float64 scale
    # resolves the covariance part only to ~1e-6 relative (the ratios are not representable).
    assume(bound > 1e-10)
    dims = row_dims(mode)
    layer = TrajectoryKLProjection(MEAN_BOUND, bound, mode=mode, backend=backend)
    projection = layer.project(*(x.to(DEVICE) for x in (old_scale, scale, old_scale, old_scale)))
    out = projection.scale.cpu()
    assert (projection.cov_multiplier > 0).all()
    expected = bisection_projection(scale, old_scale, bound, dims)
    torch.testing.assert_close(out, expected, rtol=1e-8, atol=0)
    c = cov_part(out, old_scale, dims)
    torch.testing.assert_close(c, torch.full_like(c, bound), rtol=1e-9, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("log10_delta", [-3.0, -2.0, -1.0])
def test_gradcheck_on_rows_just_outside_the_bound(backend, mode, log10_delta):
    # δ >= 1e-3: gradcheck's finite differences must not cross the bound (a kink).
    scale, old_scale, bound = rows(int(-log10_delta), mode, 2, 3, (-1.0, 1.0), 10.0**log10_delta)
    layer = TrajectoryKLProjection(MEAN_BOUND, bound, mode=mode, backend=backend)
    loc = old_scale.clone()
    inputs = tuple(x.to(DEVICE).requires_grad_() for x in (loc, scale, loc.clone(), old_scale))
    assert (layer.project(*inputs).cov_multiplier > 0).all()
    assert torch.autograd.gradcheck(layer, inputs, fast_mode=backend == "triton")
