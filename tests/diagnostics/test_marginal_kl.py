"""marginal_kl on chains whose marginal KL is known: a linear-Gaussian chain and a Gaussian head.

Tolerances: 4 standard errors over the states (each state is an independent replicate), plus the
k-NN estimator's bias allowance in one or two dimensions (5% of the KL, tests/diagnostics/
test_knn_kl.py).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tensordict.nn import InteractionType

from tests.constraints.test_linear_gaussian_chain import (
    closed_form_trajectory_kl,
    gaussian_kl_1d,
    marginals,
    random_chain,
)
from trudi.diagnostics import marginal_kl
from trudi.policies import ChainPolicy, GaussianPolicy
from trudi.samplers import transition_log_prob

STATES, SAMPLES = 32, 400


class LinearChainPolicy(ChainPolicy):
    """x_K ~ N(0, I), x_{k-1} = α_k x_k + β_k + σ_k ε, the same at every state; action x_0."""

    def __init__(self, alpha, beta, sigma):
        super().__init__(
            num_steps=alpha.shape[0],
            action_dim=alpha.shape[1],
            action_spec=None,
            squash="none",
            trajectory=False,
            observation_key="observation",
            action_key="action",
            default_interaction_type=InteractionType.RANDOM,
            validate_args=True,
            min_std=1e-3,
            max_std=10.0,
        )
        self.alpha, self.beta, self.sigma = alpha, beta, sigma

    def _transitions(self, observation, chain):
        return self.alpha * chain[..., :-1, :] + self.beta, self.sigma.expand_as(chain[..., 1:, :])

    def _sample(self, observation, explore):
        x = torch.randn(*observation.shape[:-1], self.action_dim, dtype=observation.dtype)
        samples = [x]
        for j in range(self.num_steps):
            x = self.alpha[j] * x + self.beta[j] + self.sigma[j] * torch.randn_like(x)
            samples.append(x)
        chain = torch.stack(samples, dim=-2)
        loc, scale = self._transitions(observation, chain)
        return chain, loc, scale, transition_log_prob(chain, loc, scale)


def noise(values: torch.Tensor) -> float:
    return 4 * values.std().item() / math.sqrt(values.numel())


def linear_pair(a: int, seed: int):
    """A random 5-step chain and a moderate change of it (marginal KL below ~0.5, where the
    k-NN estimator is within 5% in one or two dimensions)."""
    alpha, beta, sigma = random_chain(torch.Generator().manual_seed(seed), 5, a)
    return (alpha, beta, sigma), (alpha * 1.05, beta + 0.15, sigma * 1.1)


@pytest.mark.parametrize("a", [1, 2])
def test_linear_gaussian_chain_against_closed_forms(a):
    old, new = linear_pair(a, seed=a)
    torch.manual_seed(a)
    kl = marginal_kl(
        LinearChainPolicy(*old),
        LinearChainPolicy(*new),
        torch.zeros(STATES, 3, dtype=torch.float64),
        num_samples=SAMPLES,
    )
    trajectory = closed_form_trajectory_kl(old, new).item()
    (m_old, v_old), (m_new, v_new) = marginals(*old), marginals(*new)
    marginal = gaussian_kl_1d(m_old[-1], v_old[-1], m_new[-1], v_new[-1]).sum().item()
    assert marginal < trajectory  # data processing; the gap is what marginal_kl measures
    assert abs(kl.trajectory.mean().item() - trajectory) <= noise(kl.trajectory)
    assert abs(kl.marginal.mean().item() - marginal) <= noise(kl.marginal) + 0.05 * marginal
    assert kl.marginal.mean() < kl.trajectory.mean()


def gaussian_policy(bias: torch.Tensor, std: float) -> GaussianPolicy:
    loc_net = torch.nn.Linear(3, bias.numel())
    with torch.no_grad():
        loc_net.weight.fill_(0.2)
        loc_net.bias.copy_(bias)
    return GaussianPolicy(loc_net, bias.numel(), squash="none", init_std=std)


def test_gaussian_head_trajectory_kl_is_the_marginal_kl():
    """K = 1: the chain's only transition is the action's distribution, the same for every
    chain of a state, so the trajectory KL is the exact marginal KL, and the k-NN estimate of the
    marginal matches it."""
    old = gaussian_policy(torch.tensor([0.0, 0.3]), std=0.5)
    new = gaussian_policy(torch.tensor([0.2, 0.0]), std=0.6)
    torch.manual_seed(0)
    observation = torch.randn(STATES, 3)
    kl = marginal_kl(old, new, observation, num_samples=SAMPLES)
    shift = torch.tensor([-0.2, 0.3])
    exact = (math.log(0.6 / 0.5) + (0.25 + shift**2) / (2 * 0.36) - 0.5).sum()
    torch.testing.assert_close(kl.trajectory, exact.expand(STATES), rtol=1e-5, atol=1e-6)
    assert abs(kl.marginal.mean().item() - exact.item()) <= noise(kl.marginal) + 0.05 * exact


def test_same_policy_gives_zero():
    old, _ = linear_pair(2, seed=4)
    policy = LinearChainPolicy(*old)
    torch.manual_seed(4)
    kl = marginal_kl(policy, copy.deepcopy(policy), torch.zeros(STATES, 3, dtype=torch.float64))
    assert torch.equal(kl.trajectory, torch.zeros(STATES, dtype=torch.float64))
    assert abs(kl.marginal.mean().item()) <= noise(kl.marginal)


def test_bad_input_is_named():
    policy = gaussian_policy(torch.zeros(2), std=0.5)
    other = gaussian_policy(torch.zeros(3), std=0.5)
    observation = torch.randn(4, 3)
    with pytest.raises(ValueError, match="old_policy must be a trudi ChainPolicy"):
        marginal_kl(torch.nn.Linear(3, 2), policy, observation)
    with pytest.raises(ValueError, match="same \\(num_steps, action_dim\\)"):
        marginal_kl(policy, other, observation)
    with pytest.raises(ValueError, match="observation must be a tensor \\[S, O\\]"):
        marginal_kl(policy, policy, torch.randn(4, 2, 3))
    with pytest.raises(ValueError, match="num_samples must be an integer >= 4"):
        marginal_kl(policy, policy, observation, num_samples=3, k=3)
