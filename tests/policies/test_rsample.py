"""Reparameterised chains: rsample with a recorded chain's noise reproduces it, through any sampler,
and gradients reach every parameter."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type

from trudi.policies import DenoiserMLP, DiffusionPolicy, GaussianPolicy
from trudi.samplers import (
    AncestralSampler,
    CosineSchedule,
    DDIMSampler,
    EulerMaruyamaSampler,
    ProbabilityFlowSampler,
)

OBS, ACT = 3, 2


def diffusion(sampler, **kwargs):
    torch.manual_seed(0)
    denoiser = DenoiserMLP(OBS, ACT, 6, hidden_dim=16, num_blocks=1)
    return DiffusionPolicy(denoiser, sampler, **kwargs)


POLICIES = {
    "euler-maruyama": lambda: diffusion(EulerMaruyamaSampler(6, learn_prior_std=True)),
    "ancestral-learned-scale": lambda: diffusion(
        AncestralSampler(CosineSchedule(6), min_std=0.05), learn_scale=True
    ),
    "ddim": lambda: diffusion(DDIMSampler(CosineSchedule(6), eta=0.5, num_steps=3, min_std=0.1)),
    "gaussian": lambda: GaussianPolicy(torch.nn.Linear(OBS, ACT), action_dim=ACT, squash="tanh"),
}


@pytest.fixture(params=list(POLICIES))
def policy(request):
    return POLICIES[request.param]()


def recorded(policy, batch=(5,)):
    td = TensorDict({"observation": torch.randn(*batch, OBS)}, batch)
    with set_interaction_type(InteractionType.RANDOM):
        return policy(td)


def test_recorded_noise_reproduces_the_chain(policy):
    td = recorded(policy, batch=(4, 3))
    chain, loc, scale = (td["diffusion", k] for k in ("chain", "loc", "scale"))
    again = policy.rsample(td["observation"], policy.chain_noise(chain, loc, scale))
    torch.testing.assert_close(again.chain, chain)
    torch.testing.assert_close(again.loc, loc)
    torch.testing.assert_close(again.scale, scale)


def test_gradients_reach_every_parameter(policy):
    out = policy.rsample(torch.randn(7, OBS))
    policy.squash(out.chain[..., -1, :]).sum().backward()
    missing = [n for n, p in policy.named_parameters() if p.grad is None or not p.grad.any()]
    # Only the timestep embeddings of steps this chain never visits stay untouched.
    assert all("step_embedding" in n for n in missing)


def test_noise_shape_is_checked(policy):
    with pytest.raises(ValueError, match="noise"):
        policy.rsample(torch.randn(5, OBS), torch.randn(5, policy.num_steps, ACT))


def test_transform_sees_every_step(policy):
    seen = []

    def transform(step, sample, loc, scale):
        seen.append(step)
        return loc, scale

    policy.rsample(torch.randn(2, OBS), transform=transform)
    assert seen == list(range(policy.num_steps))


def test_euler_maruyama_policy_deploys_with_its_ode():
    policy = POLICIES["euler-maruyama"]()
    assert isinstance(policy.eval_sampler, ProbabilityFlowSampler)
    assert policy.eval_sampler.sde is policy.sampler
