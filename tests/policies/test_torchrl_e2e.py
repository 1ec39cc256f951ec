"""End to end with stock TorchRL: Collector over Pendulum, GAE, ClipPPOLoss, gradients."""

from __future__ import annotations

import pytest
import torch
from torchrl.collectors import Collector
from torchrl.envs import GymEnv
from torchrl.modules import MLP, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from trudi.policies import DenoiserMLP, DiffusionPolicy, GaussianPolicy
from trudi.samplers import AncestralSampler, CosineSchedule

pytest.importorskip("gymnasium")


def _diffusion_policy(env: GymEnv) -> DiffusionPolicy:
    denoiser = DenoiserMLP(
        observation_dim=3, action_dim=1, num_steps=4, hidden_dim=16, num_blocks=1, layer_norm=True
    )
    return DiffusionPolicy(
        denoiser,
        AncestralSampler(CosineSchedule(4), min_std=0.05),
        action_spec=env.action_spec,
        learn_scale=True,
        trajectory=True,
    )


def _gaussian_policy(env: GymEnv) -> GaussianPolicy:
    loc_net = MLP(in_features=3, out_features=1, num_cells=[16])
    return GaussianPolicy(loc_net, action_dim=1, action_spec=env.action_spec, trajectory=True)


@pytest.mark.parametrize("make_policy", [_diffusion_policy, _gaussian_policy])
def test_collector_gae_clip_ppo(make_policy):
    torch.manual_seed(0)
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    policy = make_policy(env)
    critic = ValueOperator(MLP(in_features=3, out_features=1, num_cells=[16]), ["observation"])
    collector = Collector(
        env, policy, frames_per_batch=12, total_frames=12, auto_register_policy_transforms=False
    )
    data = next(iter(collector))
    collector.shutdown()

    keys = policy.tensor_keys
    assert data[keys.chain].shape == (12, policy.num_steps + 1, 1)
    assert data[keys.log_prob].shape == (12,)
    assert not data[keys.chain].requires_grad

    GAE(gamma=0.99, lmbda=0.95, value_network=critic)(data)
    loss = ClipPPOLoss(policy, critic, entropy_coeff=0.01)
    # ClipPPOLoss picks its keys from policy.dist_sample_keys / log_prob_keys ...
    assert loss.tensor_keys.action == keys.chain
    assert loss.tensor_keys.sample_log_prob == keys.log_prob
    # ... which is the same as setting them by hand:
    loss.set_keys(action=keys.chain, sample_log_prob=keys.log_prob)
    before = data.clone()
    losses = loss(data)
    total = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
    total.backward()

    assert (data == before).all()
    network = policy.denoiser if isinstance(policy, DiffusionPolicy) else policy.loc_net
    for name, parameter in [*network.named_parameters(), *policy.named_parameters(recurse=False)]:
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
