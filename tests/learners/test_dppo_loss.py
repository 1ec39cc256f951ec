"""DPPOLoss: the shared loss contract and the per-step clipped objective."""

from __future__ import annotations

import itertools

import pytest
import torch

from tests.learners.loss_contract import (
    LossContract,
    collect,
    make_critic,
    make_diffusion_policy,
    with_advantage,
)
from trudi.learners import DPPOLoss, exponential_clip_schedule


class TestDPPOLoss(LossContract):
    loss_names = ("loss_objective", "loss_critic", "loss_entropy")
    actor_loss_names = ("loss_objective", "loss_entropy")

    def make_loss(self, policy, critic, **kwargs):
        return DPPOLoss(policy, critic, **kwargs)


def test_objective_is_mean_of_per_step_clipped_surrogates():
    policy = make_diffusion_policy()
    td = with_advantage(collect(policy))
    schedule = exponential_clip_schedule(0.05, 0.2, 3)
    loss = DPPOLoss(policy, make_critic(), clip_epsilon=schedule, denoising_discount=0.5)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05)
    out = loss(td)
    dist = policy.get_dist(td)
    log_prob = (
        torch.distributions.Normal(dist.loc, dist.scale)
        .log_prob(td["diffusion", "chain"][:, 1:])
        .sum(-1)
    )
    ratio = (log_prob - td["diffusion", "chain_log_prob"]).exp()
    eps = torch.tensor(schedule)
    advantage = td["advantage"] * torch.tensor([0.25, 0.5, 1.0])
    surrogate = torch.minimum(ratio * advantage, ratio.clamp(1 - eps, 1 + eps) * advantage)
    torch.testing.assert_close(out["loss_objective"], -surrogate.mean())
    assert 0 < out["clip_fraction"] < 1


def test_schedule_and_arguments():
    schedule = exponential_clip_schedule(0.01, 0.1, 5)
    assert schedule[0] == pytest.approx(0.01) and schedule[-1] == pytest.approx(0.1)
    assert all(a < b for a, b in itertools.pairwise(schedule))
    policy = make_diffusion_policy()
    with pytest.raises(ValueError, match="clip_epsilon"):
        DPPOLoss(policy, make_critic(), clip_epsilon=[0.1, 0.2])
    with pytest.raises(ValueError, match="clip_epsilon"):
        DPPOLoss(policy, make_critic(), clip_epsilon=-0.1)
    with pytest.raises(ValueError, match="denoising_discount"):
        DPPOLoss(policy, make_critic(), denoising_discount=0.0)
