"""Per-agent parameters get gradient only from their own agent's rows; shared ones from all."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from examples.multiagent import make_critic, make_env, make_policy, set_agent_keys
from tests.examples.multiagent.helpers import N_AGENTS, agent_batch, make_cfg
from trudi.constraints import TrajectoryKLProjection
from trudi.learners import TruDiLoss


def _setup(share_params: bool, centralised: bool = False, *overrides: str):
    cfg = make_cfg(
        f"policy.share_params={share_params}", f"critic.centralised={centralised}", *overrides
    )
    env = make_env(cfg)
    torch.manual_seed(0)
    policy = make_policy(cfg, env)
    critic = make_critic(cfg, env)
    loss = TruDiLoss(
        policy, critic, TrajectoryKLProjection(0.05, 0.01), reduction="none", functional=False
    )
    set_agent_keys(loss)
    td = agent_batch(policy, n_agents=N_AGENTS)
    # Move the network away from the behaviour, so the trust-region term has a gradient too.
    with torch.no_grad():
        for p in policy.denoiser.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return policy, critic, loss(td)


def _agent_loss(out, agent: int, names=("loss_objective", "loss_trust_region")):
    return sum(out[name][..., agent].sum() for name in names)


def test_per_agent_denoiser_gradients_stay_with_their_agent():
    policy, _, out = _setup(share_params=False)
    params = dict(policy.denoiser.named_parameters())
    for name, p in params.items():
        assert p.shape[0] == N_AGENTS, f"{name} is shared across agents: {tuple(p.shape)}"
    for agent in range(N_AGENTS):
        grads = torch.autograd.grad(
            _agent_loss(out, agent), list(params.values()), retain_graph=True
        )
        for name, g in zip(params, grads, strict=True):
            others = torch.cat([g[:agent], g[agent + 1 :]])
            assert (others == 0).all(), f"agent {agent}'s loss reaches other agents' {name}"
            assert (g[agent] != 0).any(), f"agent {agent}'s loss does not reach its {name}"


@pytest.mark.parametrize("share_params", [True, False])
def test_per_agent_learned_scale_stays_with_its_agent(share_params):
    """Also with one denoiser for all agents (the default): the scales are per agent."""
    policy, _, out = _setup(share_params)
    assert policy.log_scale.shape == (policy.num_steps, N_AGENTS, policy.action_dim)
    for agent in range(N_AGENTS):
        (g,) = torch.autograd.grad(_agent_loss(out, agent), [policy.log_scale], retain_graph=True)
        others = torch.cat([g[:, :agent], g[:, agent + 1 :]], dim=1)
        assert (others == 0).all(), f"agent {agent}'s loss reaches other agents' log_scale"
        assert (g[:, agent] != 0).any(), f"agent {agent}'s loss does not reach its log_scale"


def test_agents_get_independent_scales():
    """Changing one agent's learned scale changes that agent's transitions only."""
    policy, _, _ = _setup(share_params=True)
    with torch.no_grad():
        policy.log_scale[:, 1] -= 0.5
    td = agent_batch(policy, n_agents=N_AGENTS)
    scale = td["agents", "diffusion", "scale"]  # [B, n_agents, K, A]
    torch.testing.assert_close(scale[:, 0], scale[:, 2])
    torch.testing.assert_close(scale[:, 1], scale[:, 0] * torch.exp(torch.tensor(-0.5)))


def test_one_scale_for_all_agents_when_asked():
    policy, _, out = _setup(True, False, "policy.per_agent_scale=false")
    assert policy.log_scale.shape == (policy.num_steps, policy.action_dim)
    for agent in range(N_AGENTS):
        (g,) = torch.autograd.grad(_agent_loss(out, agent), [policy.log_scale], retain_graph=True)
        assert (g != 0).any()


def test_shared_denoiser_gets_gradient_from_every_agent():
    policy, _, out = _setup(share_params=True)
    params = list(policy.denoiser.parameters())
    for agent in range(N_AGENTS):
        grads = torch.autograd.grad(_agent_loss(out, agent), params, retain_graph=True)
        assert all((g != 0).any() for g in grads)


@pytest.mark.parametrize("share_params", [True, False])
def test_actor_and_critic_losses_are_isolated(share_params):
    policy, critic, out = _setup(share_params=share_params)
    actor, value = list(policy.parameters()), list(critic.parameters())
    grads = torch.autograd.grad(
        out["loss_objective"].sum() + out["loss_trust_region"].sum(),
        actor + value,
        retain_graph=True,
        allow_unused=True,
    )
    assert all(g is None or (g == 0).all() for g in grads[len(actor) :])
    grads = torch.autograd.grad(out["loss_critic"].sum(), actor + value, allow_unused=True)
    assert all(g is None or (g == 0).all() for g in grads[: len(actor)])
    assert any(g is not None and (g != 0).any() for g in grads[len(actor) :])


@pytest.mark.parametrize("centralised", [True, False])
def test_critic_sees_other_agents_only_when_centralised(centralised):
    cfg = make_cfg(f"critic.centralised={centralised}")
    critic = make_critic(cfg, make_env(cfg))
    observation = torch.randn(5, N_AGENTS, 18, requires_grad=True)
    td = TensorDict({"agents": TensorDict({"observation": observation}, [5, N_AGENTS])}, [5])
    value = critic(td)["agents", "state_value"]
    assert value.shape == (5, N_AGENTS, 1)
    (grad,) = torch.autograd.grad(value[:, 0].sum(), observation)
    assert (grad[:, 0] != 0).any()
    assert bool((grad[:, 1:] != 0).any()) == centralised
