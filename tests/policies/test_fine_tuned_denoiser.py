"""FineTunedDenoiser: the last n steps follow the trainable denoiser, the earlier ones a frozen copy."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from trudi.policies import DenoiserMLP, DiffusionPolicy, FineTunedDenoiser
from trudi.samplers import AncestralSampler, CosineSchedule, DDIMSampler

OBS, ACT, K, FT = 3, 2, 5, 2


def make(ft: int = FT, n_agents: int | None = None) -> tuple[DiffusionPolicy, FineTunedDenoiser]:
    torch.manual_seed(0)
    sampler = AncestralSampler(CosineSchedule(K), min_std=0.1)
    net = DenoiserMLP(OBS, ACT, K, hidden_dim=16, num_blocks=1, n_agents=n_agents)
    denoiser = FineTunedDenoiser(net, sampler, ft)
    return DiffusionPolicy(denoiser, sampler), denoiser


def train_a_little(denoiser: FineTunedDenoiser) -> None:
    with torch.no_grad():
        for p in denoiser.denoiser.parameters():
            p.add_(0.1)


def test_equals_the_wrapped_denoiser_until_it_is_trained():
    _, denoiser = make()
    obs, sample = torch.randn(4, OBS), torch.randn(4, ACT)
    for t in range(K + 1):
        timestep = torch.tensor(t)
        expected = denoiser.denoiser(obs, sample, timestep)
        torch.testing.assert_close(denoiser(obs, sample, timestep), expected)


def test_only_the_last_steps_change_after_training():
    policy, denoiser = make()
    obs = torch.randn(6, OBS)
    noise = torch.randn(6, K + 1, ACT)
    with torch.no_grad():
        before = policy.rsample(obs, noise)
        train_a_little(denoiser)
        after = policy.rsample(obs, noise)
    frozen = K - FT
    torch.testing.assert_close(after.loc[:, :frozen], before.loc[:, :frozen])
    assert not torch.allclose(after.loc[:, frozen:], before.loc[:, frozen:])
    # Teacher forcing (all K steps in one call) routes each step as sampling does.
    td = TensorDict({"observation": obs, "diffusion": {"chain": after.chain}}, [6])
    with torch.no_grad():
        dist = policy.get_dist(td)
    torch.testing.assert_close(dist.loc, after.loc)


def test_gradients_reach_only_the_trainable_copy_through_fine_tuned_steps():
    _, denoiser = make()
    obs, sample = torch.randn(4, OBS), torch.randn(4, ACT)
    denoiser(obs, sample, torch.tensor(K)).sum().backward()  # the first, frozen step
    assert all(p.grad is None or (p.grad == 0).all() for p in denoiser.denoiser.parameters())
    denoiser(obs, sample, torch.tensor(1)).sum().backward()  # the last, fine-tuned step
    assert any(p.grad is not None and (p.grad != 0).any() for p in denoiser.denoiser.parameters())
    assert all(p.grad is None for p in denoiser.frozen.parameters())


def test_evaluation_sampler_and_agents():
    policy, denoiser = make(n_agents=3)
    eval_sampler = DDIMSampler(CosineSchedule(K), eta=0.0, num_steps=3)
    obs = torch.randn(4, 3, OBS)
    chain = eval_sampler.sample_chain(
        lambda x, t: denoiser(obs, x, t), torch.zeros(4, 3, ACT)
    ).chain
    assert chain.shape == (4, 3, 4, ACT)
    td = policy(TensorDict({"observation": obs}, [4, 3]))
    assert policy.get_dist(td).loc.shape == (4, 3, K, ACT)


def test_state_dict_round_trip():
    _, denoiser = make()
    train_a_little(denoiser)
    _, other = make()
    other.load_state_dict(denoiser.state_dict())
    obs, sample = torch.randn(4, OBS), torch.randn(4, ACT)
    for t in (1, K):
        torch.testing.assert_close(
            other(obs, sample, torch.tensor(t)), denoiser(obs, sample, torch.tensor(t))
        )


def test_arguments():
    net = DenoiserMLP(OBS, ACT, K, hidden_dim=8)
    sampler = AncestralSampler(CosineSchedule(K))
    for ft in (0, K + 1, 1.0):
        with pytest.raises(ValueError, match="ft_denoising_steps"):
            FineTunedDenoiser(net, sampler, ft)
    with pytest.raises(ValueError, match="sampler"):
        FineTunedDenoiser(net, CosineSchedule(K), 2)
