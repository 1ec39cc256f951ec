"""A float64 chain is float64-exact: DDPM transitions equal the closed-form posterior to 1e-12."""

from __future__ import annotations

import pytest
import torch

from trudi.samplers import AncestralSampler, CosineSchedule, LinearSchedule, SigmoidSchedule

SCHEDULES = [LinearSchedule, CosineSchedule, SigmoidSchedule]


def closed_form_posterior(alphas_cumprod, k, x_k, output, prediction):
    """Mean and std of q(x_{k-1} | x_k, x0) in DPPO's form (``model/diffusion/diffusion.py``).

    DPPO's table index t is trudi's k - 1: its ``alphas_cumprod[t]`` is ᾱ_k here.
    """
    ab, ab_prev = alphas_cumprod[k].unsqueeze(-1), alphas_cumprod[k - 1].unsqueeze(-1)
    beta = 1.0 - ab / ab_prev
    if prediction == "epsilon":
        x0 = torch.sqrt(1.0 / ab) * x_k - torch.sqrt(1.0 / ab - 1.0) * output
    else:
        x0 = output
    mean = (beta * ab_prev.sqrt() / (1.0 - ab)) * x0 + (
        (1.0 - ab_prev) * (1.0 - beta).sqrt() / (1.0 - ab)
    ) * x_k
    variance = beta * (1.0 - ab_prev) / (1.0 - ab)
    return mean, variance.clamp_min(0.0).sqrt().expand_as(mean)


@pytest.mark.parametrize("prediction", ["epsilon", "sample"])
@pytest.mark.parametrize("schedule_class", SCHEDULES)
def test_float64_transitions_equal_closed_form_posterior(schedule_class, prediction):
    generator = torch.Generator().manual_seed(0)
    for num_steps in range(1, 101):
        schedule = schedule_class(num_steps)
        sampler = AncestralSampler(schedule, prediction=prediction, clip_sample=None, min_std=0.0)
        step = torch.arange(num_steps)
        x_k = torch.randn(num_steps, 3, generator=generator, dtype=torch.float64)
        output = torch.randn(num_steps, 3, generator=generator, dtype=torch.float64)
        loc, scale = sampler.transition(output, step, x_k)
        assert loc.dtype == scale.dtype == torch.float64
        mean, std = closed_form_posterior(
            schedule.alphas_cumprod(), sampler.timesteps, x_k, output, prediction
        )
        torch.testing.assert_close(loc, mean, rtol=1e-12, atol=1e-12, msg=f"K={num_steps}")
        torch.testing.assert_close(scale, std, rtol=1e-12, atol=1e-12, msg=f"K={num_steps}")


def test_tables_are_float64_and_cast_at_use():
    sampler = AncestralSampler(CosineSchedule(5))
    assert sampler.coef_x0.dtype == torch.float64
    loc, scale = sampler.transition(torch.zeros(2, 3), 0, torch.ones(2, 3))
    assert loc.dtype == scale.dtype == torch.float32
