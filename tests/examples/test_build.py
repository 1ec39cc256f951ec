"""The example's builders: DPPO's published settings reach the policy, the loss and the optimizer."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("gymnasium")
pytest.importorskip("hydra")

from examples.build import build_critic, build_loss, build_optimizer, build_policy
from examples.envs import make_env
from tests.examples.helpers import config
from trudi.learners import DPPOLoss
from trudi.policies import FineTunedDenoiser


@pytest.fixture(scope="module")
def env():
    env = make_env("Pendulum-v1", 2, seed=0)
    yield env
    env.close()


def build(env, *overrides):
    cfg = config(*overrides)
    policy, critic = build_policy(cfg, env), build_critic(cfg, env)
    loss = build_loss(cfg, policy, critic)
    return cfg, policy, critic, loss


def test_dppo_defaults_are_the_published_variant(env):
    _, policy, _, loss = build(env, "algo=dppo")
    assert isinstance(loss, DPPOLoss) and loss.ratio == "clamped_mean"
    assert loss.log_prob_clamp == (-5.0, 2.0)
    assert policy.num_steps == 10 and loss.ft_denoising_steps == 10
    assert not isinstance(policy.denoiser, FineTunedDenoiser)
    assert policy.log_scale is None  # DDPM's fixed variance
    torch.testing.assert_close(loss.clip_epsilon, torch.full((10,), 0.1))
    torch.testing.assert_close(loss.step_discount, torch.ones(10))


def test_dppo_fine_tunes_only_the_last_steps(env):
    overrides = ("algo=dppo", "algo.ft_denoising_steps=4", "algo.clip_epsilon_first=0.01")
    overrides += ("algo.denoising_discount=0.99", "algo.ratio=joint")
    _, policy, _, loss = build(env, *overrides)
    assert isinstance(policy.denoiser, FineTunedDenoiser)
    assert policy.denoiser.ft_denoising_steps == loss.ft_denoising_steps == 4
    assert loss.ratio == "joint"
    assert loss.clip_epsilon[0] == pytest.approx(0.01) and loss.clip_epsilon[-1] == pytest.approx(
        0.1
    )
    torch.testing.assert_close(loss.step_discount, 0.99 ** torch.arange(3.0, -1.0, -1.0))


def test_critic_lr_gives_the_critic_its_own_group(env):
    cfg, _, critic, loss = build(env, "algo=dppo")
    optimizer = build_optimizer(cfg, loss, critic)
    actor_group, critic_group = optimizer.param_groups
    assert (actor_group["lr"], critic_group["lr"]) == (1e-4, 1e-3)
    assert {id(p) for p in critic_group["params"]} == {id(p) for p in critic.parameters()}
    cfg, _, critic, loss = build(env, "algo=trudi")
    (group,) = build_optimizer(cfg, loss, critic).param_groups
    assert group["lr"] == cfg.lr and len(group["params"]) == len(list(loss.parameters()))
