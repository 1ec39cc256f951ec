"""Keys and shapes with an agent dim through VMAS collection, GAE and the losses."""

from __future__ import annotations

import pytest
import torch
from torchrl.objectives import ValueEstimators

from examples.multiagent import broadcast_team_done, make_env, make_loss
from examples.train import collect
from tests.examples.multiagent.helpers import N_AGENTS, make_cfg

ENVS, T = 4, 6


def _collect(cfg):
    """One rollout ``[ENVS, T]`` with the example's collection loop."""
    env = make_env(cfg)
    loss, policy = make_loss(cfg, env)
    data, _ = collect(env, policy, env.reset(), T)
    return env, loss, policy, data


@pytest.mark.parametrize(
    ("share_params", "centralised"), [(True, True), (False, False), (True, False)]
)
def test_trudi_keys_and_shapes(share_params, centralised):
    cfg = make_cfg(f"policy.share_params={share_params}", f"critic.centralised={centralised}")
    env, loss, _, data = _collect(cfg)
    K, A = cfg.policy.num_steps, env.full_action_spec["agents", "action"].shape[-1]
    agents = (ENVS, T, N_AGENTS)
    assert data.batch_size == (ENVS, T)
    assert data["agents", "action"].shape == (*agents, A)
    assert data["agents", "diffusion", "chain"].shape == (*agents, K + 1, A)
    assert data["agents", "diffusion", "loc"].shape == (*agents, K, A)
    assert data["agents", "diffusion", "scale"].shape == (*agents, K, A)
    assert data["agents", "diffusion", "chain_log_prob"].shape == (*agents, K)
    assert "diffusion" not in data.keys()
    assert not data["agents", "diffusion", "loc"].requires_grad

    data = broadcast_team_done(data)
    assert data["next", "agents", "done"].shape == (*agents, 1)
    assert (data["next", "agents", "done"] == data["next", "done"].unsqueeze(-1)).all()
    with torch.no_grad():
        loss.value_estimator(data)
    assert data["agents", "advantage"].shape == (*agents, 1)
    assert data["agents", "value_target"].shape == (*agents, 1)
    assert "advantage" not in data.keys()

    flat = data.reshape(-1)
    out = loss(flat)
    for name in ("loss_objective", "loss_trust_region", "loss_critic"):
        assert out[name].shape == () and torch.isfinite(out[name]), name
    assert loss.tensor_keys.chain == ("agents", "diffusion", "chain")
    assert loss.tensor_keys.sample_log_prob == ("agents", "diffusion", "chain_log_prob")

    loss.reduction = "none"
    out = loss(flat)
    assert out["loss_objective"].shape == (ENVS * T, N_AGENTS)
    assert out["loss_critic"].shape == (ENVS * T, N_AGENTS)


def test_expanded_done_gae_equals_multi_agent_gae():
    """Broadcasting team dones by hand (TorchRL's mappo_ippo example) = TorchRL's MultiAgentGAE."""
    cfg = make_cfg()
    _, loss, _, data = _collect(cfg)
    # Make some episodes end inside the batch, so the dones matter.
    data["next", "done"][:, 2] = True
    data["next", "terminated"][:, 2] = True
    expanded = broadcast_team_done(data.clone())
    with torch.no_grad():
        loss.value_estimator(expanded)
        loss.set_keys(done="done", terminated="terminated")
        loss.make_value_estimator(ValueEstimators.MAGAE, gamma=cfg.gamma, lmbda=cfg.lmbda)
        team = data.clone()
        loss.value_estimator(team)
    torch.testing.assert_close(team["agents", "advantage"], expanded["agents", "advantage"])
    torch.testing.assert_close(team["agents", "value_target"], expanded["agents", "value_target"])


def test_mappo_baseline_keys_and_shapes():
    cfg = make_cfg("algo=mappo")
    _, loss, _, data = _collect(cfg)
    data = broadcast_team_done(data)
    with torch.no_grad():
        loss.value_estimator(data)
    out = loss(data.reshape(-1))
    assert data["agents", "advantage"].shape == (ENVS, T, N_AGENTS, 1)
    assert torch.isfinite(out["loss_objective"]) and torch.isfinite(out["loss_critic"])
