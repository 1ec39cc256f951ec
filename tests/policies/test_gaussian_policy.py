"""GaussianPolicy specifics: the K = 1 chain layout."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type
from torch.distributions import Normal

from trudi.policies import GaussianPolicy

OBS, A = 3, 2


def _policy(**kwargs) -> GaussianPolicy:
    torch.manual_seed(0)
    return GaussianPolicy(torch.nn.Linear(OBS, A), A, squash="none", **kwargs)


def test_chain_layout_and_log_prob():
    policy = _policy(init_std=0.7)
    td = TensorDict({"observation": torch.randn(5, OBS)}, batch_size=[5])
    with set_interaction_type(InteractionType.RANDOM):
        policy(td)
    chain = td["diffusion", "chain"]
    assert (chain[:, 0] == 0).all()
    torch.testing.assert_close(td["action"], chain[:, 1])
    mean = policy.loc_net(td["observation"]).detach()
    torch.testing.assert_close(td["diffusion", "loc"][:, 0], mean)
    expected = Normal(mean, 0.7).log_prob(chain[:, 1]).sum(-1, keepdim=True)
    torch.testing.assert_close(td["diffusion", "chain_log_prob"], expected)


def test_loc_does_not_depend_on_the_placeholder():
    policy = _policy()
    td = TensorDict({"observation": torch.randn(5, OBS)}, batch_size=[5])
    with set_interaction_type(InteractionType.RANDOM):
        policy(td)
    moved = td.clone()
    moved["diffusion", "chain"][:, 0] = 5.0
    torch.testing.assert_close(policy.get_dist(moved).loc, policy.get_dist(td).loc)


def test_deterministic_action_is_the_mean():
    policy = _policy()
    td = TensorDict({"observation": torch.randn(5, OBS)}, batch_size=[5])
    with set_interaction_type(InteractionType.DETERMINISTIC):
        policy(td)
    torch.testing.assert_close(td["action"], policy.loc_net(td["observation"]).detach())


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"min_std": 0.0}, "min_std"),
        ({"min_std": 1.0, "max_std": 0.5}, "max_std"),
        ({"init_std": 100.0}, "init_std"),
    ],
)
def test_bad_arguments_raise(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        _policy(**kwargs)


def test_bad_action_dim_raises():
    with pytest.raises(ValueError, match="action_dim"):
        GaussianPolicy(torch.nn.Linear(OBS, A), 0)
