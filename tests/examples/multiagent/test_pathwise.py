"""The pathwise arm in multi-agent data: agent-level soft returns, loss shapes, the Q critic."""

from __future__ import annotations

import pytest
import torch

from examples.multiagent import JointQCritic, broadcast_team_done, make_critic, make_env, make_loss
from examples.train import collect
from tests.examples.multiagent.helpers import N_AGENTS, OBS_DIM, make_cfg
from trudi.learners import QCritic, TruDiPathwiseLoss

ENVS, T = 4, 6


def _batch(*overrides: str):
    cfg = make_cfg("algo=trudi_pathwise", "policy.num_steps=3", *overrides)
    env = make_env(cfg)
    torch.manual_seed(0)
    loss, policy = make_loss(cfg, env)
    data, _ = collect(env, policy, env.reset(), T)
    return cfg, loss, broadcast_team_done(data)


@pytest.mark.parametrize("centralised", [True, False])
def test_soft_returns_and_embeddings_are_per_agent(centralised):
    cfg, loss, data = _batch(f"critic.centralised={centralised}")
    assert isinstance(loss, TruDiPathwiseLoss)
    assert isinstance(loss.critic_network, JointQCritic if centralised else QCritic)
    with torch.no_grad():
        loss.value_estimator(data)
    agents = (ENVS, T, N_AGENTS)
    assert data["agents", "value_target"].shape == (*agents, 1)
    assert data["next", "agents", "state_value"].shape == (*agents, 1)
    assert data["agents", "next_embedding"].shape == (*agents, cfg.critic.hidden_dim)
    assert "value_target" not in data.keys()


@pytest.mark.parametrize(
    ("trust_region", "centralised"), [("split", True), ("split", False), ("projection", True)]
)
def test_loss_shapes_per_agent(trust_region, centralised):
    _, loss, data = _batch(f"algo.trust_region={trust_region}", f"critic.centralised={centralised}")
    loss.sync_old_policy()
    with torch.no_grad():
        loss.value_estimator(data)
    flat = data.reshape(-1)
    out = loss(flat)
    names = [k for k in out.keys() if k.startswith("loss_")]
    extra = "loss_lagrange" if trust_region == "split" else "loss_trust_region"
    assert sorted(names) == sorted(["loss_objective", "loss_critic", "loss_temperature", extra])
    for name in names:
        assert out[name].shape == () and torch.isfinite(out[name]), name
    loss.reduction = "none"
    out = loss(flat)
    for name in names:
        assert out[name].shape == (ENVS * T, N_AGENTS), name
    # Every agent's actor loss has a gradient (the pathwise one through its own chain).
    denoiser = list(loss.actor_network.denoiser.parameters())
    for agent in range(N_AGENTS):
        grads = torch.autograd.grad(
            out["loss_objective"][:, agent].sum(), denoiser, retain_graph=True, allow_unused=True
        )
        assert any(g is not None and (g != 0).any() for g in grads)


@pytest.mark.parametrize("centralised", [True, False])
def test_q_critic_sees_other_agents_only_when_centralised(centralised):
    cfg = make_cfg("algo=trudi_pathwise", f"critic.centralised={centralised}")
    critic = make_critic(cfg, make_env(cfg))
    observation = torch.randn(5, N_AGENTS, OBS_DIM, requires_grad=True)
    action = torch.rand(5, N_AGENTS, 2, requires_grad=True)
    q = critic(observation, action)
    assert q.value.shape == (5, N_AGENTS, 1)
    assert q.logits.shape == (5, N_AGENTS, cfg.algo.num_bins)
    obs_grad, action_grad = torch.autograd.grad(q.value[:, 0].sum(), [observation, action])
    assert (obs_grad[:, 0] != 0).any() and (action_grad[:, 0] != 0).any()
    assert bool((obs_grad[:, 1:] != 0).any()) == centralised
    assert bool((action_grad[:, 1:] != 0).any()) == centralised


def test_joint_critic_tells_agents_apart():
    """With the same joint input, agents' Q differ only through their one-hot id."""
    cfg = make_cfg("algo=trudi_pathwise")
    critic = make_critic(cfg, make_env(cfg))
    q = critic(torch.randn(2, N_AGENTS, OBS_DIM), torch.rand(2, N_AGENTS, 2)).value
    assert not torch.allclose(q[:, 0], q[:, 1])
    with pytest.raises(ValueError, match="n_agents=3"):
        critic(torch.randn(2, N_AGENTS + 1, OBS_DIM), torch.rand(2, N_AGENTS + 1, 2))
