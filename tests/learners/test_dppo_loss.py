"""DPPOLoss: the shared loss contract, DPPO's published loss on a hand-made batch, frozen steps."""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import pytest
import torch
from tensordict import TensorDict

from tests.learners.loss_contract import (
    ACT,
    OBS,
    LossContract,
    collect,
    make_critic,
    make_diffusion_policy,
    with_advantage,
)
from trudi.learners import DPPOLoss, exponential_clip_schedule
from trudi.policies import DenoiserMLP, DiffusionPolicy, FineTunedDenoiser
from trudi.samplers import AncestralSampler, CosineSchedule, transition_log_prob

K = 3  # the contract's chain length
BATCH = 8


class TestDPPOLoss(LossContract):
    loss_names = ("loss_objective", "loss_critic", "loss_entropy")
    actor_loss_names = ("loss_objective", "loss_entropy")
    required_keys: ClassVar[tuple[str, ...]] = ("loc", "scale")

    def make_loss(self, policy, critic, **kwargs):
        return DPPOLoss(policy, critic, entropy_coeff=0.01, **kwargs)


class TestDPPOJointLoss(TestDPPOLoss):
    required_keys: ClassVar[tuple[str, ...]] = ("chain_log_prob",)

    def make_loss(self, policy, critic, **kwargs):
        return DPPOLoss(policy, critic, ratio="joint", entropy_coeff=0.01, **kwargs)


def hand_made_batch(policy: DiffusionPolicy) -> TensorDict:
    """Chains drawn with chosen noise, some entries 4-6 std out (their per-dimension log-probs
    fall below -5), then the policy's parameters moved so that the ratios spread around 1."""
    g = torch.Generator().manual_seed(7)
    observation = torch.randn(BATCH, OBS, generator=g)
    noise = torch.randn(BATCH, K + 1, ACT, generator=g)
    noise[0, 1, 0], noise[1, 2, 1], noise[2, 3, 0], noise[3, 3, 1] = 4.5, -5.0, 6.0, -4.0
    with torch.no_grad():
        chain, loc, scale = policy.rsample(observation, noise)
    td = TensorDict(
        {
            "observation": observation,
            "diffusion": {
                "chain": chain,
                "loc": loc,
                "scale": scale,
                "chain_log_prob": transition_log_prob(chain, loc, scale),
            },
            "advantage": torch.tensor([1.5, -0.7, 0.3, -2.0, 0.9, -0.2, 1.1, -1.3]).unsqueeze(-1),
            "value_target": torch.randn(BATCH, 1, generator=g),
        },
        batch_size=[BATCH],
    )
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.08 * torch.randn(p.shape, generator=g))
    return td


def dppo_oracle(td, loc, scale, *, ft, clip, clip_base, rate, gamma, clamp=(-5.0, 2.0), mean=True):
    """DPPO's ``PPODiffusion.loss`` in plain torch, over (environment step, denoising step) pairs
    flattened as its agent does, from the current transitions ``loc``, ``scale`` [B, K, A]."""
    chain, old_loc, old_scale = (td["diffusion", k] for k in ("chain", "loc", "scale"))
    first = loc.shape[-2] - ft
    x_next = chain[:, first + 1 :]

    def log_prob(mu, sd):
        return -0.5 * ((x_next - mu) / sd) ** 2 - sd.log() - 0.5 * math.log(2 * math.pi)

    new, old = (
        log_prob(loc[:, first:], scale[:, first:]),
        log_prob(old_loc[:, first:], old_scale[:, first:]),
    )
    if clamp is not None:
        new, old = new.clamp(*clamp), old.clamp(*clamp)
    reduce = (lambda x: x.mean(-1)) if mean else (lambda x: x.sum(-1))
    new, old = reduce(new).reshape(-1), reduce(old).reshape(-1)
    denoising_inds = torch.arange(ft).repeat(chain.shape[0])
    advantages = td["advantage"][:, 0].repeat_interleave(ft)
    advantages = advantages * gamma ** (ft - denoising_inds - 1).float()
    ratio = (new - old).exp()
    if ft > 1:
        t = denoising_inds.float() / (ft - 1)
        eps = clip_base + (clip - clip_base) * (torch.exp(rate * t) - 1) / (math.exp(rate) - 1)
    else:
        eps = torch.full_like(ratio, clip)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1 - eps, 1 + eps)
    return torch.max(pg_loss1, pg_loss2).mean(), (ratio, eps)


@pytest.mark.parametrize("ft", [2, 3])
def test_reproduces_dppo_on_a_hand_made_batch(ft):
    policy = make_diffusion_policy()
    td = hand_made_batch(policy)
    hyper = {"clip": 0.2, "clip_base": 0.02, "rate": 3.0, "gamma": 0.8}
    loss = DPPOLoss(
        policy,
        make_critic(),
        clip_epsilon=exponential_clip_schedule(
            hyper["clip_base"], hyper["clip"], ft, hyper["rate"]
        ),
        denoising_discount=hyper["gamma"],
        ft_denoising_steps=ft,
        normalize_advantage=False,
    )
    out = loss(td)
    with torch.no_grad():
        dist = policy.get_dist(td)
        expected, (ratio, eps) = dppo_oracle(td, dist.loc, dist.scale, ft=ft, **hyper)
    torch.testing.assert_close(out["loss_objective"], expected)
    # The batch exercises every part: clamped log-probs, ratios clipped at some steps' epsilon
    # and not at others', so each wrong variant below gives another value.
    first = K - ft
    raw = torch.distributions.Normal(dist.loc, dist.scale).log_prob(td["diffusion", "chain"][:, 1:])
    assert (raw[:, first:] < -5).any()
    clipped = (ratio - 1).abs() > eps
    assert clipped.any() and not clipped.all()
    torch.testing.assert_close(out["clip_fraction"], clipped.float().mean())
    variants = {
        "no clamp": {"clamp": None},
        "sum over dims": {"mean": False},
        "constant clip": {"clip_base": hyper["clip"]},
        "no denoising discount": {"gamma": 1.0},
        "all steps": {"ft": K if ft < K else K - 1},
    }
    for name, change in variants.items():
        with torch.no_grad():
            wrong, _ = dppo_oracle(td, dist.loc, dist.scale, **{"ft": ft, **hyper, **change})
        assert (wrong - expected).abs() > 1e-3, name


def test_advantages_normalised_over_the_minibatch_before_the_discount():
    policy = make_diffusion_policy()
    td = hand_made_batch(policy)
    normalised = td.clone()
    advantage = td["advantage"]
    normalised["advantage"] = (advantage - advantage.mean()) / advantage.std()
    kwargs = {"clip_epsilon": 0.1, "denoising_discount": 0.9}
    out = DPPOLoss(policy, make_critic(), **kwargs)(td)  # normalize_advantage=True by default
    expected = DPPOLoss(policy, make_critic(), normalize_advantage=False, **kwargs)(normalised)
    torch.testing.assert_close(out["loss_objective"], expected["loss_objective"])


def test_joint_ratio_is_the_summed_unclamped_log_prob():
    policy = make_diffusion_policy()
    td = with_advantage(collect(policy))
    schedule = exponential_clip_schedule(0.05, 0.2, K)
    loss = DPPOLoss(
        policy,
        make_critic(),
        ratio="joint",
        clip_epsilon=schedule,
        denoising_discount=0.5,
        normalize_advantage=False,
    )
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05)
    out = loss(td)
    dist = policy.get_dist(td)
    log_prob = torch.distributions.Normal(dist.loc, dist.scale).log_prob(
        td["diffusion", "chain"][:, 1:]
    )
    ratio = (log_prob.sum(-1) - td["diffusion", "chain_log_prob"]).exp()
    eps = torch.tensor(schedule)
    advantage = td["advantage"] * torch.tensor([0.25, 0.5, 1.0])
    surrogate = torch.minimum(ratio * advantage, ratio.clamp(1 - eps, 1 + eps) * advantage)
    torch.testing.assert_close(out["loss_objective"], -surrogate.mean())
    assert 0 < out["clip_fraction"] < 1


@pytest.mark.parametrize("ratio", ["clamped_mean", "joint"])
def test_steps_before_the_fine_tuned_ones_do_not_enter_the_loss(ratio):
    policy = make_diffusion_policy()
    td = hand_made_batch(policy)
    loss = DPPOLoss(policy, make_critic(), ratio=ratio, ft_denoising_steps=2, entropy_coeff=0.1)
    out = loss(td)
    for step, unchanged in ((0, True), (1, False)):
        moved = td.clone()
        moved["diffusion", "loc"][:, step] += 0.3
        moved["diffusion", "scale"][:, step] *= 1.5
        moved["diffusion", "chain_log_prob"][:, step] -= 0.4
        other = loss(moved)
        same = torch.equal(other["loss_objective"], out["loss_objective"])
        assert same == unchanged, step


def make_fine_tuned_policy(ft: int = 2) -> DiffusionPolicy:
    torch.manual_seed(0)
    sampler = AncestralSampler(CosineSchedule(K), min_std=0.05)
    denoiser = FineTunedDenoiser(DenoiserMLP(OBS, ACT, K, hidden_dim=16, num_blocks=1), sampler, ft)
    return DiffusionPolicy(denoiser, sampler, learn_scale=True)


def test_frozen_steps_get_no_gradient():
    policy = make_fine_tuned_policy(ft=2)
    td = hand_made_batch(policy)
    loss = DPPOLoss(policy, make_critic(), entropy_coeff=0.01)
    assert loss.ft_denoising_steps == 2  # read from the policy's FineTunedDenoiser
    out = loss(td)
    (out["loss_objective"] + out["loss_entropy"]).backward()
    assert all(p.grad is None for p in policy.denoiser.frozen.parameters())
    assert any(
        p.grad is not None and (p.grad != 0).any() for p in policy.denoiser.denoiser.parameters()
    )
    grad = policy.log_scale.grad
    assert (grad[0] == 0).all() and (grad[1:] != 0).any()


def test_arguments():
    schedule = exponential_clip_schedule(0.01, 0.1, 5)
    assert schedule[0] == pytest.approx(0.01) and schedule[-1] == pytest.approx(0.1)
    assert all(a < b for a, b in itertools.pairwise(schedule))
    assert exponential_clip_schedule(0.01, 0.1, 1) == [0.1]
    policy = make_diffusion_policy()
    critic = make_critic()
    bad = [
        ({"clip_epsilon": [0.1, 0.2]}, "clip_epsilon"),
        ({"clip_epsilon": [0.1, 0.2, 0.3], "ft_denoising_steps": 2}, "clip_epsilon"),
        ({"clip_epsilon": -0.1}, "clip_epsilon"),
        ({"denoising_discount": 0.0}, "denoising_discount"),
        ({"denoising_discount": 1.5}, "denoising_discount"),
        ({"ratio": "sum"}, "ratio"),
        ({"ft_denoising_steps": 0}, "ft_denoising_steps"),
        ({"ft_denoising_steps": K + 1}, "ft_denoising_steps"),
        ({"ft_denoising_steps": 1.5}, "ft_denoising_steps"),
        ({"log_prob_clamp": (2.0, -5.0)}, "log_prob_clamp"),
    ]
    for kwargs, name in bad:
        with pytest.raises(ValueError, match=name):
            DPPOLoss(policy, critic, **kwargs)
    with pytest.raises(ValueError, match="FineTunedDenoiser"):
        DPPOLoss(make_fine_tuned_policy(ft=2), critic, ft_denoising_steps=3)
