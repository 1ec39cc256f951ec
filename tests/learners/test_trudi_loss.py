"""TruDiLoss: the shared loss contract, the trust region under training, and TRPL with K = 1."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal
from torchrl.objectives import ClipPPOLoss

from tests.learners.loss_contract import (
    ACT,
    OBS,
    STEPS,
    LossContract,
    collect,
    make_critic,
    make_diffusion_policy,
    make_gaussian_policy,
    with_advantage,
)
from trudi.constraints import TrajectoryKLProjection, trajectory_kl
from trudi.learners import TruDiLoss
from trudi.policies import DenoiserMLP, DiffusionPolicy
from trudi.samplers import AncestralSampler, CosineSchedule


class TestTruDiLoss(LossContract):
    loss_names = ("loss_objective", "loss_trust_region", "loss_critic", "loss_entropy")
    actor_loss_names = ("loss_objective", "loss_trust_region", "loss_entropy")

    def make_loss(self, policy, critic, **kwargs):
        return TruDiLoss(policy, critic, TrajectoryKLProjection(0.05, 0.01), **kwargs)


def test_diagnostics_are_detached_scalars():
    policy = make_diffusion_policy()
    out = TruDiLoss(policy, make_critic(), TrajectoryKLProjection(0.05, 0.01))(
        with_advantage(collect(policy))
    )
    for name in (
        "kl_trajectory_before",
        "kl_trajectory_after",
        "frac_projected",
        "max_multiplier",
        "ratio_mean",
        "ratio_min",
        "ratio_max",
        "explained_variance",
        "entropy",
    ):
        assert out[name].dim() == 0 and not out[name].requires_grad, name


def projected_parts(loss, policy, td):
    """Per-chain (mean, cov) KL parts of the projected transitions to the behaviour ones."""
    with torch.no_grad():
        dist = policy.get_dist(td)
        loc, scale = loss.projection(
            dist.loc, dist.scale, td["diffusion", "loc"], td["diffusion", "scale"]
        )
        return trajectory_kl(loc, scale, td["diffusion", "loc"], td["diffusion", "scale"]), dist


@pytest.mark.parametrize("mean_bound", [0.05, 1e9])
def test_trust_region_holds_under_large_steps(mean_bound):
    """Many large Adam steps on one batch: the projected policy stays within the bounds, while
    the same surrogate without an effective projection (a huge bound) leaves them."""
    policy = make_diffusion_policy(num_steps=4)
    td = with_advantage(collect(policy, batch=(64,)))
    loss = TruDiLoss(
        policy,
        make_critic(),
        TrajectoryKLProjection(mean_bound, 0.01 if mean_bound < 1 else 1e9),
        entropy_coeff=0.0,
        critic_coeff=0.0,
        trust_region_coeff=0.0,
    )
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-2)
    max_mean = max_cov = 0.0
    for _ in range(40):
        out = loss(td)
        optimizer.zero_grad()
        out["loss_objective"].backward()
        optimizer.step()
        (mean_part, cov_part), _ = projected_parts(loss, policy, td)
        max_mean, max_cov = (
            max(max_mean, mean_part.max().item()),
            max(max_cov, cov_part.max().item()),
        )
    if mean_bound < 1:
        assert max_mean <= 0.05 * (1 + 1e-3) and max_cov <= 0.01 * (1 + 1e-3)
    else:
        assert max_mean > 0.05 * 10


def test_gaussian_k1_matches_hand_computed_trpl():
    """K = 1 with a Gaussian head and the W2 layer is TRPL's loss (Otto et al. 2021)."""
    policy = make_gaussian_policy()
    td = with_advantage(collect(policy, batch=(5,)))
    eps_mean, eps_cov, alpha = 0.02, 0.001, 2.0
    loss = TruDiLoss(
        policy,
        make_critic(),
        TrajectoryKLProjection(eps_mean, eps_cov, divergence="w2"),
        trust_region_coeff=alpha,
        entropy_coeff=0.0,
    )
    action_chain = td["diffusion", "chain"][:, 1]
    old_mu, old_sigma = td["diffusion", "loc"][:, 0], td["diffusion", "scale"][:, 0]
    # Move the network away from the behaviour so that both bounds are active.
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3)
    out = loss(td)
    dist = policy.get_dist(td)
    mu, sigma = dist.loc[:, 0], dist.scale[:, 0]
    m = (((mu - old_mu) / old_sigma) ** 2).sum(-1, keepdim=True)
    c = ((1 - sigma / old_sigma) ** 2).sum(-1, keepdim=True)
    assert (m > eps_mean).any() and (c > eps_cov).any()
    mu_t = old_mu + (mu - old_mu) * torch.where(m > eps_mean, (eps_mean / m).sqrt(), 1.0)
    sigma_t = old_sigma + (sigma - old_sigma) * torch.where(c > eps_cov, (eps_cov / c).sqrt(), 1.0)
    ratio = (
        Normal(mu_t, sigma_t).log_prob(action_chain).sum(-1)
        - Normal(old_mu, old_sigma).log_prob(action_chain).sum(-1)
    ).exp()
    objective = -(ratio * td["advantage"][:, 0]).mean()
    trust_region = (
        alpha
        * (
            (((mu - mu_t.detach()) / sigma_t.detach()) ** 2).sum(-1)
            + ((1 - sigma / sigma_t.detach()) ** 2).sum(-1)
        ).mean()
    )
    torch.testing.assert_close(out["loss_objective"], objective)
    torch.testing.assert_close(out["loss_trust_region"], trust_region)


def test_gaussian_ppo_baseline_is_torchrl_clip_ppo():
    """Plain PPO needs no new class: TorchRL's ClipPPOLoss takes the GaussianPolicy."""
    policy = make_gaussian_policy()
    td = with_advantage(collect(policy))
    loss = ClipPPOLoss(policy, make_critic())
    loss.set_keys(action=("diffusion", "chain"), sample_log_prob=("diffusion", "chain_log_prob"))
    out = loss(td)
    out["loss_objective"].backward()
    assert all(p.grad is not None for p in policy.parameters())


def test_bad_arguments():
    policy = make_diffusion_policy()
    with pytest.raises(ValueError, match="projection"):
        TruDiLoss(policy, make_critic(), None)
    with pytest.raises(ValueError, match="trust_region_coeff"):
        TruDiLoss(policy, make_critic(), TrajectoryKLProjection(0.1), trust_region_coeff=-1.0)
    with pytest.raises(ValueError, match="actor_network"):
        TruDiLoss(torch.nn.Linear(2, 2), make_critic(), TrajectoryKLProjection(0.1))


def test_metrics_switch_skips_the_projection_metrics():
    policy = make_diffusion_policy()
    td = with_advantage(collect(policy))
    projection = TrajectoryKLProjection(0.05, 0.01)
    full = TruDiLoss(policy, make_critic(), projection)(td)
    lean = TruDiLoss(policy, make_critic(), projection, metrics=False)(td)
    projection_names = {
        "kl_trajectory_before",
        "kl_trajectory_after",
        "kl_mean_part_before",
        "kl_mean_part_after",
        "kl_cov_part_before",
        "kl_cov_part_after",
        "frac_projected",
        "max_multiplier",
    }
    assert projection_names <= set(full.keys())
    assert not projection_names & set(lean.keys())
    torch.testing.assert_close(lean["loss_trust_region"], full["loss_trust_region"])
    torch.testing.assert_close(lean["loss_objective"], full["loss_objective"])


def test_loss_copies_prefixed_policy_keys():
    policy = make_diffusion_policy()
    policy.set_keys(policy.tensor_keys.prefixed("agents", "chain", "loc", "scale"))
    loss = TruDiLoss(policy, make_critic(), TrajectoryKLProjection(0.05))
    assert loss.tensor_keys.chain == loss.tensor_keys.action == ("agents", "diffusion", "chain")
    assert loss.tensor_keys.loc == ("agents", "diffusion", "loc")
    assert loss.tensor_keys.chain_log_prob == loss.tensor_keys.sample_log_prob


def test_team_advantage_broadcasts_over_agent_ratios():
    from trudi.learners import ChainLoss

    team = torch.randn(4, 1)
    per_agent = torch.zeros(4, 3, 1)
    broadcast = ChainLoss._broadcast(team, per_agent)
    torch.testing.assert_close(broadcast + per_agent, team.unsqueeze(1).expand(4, 3, 1))
    matching = torch.randn(4, 3, 1)
    assert ChainLoss._broadcast(matching, per_agent) is matching
    other_batch = torch.randn(5, 1)
    assert ChainLoss._broadcast(other_batch, per_agent) is other_batch


def make_per_agent_policy(agents: int = 3) -> DiffusionPolicy:
    torch.manual_seed(0)
    denoiser = DenoiserMLP(OBS, ACT, STEPS, hidden_dim=16, num_blocks=1, n_agents=agents)
    sampler = AncestralSampler(CosineSchedule(STEPS), min_std=0.05)
    return DiffusionPolicy(denoiser, sampler, learn_scale=True, n_agents=agents)


POLICIES = {
    "diffusion": (make_diffusion_policy, (16,)),
    "gaussian": (make_gaussian_policy, (16,)),
    "per-agent": (make_per_agent_policy, (16, 3)),
}


@pytest.mark.parametrize("kind", sorted(POLICIES))
def test_state_independent_scales_are_projected_once(kind, monkeypatch):
    """With state-independent scales and one behaviour policy, one scale row (one per agent with
    per-agent scales) reaches the projection, and the losses and gradients are those of projecting
    every row; behaviour scales that differ between rows are projected row by row."""
    make_policy, batch = POLICIES[kind]
    policy = make_policy()
    td = with_advantage(collect(policy, batch=batch))
    with torch.no_grad():  # move the policy so that the mean and covariance parts are active
        for parameter in policy.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    loss = TruDiLoss(policy, make_critic(), TrajectoryKLProjection(1e-3, 1e-4))
    seen = []
    project = loss.projection.project
    monkeypatch.setattr(
        loss.projection, "project", lambda *args: seen.append(args[1].shape) or project(*args)
    )

    def run(td):
        loss.zero_grad()
        out = loss(td)
        sum(v for k, v in out.items() if k.startswith("loss_")).backward()
        grads = [p.grad.clone() for p in loss.parameters() if p.grad is not None]
        return out, grads

    scale_key = policy.tensor_keys.scale
    rows = td[scale_key].shape
    out_once, grads_once = run(td)
    assert seen[-1] == (1, *rows[1:])  # [1, K, A], or [1, n_agents, K, A]
    assert out_once["frac_projected"] > 0 and out_once["kl_cov_part_before"] > 1e-4
    monkeypatch.setattr(type(policy), "state_independent_scale", property(lambda self: False))
    out_rows, grads_rows = run(td)
    assert seen[-1] == rows
    for key in ("loss_objective", "loss_trust_region", "loss_entropy", "kl_trajectory_after"):
        torch.testing.assert_close(out_once[key], out_rows[key], msg=key)
    for a, b in zip(grads_once, grads_rows, strict=True):
        torch.testing.assert_close(a, b)
    monkeypatch.undo()
    mixed = td.clone()
    mixed[scale_key][0] *= 1.5  # the first sample from another behaviour policy
    loss.projection.project = lambda *args: seen.append(args[1].shape) or project(*args)
    run(mixed)
    assert seen[-1] == rows
