"""The pseudo log-density: exact for a Gaussian (tanh) policy, an upper bound on average for chains."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from trudi.policies import DenoiserMLP, DiffusionPolicy, GaussianPolicy, pseudo_log_prob
from trudi.samplers import (
    AncestralSampler,
    BestOfKSampler,
    CosineSchedule,
    EulerMaruyamaSampler,
)


def test_gaussian_tanh_is_exact():
    torch.manual_seed(0)
    policy = GaussianPolicy(nn.Linear(3, 2), action_dim=2, squash="tanh", init_std=0.7).double()
    observation = torch.randn(6, 3, dtype=torch.float64)
    chain, loc, scale = policy.rsample(observation)
    exact = TransformedDistribution(Normal(loc[..., 0, :], scale[..., 0, :]), [TanhTransform()])
    expected = exact.log_prob(torch.tanh(chain[..., -1, :])).sum(-1)
    torch.testing.assert_close(pseudo_log_prob(policy, chain, loc, scale), expected)


class Linear(nn.Module):
    """d = w x + c for every step: the chain, and so the action, is Gaussian."""

    action_dim, num_steps = 1, 4

    def forward(self, observation, sample, timestep):
        return -0.3 * sample + 0.2


def test_chain_elbo_upper_bounds_the_log_density_on_average():
    """E_τ[log π̂(τ)] − E[log π(x_0)] = E[KL(p(x_{1:K}|x_0) ‖ q(x_{1:K}|x_0))] ≥ 0."""
    policy = DiffusionPolicy(Linear(), EulerMaruyamaSampler(4, prior_std=1.5), squash="none")
    policy = policy.double()
    torch.manual_seed(0)
    with torch.no_grad():
        chain, loc, scale = policy.rsample(torch.zeros(50_000, 1, dtype=torch.float64))
        pseudo = pseudo_log_prob(policy, chain, loc, scale)
    x0 = chain[..., -1, :]
    exact = Normal(x0.mean(), x0.std()).log_prob(x0).sum(-1)  # the action's law is Gaussian
    gap = (pseudo - exact).mean().item()
    standard_error = (pseudo - exact).std().item() / 50_000**0.5
    assert gap > 5 * standard_error


def test_scheduled_sampler_uses_the_forward_diffusion():
    torch.manual_seed(0)
    denoiser = DenoiserMLP(3, 2, 5, hidden_dim=16, num_blocks=1)
    policy = DiffusionPolicy(denoiser, AncestralSampler(CosineSchedule(5), min_std=0.05))
    chain, loc, scale = policy.rsample(torch.randn(4, 3))
    assert torch.isfinite(pseudo_log_prob(policy, chain, loc, scale)).all()


def test_samplers_without_a_reference_process_are_refused():
    denoiser = DenoiserMLP(3, 2, 5, hidden_dim=16, num_blocks=1)
    sampler = BestOfKSampler(AncestralSampler(CosineSchedule(5)), 2)
    policy = DiffusionPolicy(denoiser, sampler, eval_sampler=sampler)
    chain, loc, scale = policy.rsample(torch.randn(4, 3))
    with pytest.raises(ValueError, match="reference process"):
        pseudo_log_prob(policy, chain, loc, scale)
