"""The Euler–Maruyama sampler's own properties: its math, its ODE, its learned parameters."""

from __future__ import annotations

import math

import pytest
import torch

from trudi.samplers import EulerMaruyamaSampler, ProbabilityFlowSampler


def test_transition_formula_by_hand():
    sampler = EulerMaruyamaSampler(2, prior_std=2.0, friction=0.5, horizon=1.0)
    # Cosine grid t_k = 1 − cos(π k / 4): step 0 goes from t_2 = 1 to t_1 = 1 − cos(π/4).
    dt0 = math.cos(math.pi / 4)
    assert sampler.dt[0].item() == pytest.approx(dt0, rel=1e-6)
    g = 0.5 * dt0
    x, d = torch.tensor([[0.3, -1.0]]), torch.tensor([[0.5, 0.2]])
    loc, scale = sampler.transition(d, 0, x)
    torch.testing.assert_close(loc, x + g * (2 * 2.0 * d - x))
    torch.testing.assert_close(scale, torch.full_like(x, 2.0 * math.sqrt(2 * g)))
    ode_loc, ode_scale = sampler.probability_flow().transition(d, 0, x)
    torch.testing.assert_close(ode_loc, x + g * 2.0 * d)
    assert (ode_scale == 0).all()


def test_zero_score_residual_keeps_the_prior():
    """With d = 0 the chain is the reference OU process itself: the law stays near N(0, σ_p²)."""
    sampler = EulerMaruyamaSampler(8, prior_std=2.5)
    generator = torch.Generator().manual_seed(0)
    prior = torch.randn(40_000, 1, generator=generator)
    chain = sampler.sample_chain(lambda x, t: torch.zeros_like(x), prior, generator=generator)
    assert chain.chain[:, 0].std().item() == pytest.approx(2.5, rel=0.02)
    # Euler–Maruyama inflates the stationary variance by 1/(1 − g/2) per step at most.
    assert chain.chain[:, -1].std().item() == pytest.approx(2.5, rel=0.1)


def test_ode_is_deterministic_and_shares_the_parameters():
    sampler = EulerMaruyamaSampler(4, learn_prior_std=True)
    ode = sampler.probability_flow()
    assert isinstance(ode, ProbabilityFlowSampler) and ode.sde is sampler
    with torch.no_grad():
        sampler.raw_friction.add_(0.3)
    prior = torch.randn(3, 2)
    first = ode.sample_chain(lambda x, t: torch.tanh(x), prior).chain
    again = ode.sample_chain(lambda x, t: torch.tanh(x), prior).chain
    assert torch.equal(first, again)
    assert {n for n, _ in ode.named_parameters()} == {"sde.raw_friction", "sde.log_prior_std"}


def test_learned_parameters_get_gradients():
    sampler = EulerMaruyamaSampler(3, learn_prior_std=True)
    out = sampler.sample_chain(lambda x, t: 0.1 * x, torch.randn(5, 2))
    out.chain[..., -1, :].square().sum().backward()
    assert sampler.raw_friction.grad is not None and (sampler.raw_friction.grad != 0).all()
    assert sampler.log_prior_std.grad is not None and sampler.log_prior_std.grad != 0


def test_reference_kernels_and_prior_by_hand():
    sampler = EulerMaruyamaSampler(1, prior_std=1.5, friction=2.0)
    g = 2.0 * sampler.dt[0].item()
    chain = torch.tensor([[[0.4], [-0.2]]])  # x_1 (noisy), x_0
    std = 1.5 * math.sqrt(2 * g)
    expected = -0.5 * ((0.4 - (1 - g) * -0.2) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))
    assert sampler.reference_log_prob(chain).item() == pytest.approx(expected, rel=1e-5)
    prior = -0.5 * (0.4 / 1.5) ** 2 - math.log(1.5 * math.sqrt(2 * math.pi))
    assert sampler.prior_log_prob(chain[:, 0]).item() == pytest.approx(prior, rel=1e-5)


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: EulerMaruyamaSampler(0), "num_steps"),
        (lambda: EulerMaruyamaSampler(4, prior_std=0.0), "prior_std"),
        (lambda: EulerMaruyamaSampler(4, friction=-1.0), "friction"),
        (lambda: EulerMaruyamaSampler(4, horizon=0.0), "horizon"),
        (lambda: EulerMaruyamaSampler(4, min_std=-1.0), "min_std"),
        (lambda: EulerMaruyamaSampler(4).probability_flow(min_std=-1.0), "min_std"),
        (lambda: ProbabilityFlowSampler(torch.nn.Linear(2, 2)), "sde"),
    ],
)
def test_bad_arguments_raise(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()
