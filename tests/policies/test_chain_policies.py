"""The contract every policy head meets (docs/design.md, "Keys and shapes"): keys, shapes,
re-scoring, no side effects."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type
from torch.distributions import Normal
from torchrl.data import Bounded

from trudi.policies import ChainKeys, ChainNormal, DenoiserMLP, DiffusionPolicy, GaussianPolicy
from trudi.samplers import AncestralSampler, BestOfKSampler, CosineSchedule, DDIMSampler

OBS, A = 4, 3
SPEC = Bounded(-2.0, 2.0, shape=(A,))


def _denoiser(steps: int, **kwargs) -> DenoiserMLP:
    return DenoiserMLP(OBS, A, steps, hidden_dim=16, num_blocks=2, **kwargs)


POLICIES = {
    "diffusion-ancestral": lambda: DiffusionPolicy(
        _denoiser(5), AncestralSampler(CosineSchedule(5)), action_spec=SPEC
    ),
    "diffusion-learned-scale-tanh": lambda: DiffusionPolicy(
        _denoiser(4, layer_norm=True),
        AncestralSampler(CosineSchedule(4), prediction="sample"),
        action_spec=SPEC,
        squash="tanh",
        learn_scale=True,
    ),
    "diffusion-ddim-best-of-eval": lambda: DiffusionPolicy(
        _denoiser(6),
        DDIMSampler(CosineSchedule(6), eta=0.8, min_std=0.05),
        BestOfKSampler(DDIMSampler(CosineSchedule(6), num_steps=3), num_candidates=4),
    ),
    "diffusion-per-agent": lambda: DiffusionPolicy(
        _denoiser(3, n_agents=2), AncestralSampler(CosineSchedule(3)), action_spec=SPEC
    ),
    "gaussian": lambda: GaussianPolicy(torch.nn.Linear(OBS, A), A, action_spec=SPEC),
    "gaussian-fixed-std": lambda: GaussianPolicy(
        torch.nn.Linear(OBS, A), A, init_std=0.5, learn_scale=False
    ),
}


@pytest.fixture(params=list(POLICIES))
def policy(request):
    torch.manual_seed(0)
    return POLICIES[request.param]()


def _collect(policy, batch_shape=(5, 2), mode=InteractionType.RANDOM) -> TensorDict:
    observation = torch.randn(*batch_shape, OBS)
    td = TensorDict({"observation": observation}, batch_size=batch_shape)
    with set_interaction_type(mode):
        return policy(td)


class TestChainPolicyContract:
    def test_writes_every_key_with_its_shape(self, policy):
        td = _collect(policy)
        keys, k = policy.tensor_keys, policy.num_steps
        assert set(policy.out_keys) <= set(td.keys(True, True))
        assert td[keys.action].shape == (5, 2, A)
        assert td[keys.chain].shape == (5, 2, k + 1, A)
        assert td[keys.loc].shape == td[keys.scale].shape == (5, 2, k, A)
        assert td[keys.chain_log_prob].shape == (5, 2, k)
        assert td[keys.log_prob].shape == (5, 2)
        assert not any(td[key].requires_grad for key in policy.out_keys)

    def test_action_is_squashed_last_sample(self, policy):
        td = _collect(policy)
        keys = policy.tensor_keys
        torch.testing.assert_close(td[keys.action], policy.squash(td[keys.chain][..., -1, :]))
        assert (td[keys.action].abs() <= policy.squash.high.abs().max()).all()

    def test_stored_log_prob_matches_torch_normal(self, policy):
        td = _collect(policy)
        keys = policy.tensor_keys
        normal = Normal(td[keys.loc], td[keys.scale])
        expected = normal.log_prob(td[keys.chain][..., 1:, :]).sum(-1)
        torch.testing.assert_close(td[keys.chain_log_prob], expected)
        torch.testing.assert_close(td[keys.log_prob], expected.sum(-1))

    def test_get_dist_reproduces_behaviour_and_leaves_td_unchanged(self, policy):
        td = _collect(policy)
        keys = policy.tensor_keys
        before = td.clone()
        dist = policy.get_dist(td)
        assert isinstance(dist, ChainNormal)
        torch.testing.assert_close(dist.loc, td[keys.loc])
        torch.testing.assert_close(dist.scale, td[keys.scale])
        torch.testing.assert_close(dist.log_prob(td[keys.chain]), td[keys.chain_log_prob])
        assert dist.entropy().shape == (5, 2, policy.num_steps)
        assert set(td.keys(True, True)) == set(before.keys(True, True))
        assert (td == before).all()

    def test_gradients_reach_every_parameter(self, policy):
        td = _collect(policy)
        dist = policy.get_dist(td)
        (dist.log_prob(td[policy.tensor_keys.chain]).sum() + dist.entropy().sum()).backward()
        for name, parameter in policy.named_parameters():
            assert parameter.grad is not None, name
            assert parameter.grad.abs().sum() > 0, name

    def test_deterministic_mode_is_deterministic(self, policy):
        if isinstance(policy, DiffusionPolicy) and isinstance(policy.eval_sampler, BestOfKSampler):
            pytest.skip("best-of-K draws random candidates by design")
        torch.manual_seed(1)
        first = _collect(policy, mode=InteractionType.DETERMINISTIC)
        second = first.select("observation").clone()
        with set_interaction_type(InteractionType.MODE):
            second = policy(second)
        key = policy.tensor_keys.action
        torch.testing.assert_close(first[key], second[key])
        assert torch.isfinite(first[policy.tensor_keys.chain_log_prob]).all()

    def test_trajectory_mode_and_torchrl_key_discovery(self, policy):
        td = _collect(policy)
        keys = policy.tensor_keys
        assert policy.dist_sample_keys == [keys.chain]
        assert policy.log_prob_keys == [keys.chain_log_prob]
        policy.trajectory = True
        assert policy.log_prob_keys == [keys.log_prob]
        torch.testing.assert_close(policy.get_dist(td).log_prob(td[keys.chain]), td[keys.log_prob])

    def test_set_keys_renames_inputs_and_outputs(self, policy):
        policy.set_keys(observation=("agents", "obs"), chain=("agents", "chain"))
        assert policy.in_keys == [("agents", "obs")]
        assert ("agents", "chain") in policy.out_keys
        td = TensorDict({("agents", "obs"): torch.randn(3, 2, OBS)}, batch_size=[3])
        with set_interaction_type(InteractionType.RANDOM):
            policy(td)
        assert td["agents", "chain"].shape == (3, 2, policy.num_steps + 1, A)
        policy.get_dist(td)
        with pytest.raises(ValueError, match="unknown key name"):
            policy.set_keys(actions="a")

    def test_prefixed_keys_nest_every_key(self, policy):
        policy.set_keys(policy.tensor_keys.prefixed("agents"))
        assert policy.in_keys == [("agents", "observation")]
        assert policy.tensor_keys.chain == ("agents", "diffusion", "chain")
        assert policy.tensor_keys.action == ("agents", "action")
        td = TensorDict({("agents", "observation"): torch.randn(3, 2, OBS)}, batch_size=[3])
        with set_interaction_type(InteractionType.RANDOM):
            policy(td)
        assert td["agents", "diffusion", "chain_log_prob"].shape == (3, 2, policy.num_steps)
        only = ChainKeys().prefixed(("team", "a"), "chain")
        assert only.chain == ("team", "a", "diffusion", "chain") and only.loc == (
            "diffusion",
            "loc",
        )
        with pytest.raises(ValueError, match="unknown key names"):
            ChainKeys().prefixed("agents", "actions")

    def test_get_dist_rejects_a_chain_of_the_wrong_shape(self, policy):
        td = _collect(policy)
        td[policy.tensor_keys.chain] = td[policy.tensor_keys.chain][..., 1:, :]
        with pytest.raises(ValueError, match="chain"):
            policy.get_dist(td)

    def test_missing_observation_fails_loudly(self, policy):
        with pytest.raises(KeyError, match="observation"):
            policy(TensorDict({}, batch_size=[2]))


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: DiffusionPolicy(
            _denoiser(3), AncestralSampler(CosineSchedule(3)), learn_scale=True, **kw
        ),
        lambda **kw: GaussianPolicy(torch.nn.Linear(OBS, A), A, init_std=0.05, **kw),
    ],
    ids=["diffusion", "gaussian"],
)
@pytest.mark.parametrize(("min_std", "max_std"), [(0.0, 1.0), (0.5, 0.1)])
def test_every_head_checks_its_std_range(make, min_std, max_std):
    with pytest.raises(ValueError, match="0 < min_std <= max_std"):
        make(min_std=min_std, max_std=max_std)
