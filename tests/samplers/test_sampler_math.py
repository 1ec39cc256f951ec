"""The sampler math: a Gaussian target's closed-form optimal denoiser, DDIM versus DDPM."""

from __future__ import annotations

import pytest
import torch

from trudi.samplers import (
    AncestralSampler,
    BestOfKSampler,
    ConditionedDenoiser,
    CosineSchedule,
    DDIMSampler,
    LinearSchedule,
    SigmoidSchedule,
)

TARGET_MEAN = torch.tensor([0.5, -0.3], dtype=torch.float64)
TARGET_COV = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=torch.float64)
NUM_SAMPLES = 20_000
# Monte Carlo standard errors at 20,000 samples are about 0.005 (mean) and 0.005 (covariance).
# The rest is discretisation bias: with the posterior variance β̃_t the sampled covariance falls
# short of the target by O(1/T), measured at 0.016 (cosine) and 0.027 (linear) for T = 200.
MEAN_TOLERANCE = 0.02
COV_TOLERANCE = 0.05


def optimal_denoiser(sampler, prediction: str):
    """E[x0 | x_t] or E[ε | x_t] for x0 ~ N(μ, Σ), x_t = sqrt(ᾱ_t) x0 + sqrt(1 − ᾱ_t) ε."""
    alphas_cumprod = sampler.schedule.alphas_cumprod()
    eye = torch.eye(2, dtype=torch.float64)

    def denoise(sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        ab = alphas_cumprod[timestep]
        marginal_cov = ab * TARGET_COV + (1 - ab) * eye
        residual = sample - ab.sqrt() * TARGET_MEAN
        whitened = torch.linalg.solve(marginal_cov, residual.T).T
        if prediction == "sample":
            return TARGET_MEAN + ab.sqrt() * whitened @ TARGET_COV
        return (1 - ab).sqrt() * whitened

    return denoise


def _moments(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return samples.mean(0), torch.cov(samples.T)


@pytest.mark.parametrize("prediction", ["epsilon", "sample"])
@pytest.mark.parametrize("schedule", [CosineSchedule(200), LinearSchedule(200)], ids=repr)
def test_ancestral_with_optimal_denoiser_reproduces_gaussian_target(prediction, schedule):
    torch.manual_seed(0)
    sampler = AncestralSampler(schedule, prediction=prediction, clip_sample=None, min_std=0.0)
    prior = torch.randn(NUM_SAMPLES, 2, dtype=torch.float64)
    chain = sampler.sample_chain(optimal_denoiser(sampler, prediction), prior).chain
    mean, cov = _moments(chain[:, -1])
    torch.testing.assert_close(mean, TARGET_MEAN, atol=MEAN_TOLERANCE, rtol=0)
    torch.testing.assert_close(cov, TARGET_COV, atol=COV_TOLERANCE, rtol=0)


def test_probability_flow_ode_with_fewer_steps_reproduces_gaussian_target():
    torch.manual_seed(0)
    ode = DDIMSampler(CosineSchedule(200), eta=0.0, num_steps=25, clip_sample=None)
    prior = torch.randn(NUM_SAMPLES, 2, dtype=torch.float64)
    chain = ode.sample_chain(optimal_denoiser(ode, "epsilon"), prior).chain
    mean, cov = _moments(chain[:, -1])
    torch.testing.assert_close(mean, TARGET_MEAN, atol=MEAN_TOLERANCE, rtol=0)
    torch.testing.assert_close(cov, TARGET_COV, atol=COV_TOLERANCE, rtol=0)


@pytest.mark.parametrize("prediction", ["epsilon", "sample"])
@pytest.mark.parametrize("clip_sample", [None, 0.5])
@pytest.mark.parametrize(
    "schedule", [CosineSchedule(7), LinearSchedule(5), SigmoidSchedule(9)], ids=repr
)
def test_ddim_eta_one_matches_ddpm_transitions(prediction, clip_sample, schedule):
    kwargs = {"prediction": prediction, "clip_sample": clip_sample, "min_std": 1e-3}
    ddpm = AncestralSampler(schedule, **kwargs)
    ddim = DDIMSampler(schedule, eta=1.0, **kwargs)
    assert torch.equal(ddpm.timesteps, ddim.timesteps)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(64, 4, generator=generator, dtype=torch.float64)
    denoised = torch.randn(64, 4, generator=generator, dtype=torch.float64)
    step = torch.randint(0, schedule.num_steps, (64,), generator=generator)
    torch.testing.assert_close(
        ddim.transition(denoised, step, sample), ddpm.transition(denoised, step, sample)
    )


def test_ddim_eta_zero_is_deterministic():
    ode = DDIMSampler(CosineSchedule(10), eta=0.0)
    prior = torch.randn(16, 3)
    first = ode.sample_chain(lambda x, t: 0.5 * torch.tanh(x), prior)
    torch.manual_seed(123)
    second = ode.sample_chain(lambda x, t: 0.5 * torch.tanh(x), prior)
    assert (first.scale == 0).all()
    assert torch.equal(first.chain, second.chain)


def test_ddim_fewer_steps_visits_a_subset_of_training_timesteps():
    ddim = DDIMSampler(CosineSchedule(10), num_steps=4)
    assert ddim.timesteps.tolist() == [10, 8, 5, 2]


def test_best_of_k_keeps_the_best_scoring_candidate():
    scores = []

    def score(chain, loc, scale, observation):
        value = chain[..., -1, 0] + observation
        scores.append((chain, value))
        return value

    base = AncestralSampler(CosineSchedule(4), min_std=0.3)
    best_of = BestOfKSampler(base, num_candidates=5, score=score)
    observation = torch.zeros(32)
    denoise = ConditionedDenoiser(lambda obs, x, t: 0.1 * x, observation)
    kept = best_of.sample_chain(denoise, torch.randn(32, 2))
    candidates, value = scores[0]
    assert candidates.shape == (5, 32, 5, 2)
    best = value.argmax(0)
    torch.testing.assert_close(kept.chain, candidates[best, torch.arange(32)])
    assert (kept.chain[..., -1, 0] >= candidates[..., -1, 0].max(0).values - 1e-6).all()


def test_best_of_k_over_the_ode_keeps_the_most_likely_prior():
    ode = DDIMSampler(CosineSchedule(5), eta=0.0)
    best_of = BestOfKSampler(ode, num_candidates=6)
    torch.manual_seed(0)
    prior = torch.randn(16, 2)
    kept = best_of.sample_chain(lambda x, t: 0.2 * x, prior)
    assert torch.isfinite(kept.chain).all()
    # The given prior is one of the candidates, so the kept prior is at least as likely.
    assert (kept.chain[:, 0].norm(dim=-1) <= prior.norm(dim=-1) + 1e-6).all()
