"""Per-step and trajectory Gaussian KLs against torch.distributions."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, Normal, kl_divergence

from tests.constraints.projection_contract import make_transitions
from trudi.constraints import exact_gaussian_kl, exact_trajectory_kl, gaussian_kl, trajectory_kl
from trudi.constraints.divergences import log_ratio_penalty


def torch_kl(p_loc, p_scale, q_loc, q_scale):
    p = Independent(Normal(p_loc, p_scale), 1)
    q = Independent(Normal(q_loc, q_scale), 1)
    return kl_divergence(p, q)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 5), a=st.integers(1, 6))
def test_exact_kl_matches_torch_distributions(seed, k, a):
    loc, scale, old_loc, old_scale = make_transitions(seed, (3, k, a), torch.float64, max_gap=10)
    expected = torch_kl(old_loc, old_scale, loc, scale)
    torch.testing.assert_close(exact_gaussian_kl(old_loc, old_scale, loc, scale), expected)
    torch.testing.assert_close(
        exact_trajectory_kl(old_loc, old_scale, loc, scale), expected.sum(-1)
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 5), a=st.integers(1, 6))
def test_decoupled_parts(seed, k, a):
    loc, scale, old_loc, old_scale = make_transitions(seed, (3, k, a), torch.float64, max_gap=10)
    mean_part, cov_part = gaussian_kl(loc, scale, old_loc, old_scale)
    assert mean_part.shape == cov_part.shape == (3, k)
    # The mean part is KL(new ‖ old) with the new scale replaced by the old one, the covariance part
    # is KL(new ‖ old) with equal means; their sum is KL(new ‖ old) up to the mean's precision.
    torch.testing.assert_close(mean_part, torch_kl(loc, old_scale, old_loc, old_scale))
    torch.testing.assert_close(cov_part, torch_kl(old_loc, scale, old_loc, old_scale))
    traj_mean, traj_cov = trajectory_kl(loc, scale, old_loc, old_scale)
    torch.testing.assert_close(traj_mean, mean_part.sum(-1))
    torch.testing.assert_close(traj_cov, cov_part.sum(-1))
    # With shared scales the decoupled KL is exact in both directions.
    forward = exact_gaussian_kl(loc, old_scale, old_loc, old_scale)
    backward = exact_gaussian_kl(old_loc, old_scale, loc, old_scale)
    torch.testing.assert_close(mean_part, forward)
    torch.testing.assert_close(mean_part, backward)


def test_small_covariance_kl_accurate_in_float32():
    scale64 = torch.full((1, 1, 1000), 1.0, dtype=torch.float64)
    new64 = scale64 * (1 + torch.linspace(-1e-3, 1e-3, 1000, dtype=torch.float64)).view(1, 1, -1)
    _, cov64 = gaussian_kl(new64, new64, new64, scale64)
    _, cov32 = gaussian_kl(new64.float(), new64.float(), new64.float(), scale64.float())
    torch.testing.assert_close(cov32.double(), cov64, rtol=1e-4, atol=0)


def test_log_ratio_penalty_continuous_and_exact():
    u = torch.linspace(-0.5, 0.5, 20001, dtype=torch.float64)
    torch.testing.assert_close(log_ratio_penalty(u), u - torch.log1p(u), rtol=1e-9, atol=1e-18)


def test_log_ratio_penalty_gradient_finite_from_near_minus_one_to_huge():
    """Both branches are evaluated everywhere; the unselected one must not poison the gradient."""
    u = torch.cat([torch.linspace(-0.999, 0.5, 1001), torch.logspace(0, 30, 31)]).double()
    u.requires_grad_()
    (grad,) = torch.autograd.grad(log_ratio_penalty(u).sum(), u)
    assert grad.isfinite().all()
    torch.testing.assert_close(grad, u.detach() / (1 + u.detach()), rtol=1e-6, atol=1e-12)
