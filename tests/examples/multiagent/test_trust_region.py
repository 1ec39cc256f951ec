"""The trust region holds per agent: each agent's chain is a row of the projection."""

from __future__ import annotations

import pytest
import torch

from examples.multiagent import make_critic, make_env, make_policy, set_agent_keys
from tests.examples.multiagent.helpers import N_AGENTS, agent_batch, make_cfg
from trudi.constraints import TrajectoryKLProjection
from trudi.constraints.divergences import cov_terms, mean_terms
from trudi.learners import TruDiLoss

MEAN_BOUND, COV_BOUND = 0.02, 0.005


def _setup(share_params: bool):
    cfg = make_cfg(f"policy.share_params={share_params}")
    env = make_env(cfg)
    torch.manual_seed(0)
    policy = make_policy(cfg, env)
    projection = TrajectoryKLProjection(MEAN_BOUND, COV_BOUND)
    loss = TruDiLoss(policy, make_critic(cfg, env), projection, normalize_advantage=False)
    set_agent_keys(loss)
    return policy, loss, agent_batch(policy, batch=(16,), n_agents=N_AGENTS)


def _parts(policy, loss, td):
    """Per-(sample, agent) mean and covariance parts, network and projected, ``[B, n_agents]``."""
    keys = policy.tensor_keys
    old_loc, old_scale = td[keys.loc], td[keys.scale]
    with torch.no_grad():
        dist = policy.get_dist(td)
        proj = loss.projection.project(dist.loc, dist.scale, old_loc, old_scale)

    def parts(loc, scale):
        mean = mean_terms("kl", loc, old_loc, old_scale).sum((-2, -1))
        return mean, cov_terms("kl", scale, old_scale).sum((-2, -1))

    return parts(dist.loc, dist.scale), parts(proj.loc, proj.scale), proj


@pytest.mark.parametrize("share_params", [True, False])
def test_bound_holds_for_every_agent_after_large_steps(share_params):
    policy, loss, td = _setup(share_params)
    optimizer = torch.optim.SGD(policy.parameters(), lr=5.0)
    for _ in range(3):
        out = loss(td)
        optimizer.zero_grad()
        (out["loss_objective"] + out["loss_trust_region"]).backward()
        optimizer.step()
    (net_mean, _), (mean, cov), _ = _parts(policy, loss, td)
    assert mean.shape == cov.shape == (16, N_AGENTS)
    # The network left the region for some chains of every agent ...
    assert ((net_mean > 10 * MEAN_BOUND).any(0)).all()
    # ... and the projection brings every agent's chain back inside.
    assert (mean <= MEAN_BOUND * (1 + 1e-4)).all()
    assert (cov <= COV_BOUND * (1 + 1e-3)).all()
    assert loss(td)["kl_mean_part_after"] <= MEAN_BOUND * (1 + 1e-4)


def test_one_agents_step_does_not_project_the_others():
    policy, loss, td = _setup(share_params=False)
    with torch.no_grad():
        for p in policy.denoiser.parameters():
            p[0].add_(torch.randn_like(p[0]))  # move agent 0 only, far
    (net_mean, _), (mean, _), proj = _parts(policy, loss, td)
    outside = net_mean[:, 0] > MEAN_BOUND
    assert outside.sum() > 8 and (proj.mean_multiplier[:, 0][outside] > 0).all()
    assert (mean[:, 0] <= MEAN_BOUND * (1 + 1e-4)).all()
    # Agents 1 and 2 are at their behaviour transitions: inside, unprojected, unchanged.
    assert (proj.mean_multiplier[:, 1:] == 0).all()
    torch.testing.assert_close(proj.loc[:, 1:], td["agents", "diffusion", "loc"][:, 1:])
