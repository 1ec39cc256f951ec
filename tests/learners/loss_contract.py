"""The contract every chain loss passes: keys, gradient isolation, reductions, no side effects."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, TensorDictModule, set_interaction_type
from torchrl.objectives import ValueEstimators

from trudi.policies import DenoiserMLP, DiffusionPolicy, GaussianPolicy
from trudi.samplers import AncestralSampler, CosineSchedule

OBS, ACT, STEPS = 3, 2, 3


def make_diffusion_policy(num_steps: int = STEPS, seed: int = 0) -> DiffusionPolicy:
    torch.manual_seed(seed)
    denoiser = DenoiserMLP(OBS, ACT, num_steps, hidden_dim=16, num_blocks=1)
    return DiffusionPolicy(
        denoiser, AncestralSampler(CosineSchedule(num_steps), min_std=0.05), learn_scale=True
    )


def make_gaussian_policy(seed: int = 0) -> GaussianPolicy:
    torch.manual_seed(seed)
    return GaussianPolicy(torch.nn.Linear(OBS, ACT), action_dim=ACT)


def make_critic(value_key="state_value", seed: int = 1) -> TensorDictModule:
    torch.manual_seed(seed)
    return TensorDictModule(torch.nn.Linear(OBS, 1), ["observation"], [value_key])


def collect(policy, batch=(16,), seed: int = 2) -> TensorDict:
    """A batch with recorded chains, a reward and done flags (no advantage yet)."""
    g = torch.Generator().manual_seed(seed)
    td = TensorDict({"observation": torch.randn(*batch, OBS, generator=g)}, batch_size=batch)
    with set_interaction_type(InteractionType.RANDOM), torch.no_grad():
        td = policy(td)
    td["next"] = TensorDict(
        {
            "observation": torch.randn(*batch, OBS, generator=g),
            "reward": torch.randn(*batch, 1, generator=g),
            "done": torch.zeros(*batch, 1, dtype=torch.bool),
            "terminated": torch.zeros(*batch, 1, dtype=torch.bool),
        },
        batch_size=batch,
    )
    return td


def with_advantage(td: TensorDict, seed: int = 3) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    td = td.clone()
    td["advantage"] = torch.randn(*td.batch_size, 1, generator=g)
    td["value_target"] = torch.randn(*td.batch_size, 1, generator=g)
    return td


class LossContract:
    """Subclasses implement ``make_loss(policy, critic, **kwargs)`` and list ``loss_names``.

    A loss with another kind of critic (Q(s, a)) or value estimator overrides ``make_critic`` and
    ``value_estimator_type``; one that reads other stored behaviour keys lists them in
    ``required_keys`` (each one missing must fail with its name).
    """

    loss_names: tuple[str, ...]
    actor_loss_names: tuple[str, ...]
    value_estimator_type = ValueEstimators.GAE
    required_keys: ClassVar[tuple[str, ...]] = ("chain_log_prob",)

    def make_loss(self, policy, critic, **kwargs):
        raise NotImplementedError

    def make_critic(self, value_key="state_value", seed: int = 1):
        return make_critic(value_key, seed=seed)

    @pytest.fixture(params=["diffusion", "gaussian"])
    def policy(self, request):
        return make_diffusion_policy() if request.param == "diffusion" else make_gaussian_policy()

    def test_out_keys_and_in_keys(self, policy):
        loss = self.make_loss(policy, self.make_critic())
        out = loss(with_advantage(collect(policy)))
        assert set(self.loss_names) <= set(out.keys())
        assert set(loss.out_keys) <= set(out.keys())
        keys = loss.tensor_keys
        assert {keys.chain, keys.loc, keys.scale, keys.chain_log_prob} <= set(loss.in_keys)

    def test_renamed_keys_reach_value_estimator(self, policy):
        loss = self.make_loss(policy, self.make_critic("my_value"))
        loss.set_keys(value="my_value", reward="my_reward", advantage="my_advantage")
        loss.make_value_estimator(self.value_estimator_type, gamma=0.9, lmbda=0.9)
        td = collect(policy)
        td["next", "my_reward"] = td["next"].pop("reward")
        out = loss(td)
        assert torch.isfinite(out["loss_objective"])
        assert loss.value_estimator.tensor_keys.value == "my_value"
        assert loss.value_estimator.tensor_keys.reward == "my_reward"
        assert "my_advantage" not in td.keys()

    def test_gradient_isolation(self, policy):
        critic = self.make_critic()
        loss = self.make_loss(policy, critic, functional=False)
        out = loss(with_advantage(collect(policy)))
        actor_params = list(policy.parameters())
        critic_params = list(critic.parameters())
        actor_loss = sum(out[name] for name in self.actor_loss_names)
        grads = torch.autograd.grad(actor_loss, actor_params + critic_params, allow_unused=True)
        assert all(g is None or (g == 0).all() for g in grads[len(actor_params) :])
        assert any(g is not None and (g != 0).any() for g in grads[: len(actor_params)])
        grads = torch.autograd.grad(
            out["loss_critic"], actor_params + critic_params, allow_unused=True
        )
        assert all(g is None or (g == 0).all() for g in grads[: len(actor_params)])
        assert all(g is not None for g in grads[len(actor_params) :])

    @pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
    def test_reduction_shapes(self, policy, reduction):
        td = with_advantage(collect(policy, batch=(4, 5)))
        out = self.make_loss(policy, self.make_critic(), reduction=reduction)(td)
        for name in self.loss_names:
            expected = (4, 5) if reduction == "none" else ()
            assert out[name].shape == expected, name
        if reduction == "sum":
            mean = self.make_loss(policy, self.make_critic(), reduction="mean")(td)
            torch.testing.assert_close(out["loss_objective"], mean["loss_objective"] * 20)

    def test_input_tensordict_unchanged(self, policy):
        td = with_advantage(collect(policy))
        before = td.clone()
        self.make_loss(policy, self.make_critic())(td)
        assert set(td.keys(True, True)) == set(before.keys(True, True))
        assert (td == before).all()

    def test_advantage_from_value_estimator_when_missing(self, policy):
        loss = self.make_loss(policy, self.make_critic())
        td = collect(policy)
        out = loss(td)
        assert torch.isfinite(out["loss_objective"]) and "advantage" not in td.keys()

    def test_agent_dim(self):
        policy = make_diffusion_policy()
        td = with_advantage(collect(policy, batch=(6, 3)))  # [B, n_agents]
        out = self.make_loss(policy, self.make_critic(), reduction="none")(td)
        assert out["loss_objective"].shape == (6, 3)

    def test_state_dict_round_trip(self, policy):
        td = with_advantage(collect(policy))
        loss = self.make_loss(policy, self.make_critic())
        other_policy = (
            make_diffusion_policy(seed=5)
            if isinstance(policy, DiffusionPolicy)
            else make_gaussian_policy(seed=5)
        )
        other = self.make_loss(other_policy, self.make_critic(seed=6))
        assert not torch.allclose(loss(td)["loss_objective"], other(td)["loss_objective"])
        other.load_state_dict(loss.state_dict())
        for name in self.loss_names:
            torch.testing.assert_close(loss(td)[name], other(td)[name])

    def test_missing_key_is_named(self, policy):
        for name in self.required_keys:
            td = with_advantage(collect(policy))
            del td["diffusion", name]
            with pytest.raises(KeyError, match=name):
                self.make_loss(policy, self.make_critic())(td)
