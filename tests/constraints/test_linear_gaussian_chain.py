"""A linear-Gaussian chain has a Gaussian marginal in closed form: the trajectory KL bounds it.

Per action dim, x_K ~ N(0, 1) and x_{k-1} = α_k x_k + β_k + σ_k ε. The marginal of x_0 is
N(m_0, v_0) with m_{k-1} = α_k m_k + β_k and v_{k-1} = α_k² v_k + σ_k². The exact trajectory
KL(old ‖ new) is E_old Σ_k KL(old_k(x_k) ‖ new_k(x_k)), where the mean gap (Δα x_k + Δβ) has second
moment (Δα m_k + Δβ)² + Δα² v_k under the old chain.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trudi.constraints import TrajectoryKLProjection, exact_trajectory_kl


def random_chain(g, k, a):
    alpha = 0.5 + torch.rand(k, a, generator=g, dtype=torch.float64)
    beta = torch.randn(k, a, generator=g, dtype=torch.float64)
    sigma = 0.1 + torch.rand(k, a, generator=g, dtype=torch.float64)
    return alpha, beta, sigma


def marginals(alpha, beta, sigma):
    """Mean and variance of x_k for k = K … 0 (index j = K - k), each ``[K + 1, A]``."""
    m, v = torch.zeros_like(alpha[0]), torch.ones_like(alpha[0])
    means, variances = [m], [v]
    for j in range(alpha.shape[0]):
        m, v = alpha[j] * m + beta[j], alpha[j].square() * v + sigma[j].square()
        means.append(m)
        variances.append(v)
    return torch.stack(means), torch.stack(variances)


def gaussian_kl_1d(m_p, v_p, m_q, v_q):
    return 0.5 * (v_p / v_q + (m_p - m_q).square() / v_q - 1 + torch.log(v_q / v_p))


def closed_form_trajectory_kl(old, new):
    means, variances = marginals(*old)
    d_alpha, d_beta = new[0] - old[0], new[1] - old[1]
    gap_sq = (d_alpha * means[:-1] + d_beta).square() + d_alpha.square() * variances[:-1]
    s_old, s_new = old[2].square(), new[2].square()
    return (0.5 * (gap_sq / s_new + s_old / s_new - 1 + torch.log(s_new / s_old))).sum()


def sample_chains(params, n, g):
    alpha, beta, sigma = params
    x = torch.randn(n, alpha.shape[1], generator=g, dtype=torch.float64)
    chain = [x]
    for j in range(alpha.shape[0]):
        x = alpha[j] * x + beta[j] + sigma[j] * torch.randn(x.shape, generator=g, dtype=x.dtype)
        chain.append(x)
    return torch.stack(chain, dim=-2)  # [n, K + 1, A]


def transitions(params, chain):
    alpha, beta, sigma = params
    return alpha * chain[:, :-1] + beta, sigma.expand_as(chain[:, :-1])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 6), a=st.integers(1, 4))
def test_marginal_kl_below_trajectory_kl(seed, k, a):
    g = torch.Generator().manual_seed(seed)
    old, new = random_chain(g, k, a), random_chain(g, k, a)
    m_old, v_old = (x[-1] for x in marginals(*old))
    m_new, v_new = (x[-1] for x in marginals(*new))
    marginal = gaussian_kl_1d(m_old, v_old, m_new, v_new).sum()
    assert marginal <= closed_form_trajectory_kl(old, new) * (1 + 1e-12)


def test_exact_trajectory_kl_on_recorded_chains_estimates_closed_form():
    g = torch.Generator().manual_seed(0)
    old, new = random_chain(g, 4, 3), random_chain(g, 4, 3)
    chains = sample_chains(old, 200_000, g)
    estimate = exact_trajectory_kl(*transitions(old, chains), *transitions(new, chains)).mean()
    torch.testing.assert_close(estimate, closed_form_trajectory_kl(old, new), rtol=2e-2, atol=0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), bound=st.floats(1e-3, 1.0))
def test_projected_chain_marginal_kl_within_bound(seed, bound):
    """Shared scales and a state-independent mean gap: the projected chain stays linear-Gaussian."""
    g = torch.Generator().manual_seed(seed)
    old = random_chain(g, 5, 3)
    new = (old[0], old[1] + 3 * torch.randn(old[1].shape, generator=g, dtype=old[1].dtype), old[2])
    chains = sample_chains(old, 64, g)
    old_loc, old_scale = transitions(old, chains)
    loc, scale = transitions(new, chains)
    out_loc, _ = TrajectoryKLProjection(bound)(loc, scale, old_loc, old_scale)
    projected_beta = out_loc - old[0] * chains[:, :-1]
    torch.testing.assert_close(projected_beta, projected_beta[:1].expand_as(projected_beta))
    projected = (old[0], projected_beta[0], old[2])
    for p, q in ((old, projected), (projected, old)):
        m_p, v_p = (x[-1] for x in marginals(*p))
        m_q, v_q = (x[-1] for x in marginals(*q))
        assert gaussian_kl_1d(m_p, v_p, m_q, v_q).sum() <= bound * (1 + 1e-6)
        assert closed_form_trajectory_kl(p, q) <= bound * (1 + 1e-6)
