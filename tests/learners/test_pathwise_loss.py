"""TruDiPathwiseLoss and REPPOLoss: the shared loss contract, and their own arguments."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from torchrl.objectives import ValueEstimators

from tests.learners.loss_contract import (
    ACT,
    OBS,
    LossContract,
    collect,
    make_diffusion_policy,
    make_gaussian_policy,
    with_advantage,
)
from trudi.constraints import TrajectoryKLProjection
from trudi.learners import HLGaussHead, QCritic, REPPOLoss, TruDiPathwiseLoss


def make_q_critic(seed: int = 1, next_embedding: bool = False) -> QCritic:
    torch.manual_seed(seed)
    return QCritic(
        OBS, ACT, HLGaussHead(-5.0, 5.0, num_bins=21), hidden_dim=16, next_embedding=next_embedding
    )


class PathwiseContract(LossContract):
    actor_loss_names = ("loss_objective",)
    value_estimator_type = ValueEstimators.TDLambda
    loss_kwargs: ClassVar[dict] = {}

    def make_critic(self, value_key="state_value", seed: int = 1):
        return make_q_critic(seed)

    def make_loss(self, policy, critic, **kwargs):
        kwargs.pop("functional", None)
        return TruDiPathwiseLoss(policy, critic, embedding_coeff=0.0, **self.loss_kwargs, **kwargs)


class TestSplitContract(PathwiseContract):
    loss_names = ("loss_objective", "loss_critic", "loss_temperature", "loss_lagrange")
    loss_kwargs: ClassVar[dict] = {"trust_region": "split"}


class TestTrajectoryProjectionContract(PathwiseContract):
    loss_names = ("loss_objective", "loss_critic", "loss_temperature", "loss_trust_region")
    actor_loss_names = ("loss_objective", "loss_trust_region")
    loss_kwargs: ClassVar[dict] = {"trust_region": "projection"}


class TestPerStepProjectionContract(TestTrajectoryProjectionContract):
    loss_kwargs: ClassVar[dict] = {
        "trust_region": "projection",
        "projection": TrajectoryKLProjection(0.01, 0.01, mode="per_step"),
    }


class TestREPPOContract(PathwiseContract):
    loss_names = ("loss_objective", "loss_critic", "loss_temperature", "loss_lagrange")

    @pytest.fixture
    def policy(self):
        return make_gaussian_policy()

    def make_loss(self, policy, critic, **kwargs):
        kwargs.pop("functional", None)
        return REPPOLoss(policy, critic, embedding_coeff=0.0, **kwargs)

    def test_agent_dim(self):
        policy = make_gaussian_policy()
        td = with_advantage(collect(policy, batch=(6, 3)))
        out = self.make_loss(policy, self.make_critic(), reduction="none")(td)
        assert out["loss_objective"].shape == (6, 3)


def test_next_embedding_loss_reaches_the_predictor():
    policy = make_diffusion_policy()
    critic = make_q_critic(next_embedding=True)
    out = TruDiPathwiseLoss(policy, critic)(collect(policy))
    grads = torch.autograd.grad(out["loss_critic"], list(critic.predictor.parameters()))
    assert all((g != 0).any() for g in grads)
    assert out["embedding_error"] > 0


def test_value_target_without_next_embedding_reruns_the_estimator():
    policy = make_diffusion_policy()
    loss = TruDiPathwiseLoss(policy, make_q_critic(next_embedding=True))
    out = loss(with_advantage(collect(policy)))
    assert torch.isfinite(out["loss_critic"])


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"trust_region": "clip"}, "trust_region"),
        ({"kl_bound": 0.0}, "kl_bound"),
        ({"projection": 0.1}, "projection"),
        ({"projection": TrajectoryKLProjection(0.1)}, "projection"),
        ({"init_temperature": 0.0}, "init_temperature"),
        ({"init_lagrange": -1.0}, "init_lagrange"),
        ({"reduction": "max"}, "reduction"),
        ({"embedding_coeff": 1.0}, "embedding_coeff"),
        ({"embedding_coeff": -1.0}, "embedding_coeff"),
    ],
)
def test_bad_arguments_raise(kwargs, argument):
    kwargs = {"embedding_coeff": 0.0, **kwargs}
    with pytest.raises(ValueError, match=argument):
        TruDiPathwiseLoss(make_diffusion_policy(), make_q_critic(), **kwargs)


def test_bad_networks_raise():
    with pytest.raises(ValueError, match="critic_network"):
        TruDiPathwiseLoss(make_diffusion_policy(), torch.nn.Linear(3, 1))
    with pytest.raises(ValueError, match="actor_network"):
        TruDiPathwiseLoss(torch.nn.Linear(3, 2), make_q_critic())
    with pytest.raises(ValueError, match="one-step"):
        REPPOLoss(make_diffusion_policy(), make_q_critic())


def test_sync_old_policy_copies_the_actor():
    policy = make_diffusion_policy()
    loss = TruDiPathwiseLoss(policy, make_q_critic(), trust_region="projection", embedding_coeff=0)
    with torch.no_grad():
        next(policy.parameters()).add_(1.0)
    old = next(loss.old_actor_network.parameters())
    assert not torch.equal(old, next(policy.parameters()))
    loss.sync_old_policy()
    assert torch.equal(old, next(policy.parameters()))
