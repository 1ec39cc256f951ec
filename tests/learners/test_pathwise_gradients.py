"""The pathwise actor gradient through a small chain equals finite differences (float64), and the
sampled trajectory KL c(s) agrees with the closed form on a linear-Gaussian chain."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type
from torch import nn

from trudi.constraints import TrajectoryKLProjection, exact_trajectory_kl
from trudi.learners import HLGaussHead, QCritic, TruDiPathwiseLoss
from trudi.policies import DenoiserMLP, DiffusionPolicy
from trudi.samplers import EulerMaruyamaSampler

OBS, ACT, STEPS = 2, 2, 3


def make_batch(policy, batch: int = 6, seed: int = 0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(batch, OBS, generator=g, dtype=torch.float64)
    with set_interaction_type(InteractionType.RANDOM), torch.no_grad():
        td = policy(TensorDict({"observation": obs}, [batch]))
    td["value_target"] = torch.randn(batch, 1, generator=g, dtype=torch.float64)
    return td


@pytest.mark.parametrize(
    "projection",
    [
        None,
        TrajectoryKLProjection(0.05, 0.05),
        TrajectoryKLProjection(1e-6),
        TrajectoryKLProjection(1e-6, 1e-6),
        TrajectoryKLProjection(1e-6, mode="per_step"),
    ],
    ids=["split", "trajectory-inside", "trajectory-mean", "trajectory-mean-cov", "per-step-mean"],
)
def test_actor_gradient_matches_finite_differences(projection):
    torch.manual_seed(0)
    denoiser = DenoiserMLP(OBS, ACT, STEPS, hidden_dim=8, num_blocks=1)
    policy = DiffusionPolicy(denoiser, EulerMaruyamaSampler(STEPS), squash="tanh").double()
    critic = QCritic(OBS, ACT, HLGaussHead(-3.0, 3.0, num_bins=11), hidden_dim=8).double()
    td = make_batch(policy)
    mode = "split" if projection is None else "projection"
    loss = TruDiPathwiseLoss(
        policy, critic, trust_region=mode, projection=projection, embedding_coeff=0.0
    )
    # Move the network away from the behaviour (= old) policy, inside the gate's bound.
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    params = [policy.denoiser.output.weight, policy.sampler.raw_friction]
    out = loss(td)
    if projection is None:
        assert out["frac_gated"] == 0  # the gate is open everywhere
    else:
        bound = projection.mean_bound + (projection.cov_bound or 0.0)
        projecting = projection.mean_bound < 1e-3
        assert (out["kl_projected_max"] > 0.5 * bound) == projecting
    grads = torch.autograd.grad(out["loss_objective"], params)
    eps = 1e-6
    for param, grad in zip(params, grads, strict=True):
        numeric = torch.zeros_like(param)
        flat = param.data.view(-1)
        for i in range(flat.numel()):
            flat[i] += eps
            up = loss(td)["loss_objective"]
            flat[i] -= 2 * eps
            down = loss(td)["loss_objective"]
            flat[i] += eps
            numeric.view(-1)[i] = (up - down) / (2 * eps)
        torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-8)


class LinearDenoiser(nn.Module):
    """d = w_t x + c_t: with the Euler–Maruyama step, every transition is linear-Gaussian."""

    def __init__(self, w: list[float], c: list[float]) -> None:
        super().__init__()
        self.action_dim, self.num_steps = 1, len(w)
        # Indexed by the timestep K … 1 (index 0 unused).
        self.register_buffer("w", torch.tensor([0.0, *w[::-1]], dtype=torch.float64))
        self.register_buffer("c", torch.tensor([0.0, *c[::-1]], dtype=torch.float64))

    def forward(self, observation, sample, timestep):
        return self.w[timestep].unsqueeze(-1) * sample + self.c[timestep].unsqueeze(-1)


def linear_gaussian_kl(old: DiffusionPolicy, new: DiffusionPolicy) -> float:
    """KL(p_old(τ) ‖ p_new(τ)) in closed form: x_{j+1} = a_j x_j + b_j + s_j ξ, x_K ~ N(0, σ_p²).

    Σ_j E_{x_j ~ old}[KL(N(a x + b, s²) ‖ N(a' x + b', s'²))] with the old marginal N(m_j, v_j)
    propagated exactly; the priors are equal.
    """

    def coefficients(policy, j):
        sampler, den = policy.sampler, policy.denoiser
        g = float(sampler.friction[j].detach() * sampler.dt[j])
        prior_std = float(sampler.prior_std)
        t = int(sampler.timesteps[j])
        a = 1 - g + 2 * g * prior_std * float(den.w[t])
        b = 2 * g * prior_std * float(den.c[t])
        return a, b, prior_std * (2 * g) ** 0.5

    m, v, kl = 0.0, float(old.sampler.prior_std) ** 2, 0.0
    for j in range(old.num_steps):
        a, b, s = coefficients(old, j)
        a2, b2, s2 = coefficients(new, j)
        gap = ((a - a2) * m + (b - b2)) ** 2 + (a - a2) ** 2 * v
        kl += 0.5 * ((s / s2) ** 2 + gap / s2**2 - 1 + 2 * torch.log(torch.tensor(s2 / s)).item())
        m, v = a * m + b, a**2 * v + s**2
    return kl


def test_sampled_trajectory_kl_matches_the_closed_form():
    old = DiffusionPolicy(
        LinearDenoiser([-0.3, 0.1, 0.4], [0.2, -0.1, 0.3]), EulerMaruyamaSampler(3, prior_std=1.5)
    ).double()
    new = DiffusionPolicy(
        LinearDenoiser([-0.2, 0.3, 0.2], [0.0, 0.1, 0.5]),
        EulerMaruyamaSampler(3, prior_std=1.5, friction=1.4),
    ).double()
    torch.manual_seed(0)
    n = 20_000
    with set_interaction_type(InteractionType.RANDOM), torch.no_grad():
        td = old(TensorDict({"observation": torch.zeros(n, 1, dtype=torch.float64)}, [n]))
    td["value_target"] = torch.zeros(n, 1, dtype=torch.float64)
    critic = QCritic(1, 1, HLGaussHead(-1.0, 1.0, num_bins=5), hidden_dim=4).double()
    loss = TruDiPathwiseLoss(new, critic, embedding_coeff=0.0)
    current = new.get_dist(td)
    c = exact_trajectory_kl(
        td["diffusion", "loc"], td["diffusion", "scale"], current.loc, current.scale
    )
    expected = linear_gaussian_kl(old, new)
    standard_error = (c.std() / n**0.5).item()
    assert abs(loss(td)["kl_trajectory"].item() - expected) < 4 * standard_error
    assert abs(c.mean().item() - expected) < 4 * standard_error
    assert standard_error < 0.02 * expected
