"""Soft λ-returns on a hand-computed 3-step rollout, and the entropy bonus in the next value."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from trudi.learners import HLGaussHead, QCritic, QOutput, SoftLambdaReturn
from trudi.policies import GaussianPolicy, pseudo_log_prob


class TableCritic(QCritic):
    """Q(s, a) = s[..., 0]: the next values are written into the next observations."""

    def forward(self, observation, action):
        return QOutput(observation[..., :1], observation, observation, None)


def make_estimator(temperature: float = 0.0) -> SoftLambdaReturn:
    torch.manual_seed(0)
    policy = GaussianPolicy(torch.nn.Linear(2, 1), action_dim=1, squash="tanh")
    critic = TableCritic(2, 1, HLGaussHead(-1.0, 1.0), hidden_dim=4)
    return SoftLambdaReturn(0.9, 0.5, policy, critic, temperature=temperature)


def rollout(done, terminated) -> TensorDict:
    next_values = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1)
    return TensorDict(
        {
            "observation": torch.zeros(1, 3, 2),
            "next": {
                "observation": torch.cat([next_values, torch.zeros(1, 3, 1)], -1),
                "reward": torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1),
                "done": torch.tensor(done).view(1, 3, 1),
                "terminated": torch.tensor(terminated).view(1, 3, 1),
            },
        },
        [1, 3],
    )


@pytest.mark.parametrize(
    ("done", "terminated", "expected"),
    [
        # γ = 0.9, λ = 0.5, r = (1, 2, 3), V' = (10, 20, 30). Truncated at t = 1:
        #   G2 = 3 + 0.9·30 = 30 (end of rollout: bootstrap), G1 = 2 + 0.9·20 = 20 (truncation:
        #   bootstrap), G0 = 1 + 0.9·(0.5·10 + 0.5·20) = 14.5.
        ([False, True, False], [False, False, False], [14.5, 20.0, 30.0]),
        # Terminated at t = 1: G1 = 2, G0 = 1 + 0.9·(0.5·10 + 0.5·2) = 6.4.
        ([False, True, False], [False, True, False], [6.4, 2.0, 30.0]),
        # No episode end: G1 = 2 + 0.9·(0.5·20 + 0.5·30) = 24.5, G0 = 1 + 0.9·(5 + 12.25) = 16.525.
        ([False, False, False], [False, False, False], [16.525, 24.5, 30.0]),
    ],
)
def test_three_steps_by_hand(done, terminated, expected):
    td = make_estimator()(rollout(done, terminated))
    torch.testing.assert_close(td["value_target"].flatten(), torch.tensor(expected))


def test_agent_dim_after_time_is_not_taken_as_time():
    """Multi-agent data ``[*B, T, n_agents, ·]`` under a ``[*B, T]`` tensordict: every agent's
    targets are its own 3-step rollout's (here the same rollout for both agents)."""
    single = rollout([False, True, False], [False, True, False])
    agents = TensorDict(
        {
            "observation": single["observation"].unsqueeze(-2).expand(1, 3, 2, 2),
            "next": {
                k: single["next", k].unsqueeze(-2).expand(1, 3, 2, 1).clone()
                for k in ("reward", "done", "terminated")
            }
            | {"observation": single["next", "observation"].unsqueeze(-2).expand(1, 3, 2, 2)},
        },
        [1, 3],
    )
    estimator = make_estimator()
    estimator.set_keys(
        observation="agent_obs", reward="agent_reward", done="agent_done", terminated="agent_term"
    )
    td = TensorDict(
        {
            "agent_obs": agents["observation"],
            "next": {
                "agent_obs": agents["next", "observation"],
                "agent_reward": agents["next", "reward"],
                "agent_done": agents["next", "done"],
                "agent_term": agents["next", "terminated"],
            },
        },
        [1, 3],
    )
    target = estimator(td)["value_target"]
    assert target.shape == (1, 3, 2, 1)
    for agent in range(2):
        torch.testing.assert_close(target[0, :, agent, 0], torch.tensor([6.4, 2.0, 30.0]))


def test_next_value_carries_the_entropy_bonus():
    estimator = make_estimator(temperature=0.3)
    observation = torch.randn(5, 2)
    torch.manual_seed(7)
    soft_value, _ = estimator.soft_value(observation)
    torch.manual_seed(7)
    policy = estimator.actor_network
    log_prob = pseudo_log_prob(policy, *policy.rsample(observation)).unsqueeze(-1)
    torch.testing.assert_close(soft_value, observation[..., :1] - 0.3 * log_prob)


def test_missing_key_is_named():
    td = rollout([False] * 3, [False] * 3)
    del td["next", "terminated"]
    with pytest.raises(KeyError, match="terminated"):
        make_estimator()(td)


@pytest.mark.parametrize(("gamma", "lmbda", "argument"), [(1.5, 0.5, "gamma"), (0.9, -1, "lmbda")])
def test_bad_arguments_raise(gamma, lmbda, argument):
    policy = GaussianPolicy(torch.nn.Linear(2, 1), action_dim=1)
    critic = QCritic(2, 1, HLGaussHead(-1.0, 1.0), hidden_dim=4)
    with pytest.raises(ValueError, match=argument):
        SoftLambdaReturn(gamma, lmbda, policy, critic)
