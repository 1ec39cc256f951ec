"""DiffusionPolicy specifics: one denoiser call per re-scoring, eval sampler, agents, arguments."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type
from torchrl.data import Bounded, Unbounded

from trudi.policies import DenoiserMLP, DiffusionPolicy
from trudi.samplers import AncestralSampler, BestOfKSampler, CosineSchedule, DDIMSampler

OBS, A, K = 4, 2, 5


def _policy(**kwargs) -> DiffusionPolicy:
    torch.manual_seed(0)
    denoiser = kwargs.pop("denoiser", DenoiserMLP(OBS, A, K, hidden_dim=16, num_blocks=1))
    sampler = kwargs.pop("sampler", AncestralSampler(CosineSchedule(K)))
    return DiffusionPolicy(denoiser, sampler, **kwargs)


def _td(batch_shape=(6,)) -> TensorDict:
    return TensorDict({"observation": torch.randn(*batch_shape, OBS)}, batch_size=batch_shape)


def test_get_dist_calls_the_denoiser_once():
    policy = _policy()
    with set_interaction_type(InteractionType.RANDOM):
        td = policy(_td())
    calls = []
    policy.denoiser.register_forward_hook(lambda module, args, output: calls.append(output.shape))
    policy.get_dist(td)
    assert calls == [torch.Size([K, 6, A])]


def test_default_eval_sampler_is_the_probability_flow_ode():
    policy = _policy()
    assert isinstance(policy.eval_sampler, DDIMSampler) and policy.eval_sampler.eta == 0.0
    td = policy(_td())  # the default interaction type is DETERMINISTIC, as in tensordict
    assert (td["diffusion", "scale"] == 0).all()
    assert (td["diffusion", "chain_log_prob"] == 0).all()


def test_eval_sampler_may_use_fewer_steps():
    policy = _policy(eval_sampler=DDIMSampler(CosineSchedule(K), num_steps=2))
    with set_interaction_type(InteractionType.DETERMINISTIC):
        td = policy(_td())
    assert td["diffusion", "chain"].shape == (6, 3, A)


def test_best_of_k_eval_with_a_critic_score():
    def critic(chain, loc, scale, observation):
        return -(chain[..., -1, :] - observation[..., :A]).square().sum(-1)

    best = BestOfKSampler(DDIMSampler(CosineSchedule(K), eta=1.0, min_std=0.1), 8, score=critic)
    policy = _policy(eval_sampler=best)
    td = _td()
    with set_interaction_type(InteractionType.DETERMINISTIC):
        policy(td)
    assert td["diffusion", "chain"].shape == (6, K + 1, A)


@pytest.mark.parametrize("n_agents", [None, 3])
def test_agent_dimension(n_agents):
    denoiser = DenoiserMLP(OBS, A, K, hidden_dim=16, num_blocks=1, n_agents=n_agents)
    policy = _policy(denoiser=denoiser)
    td = _td(batch_shape=(2, 5, 3))
    with set_interaction_type(InteractionType.RANDOM):
        policy(td)
    assert td["diffusion", "chain"].shape == (2, 5, 3, K + 1, A)
    dist = policy.get_dist(td)
    # Per-agent layers batch their matmuls differently when sampling and when teacher forcing;
    # float32 rounding then differs by ~1e-6 in loc, amplified by 1/scale² in the log-prob.
    torch.testing.assert_close(
        dist.log_prob(td["diffusion", "chain"]),
        td["diffusion", "chain_log_prob"],
        rtol=1e-5,
        atol=1e-4,
    )


def test_per_agent_parameters_differ_between_agents():
    denoiser = DenoiserMLP(OBS, A, K, hidden_dim=16, num_blocks=1, n_agents=2)
    same_input = torch.randn(1, OBS).expand(2, OBS)
    out = denoiser(same_input, torch.zeros(2, A), torch.tensor(3))
    assert not torch.allclose(out[0], out[1])
    shared = DenoiserMLP(OBS, A, K, hidden_dim=16, num_blocks=1)
    out = shared(same_input, torch.zeros(2, A), torch.tensor(3))
    torch.testing.assert_close(out[0], out[1])


@pytest.mark.parametrize("per_agent_weights", [False, True])
def test_per_agent_learned_scale_reaches_only_its_agent(per_agent_weights):
    n_agents = 3
    denoiser = DenoiserMLP(
        OBS, A, K, hidden_dim=16, num_blocks=1, n_agents=n_agents if per_agent_weights else None
    )
    # min_std below the sampler's floor (1e-2): no transition sits at the clamp.
    policy = _policy(denoiser=denoiser, learn_scale=True, n_agents=n_agents, min_std=1e-3)
    assert policy.log_scale.shape == (K, n_agents, A)
    with torch.no_grad():
        policy.log_scale[:, 1].fill_(-0.5)  # agent 1 gets a different noise level
    with set_interaction_type(InteractionType.RANDOM):
        td = policy(_td(batch_shape=(4, n_agents)))
    scale = td["diffusion", "scale"]
    torch.testing.assert_close(scale[:, 1], scale[:, 0] * math.exp(-0.5))
    for agent in range(n_agents):
        log_prob = policy.get_dist(td).log_prob(td["diffusion", "chain"])[:, agent].sum()
        (grad,) = torch.autograd.grad(log_prob, policy.log_scale)
        others = torch.cat([grad[:, :agent], grad[:, agent + 1 :]], dim=1)
        assert (others == 0).all() and (grad[:, agent] != 0).all()


def test_n_agents_must_match_per_agent_denoiser():
    denoiser = DenoiserMLP(OBS, A, K, hidden_dim=16, num_blocks=1, n_agents=2)
    with pytest.raises(ValueError, match="n_agents must match"):
        _policy(denoiser=denoiser, learn_scale=True, n_agents=3)
    with pytest.raises(ValueError, match="n_agents"):
        _policy(learn_scale=True, n_agents=0)


def test_learned_scale_is_clamped():
    policy = _policy(learn_scale=True, min_std=0.05, max_std=0.5)
    with torch.no_grad():
        policy.log_scale.fill_(10.0)
    with set_interaction_type(InteractionType.RANDOM):
        td = policy(_td())
    assert (td["diffusion", "scale"] == 0.5).all()


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"sampler": "ddpm"}, "sampler"),
        ({"sampler": DDIMSampler(CosineSchedule(K), eta=0.0)}, "min_score_std"),
        ({"eval_sampler": 3}, "eval_sampler"),
        ({"eval_sampler": DDIMSampler(CosineSchedule(K + 3))}, "eval_sampler"),
        ({"denoiser": DenoiserMLP(OBS, A, K - 1, hidden_dim=8)}, "denoiser.num_steps"),
        ({"min_std": 0.0, "learn_scale": True}, "min_std"),
        ({"min_std": 0.5, "max_std": 0.1}, "max_std"),
        ({"squash": "sigmoid"}, "squash"),
        ({"squash": "tanh", "action_spec": Unbounded(shape=(A,))}, "action_spec"),
        ({"action_spec": Bounded(-1.0, 1.0, shape=(A + 1,))}, "action_spec"),
        (
            {"sampler": BestOfKSampler(AncestralSampler(CosineSchedule(K)), 2)},
            "eval_sampler",
        ),
    ],
)
def test_bad_arguments_raise(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        _policy(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"observation_dim": 0}, "observation_dim"),
        ({"num_steps": 0}, "num_steps"),
        ({"hidden_dim": 2.5}, "hidden_dim"),
        ({"n_agents": 0}, "n_agents"),
    ],
)
def test_bad_denoiser_arguments_raise(kwargs, argument):
    arguments = {"observation_dim": OBS, "action_dim": A, "num_steps": K} | kwargs
    with pytest.raises(ValueError, match=argument):
        DenoiserMLP(**arguments)


@pytest.mark.parametrize("n_agents", [None, 3])
def test_denoiser_input_layer_is_one_linear_map_on_the_concatenation(n_agents):
    """The observation's share is computed once and broadcast over the K steps; the result must be
    the plain MLP on ``[observation, sample, step embedding]`` expanded to the sample's shape."""
    torch.manual_seed(0)
    net = DenoiserMLP(OBS, A, K, hidden_dim=16, num_blocks=1, layer_norm=True, n_agents=n_agents)
    agents = () if n_agents is None else (n_agents,)
    observation = torch.randn(4, *agents, OBS)
    sample = torch.randn(K, 4, *agents, A)
    timestep = torch.arange(1, K + 1).view(K, 1, *(1 for _ in agents))
    batch_shape = sample.shape[:-1]
    if n_agents is None:
        embedding = net.step_embedding(timestep).expand(*batch_shape, -1)
    else:
        embedding = net.step_embedding(timestep.expand(batch_shape))
    inputs = torch.cat([observation.expand(*batch_shape, -1), sample, embedding], dim=-1)
    if n_agents is None:
        h = inputs @ net.input.weight.T + net.input.bias
    else:
        h = torch.einsum("...ni,nio->...no", inputs, net.input.weight) + net.input.bias
    h = net.blocks(h)
    expected = net.output(net.activation(net.output_norm(h)))
    actual = net(observation, sample, timestep)
    torch.testing.assert_close(actual, expected)
    # And the same gradients for every parameter.
    weights = torch.randn_like(expected)
    grads = torch.autograd.grad((actual * weights).sum(), list(net.parameters()))
    expected_grads = torch.autograd.grad((expected * weights).sum(), list(net.parameters()))
    for (name, _), a, b in zip(net.named_parameters(), grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_per_agent_scales_are_state_independent_per_agent():
    """Per-agent learned scales depend on the step and the agent only: a loss may project one row
    per agent, keeping the agent dim; shared ones are one row for all."""
    sampler = AncestralSampler(CosineSchedule(3), min_std=0.05)
    shared = DiffusionPolicy(DenoiserMLP(4, 2, 3, hidden_dim=8), sampler, learn_scale=True)
    per_agent = DiffusionPolicy(
        DenoiserMLP(4, 2, 3, hidden_dim=8, n_agents=2), sampler, learn_scale=True, n_agents=2
    )
    assert shared.state_independent_scale and not shared.per_agent_scale
    assert per_agent.state_independent_scale and per_agent.per_agent_scale
